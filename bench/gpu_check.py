"""One prepared check for a machine with one GPU and no network: does rlvr's GPU path work, at the real shape?

    python bench/gpu_check.py --json gpu_check.json            # GPU: the Qwen2.5-Math-1.5B shape, bf16 (< 8 min)
    python bench/gpu_check.py --tiny --json tiny.json           # CPU: the same checks at tiny shapes (CI)
    python bench/gpu_check.py --peak-tflops 989                 # MFU against this peak (default: known GPUs)

Random weights at the Qwen2.5-Math-1.5B shape (hidden 1536, 28 layers, 12 heads, 2 kv heads, intermediate
8960) and its real vocabulary (151,936 rows of embedding and LM head); --tiny keeps that vocabulary with
tiny layers (hidden 64, 2 layers), so vocabulary-sized costs and paths are still exercised on CPU. Every section runs in its own
subprocess (vLLM's process-global state, clean memory counters) with its own timeout; a failed section is
reported and the others still run. Prints one JSON report (and writes it with --json); exit 1 if a
section failed.

Sections:
  env             versions, device, whether vllm is importable (GPU vllm cannot be installed without
                  network: then every vLLM check is reported as skipped, with the import error);
  checkpoint      the model saved once for the generation sections: rlvr.models.tiny's tokenizer (512
                  tokens, ChatML) and a Qwen2 model at the shape, its embedding and LM head padded to the
                  real vocabulary (pad_vocabulary: padded ids never sampled; untied, as tiny models are);
  vllm            which model runner vLLM selects (V1 / V2 and its class), engine start, generate, sleep,
                  weight sync, wake, generate again, and the weight-sync probe's bf16 gap statistics (at
                  equal weights, after a sync, and with a skipped sync, which must be caught);
  hf_generation   the same sequence through the HF backend (sleep and wake are no-ops there);
  trainer         the RL loss path (`rlvr.stages.rlvr.train_on`, driven as bench/memory.py drives it, with
                  1-shot RLVR's loss) on the DeepSpeed backend at the 1-shot micro-batch shape read from
                  recipes/one_shot.yaml: one measured step's peak torch.cuda.max_memory_allocated (CPU: peak
                  RSS, as bench/memory.py measures it), then tokens/s and MFU over timed steps.
MFU = model FLOPs / step time / peak: per token 6 x (non-embedding weights + the LM head for response
tokens) + 12 x layers x hidden x sequence length (attention, causal not discounted, as
bench/train_throughput.py counts); recomputation under gradient checkpointing is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GiB = 2**30
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}  # dense, per GPU
QWEN_MATH_1P5B = {"hidden_size": 1536, "num_layers": 28, "num_heads": 12, "num_kv_heads": 2,
                  "intermediate_size": 8960, "max_position_embeddings": 4096, "embedding_size": 151_936}
TINY = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 128,
        "max_position_embeddings": 1024, "embedding_size": 151_936}  # tiny layers, the real vocabulary
# Weights move by this x their RMS per simulated training step: far more than one step at 1-shot's lr 1e-6,
# so that a skipped sync leaves a gap the probe must catch (an update below its noise floor never decides).
UPDATE_SCALE = 0.03
SECTIONS = ("env", "checkpoint", "vllm", "hf_generation", "trainer")
PROMPTS = ["What is 2 + 3?", "Simplify 4 / 8.", "Solve for x: 3x + 5 = 20.", "What is 17 * 3?",
           "Find the sum of the first ten odd numbers.", "Is 91 prime?", "Compute 2^10.", "What is 1/3 + 1/6?"]


# ------------------------------------------------------------------------------------ sections (children)
def section_env(opts: dict) -> dict:
    import deepspeed
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    out = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "deepspeed": deepspeed.__version__, "cuda": cuda,
           "device": torch.cuda.get_device_name() if cuda else "cpu",
           "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / GiB, 1) if cuda else None}
    try:
        import vllm

        out |= {"vllm": vllm.__version__, "vllm_importable": True}
    except Exception as e:  # ImportError, or a CUDA/CPU build mismatch raising something else
        out |= {"vllm": None, "vllm_importable": False, "vllm_import_error": f"{type(e).__name__}: {e}"[:300]}
    return out


def section_checkpoint(opts: dict) -> dict:
    from rlvr.config import TinyModelSpec
    from rlvr.models.tiny import build_tiny

    start = time.perf_counter()
    path = build_tiny(TinyModelSpec(**opts["spec"]), opts["dir"])
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(path)
    return {"path": str(path), "vocab_rows": cfg.vocab_size, "hidden_size": cfg.hidden_size,
            "layers": cfg.num_hidden_layers, "tied": bool(cfg.tie_word_embeddings),
            "disk_gib": round(sum(f.stat().st_size for f in Path(path).iterdir()) / GiB, 3),
            "build_s": round(time.perf_counter() - start, 1)}


class Trainer:
    """The trainer side of the probe: the HF model in the trainer's dtype, with the backend's verbs
    (device, forward, scorer) that the probe calls."""

    def __init__(self, path: str, dtype: str):
        import torch

        from rlvr.models.load import load_model
        from rlvr.models.scoring import token_scorer

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = load_model(path, dtype=dtype).to(self.device).eval()
        self.scorer = token_scorer(self.forward, self.model)

    def forward(self, **inputs):
        return self.model(**inputs)

    def update(self, seed: int, scale: float) -> None:
        """An optimizer-step-sized change: every weight moves by `scale` x its own RMS, in random directions."""
        import torch

        g = torch.Generator(device=self.device).manual_seed(seed)
        with torch.no_grad():
            for p in self.model.parameters():
                rms = p.float().pow(2).mean().sqrt()
                p.add_((torch.randn(p.shape, generator=g, device=self.device) * rms * scale).to(p.dtype))


def _gaps(m: dict) -> dict:
    return {k.removeprefix("gen/"): round(v, 6) for k, v in m.items()}


def section_generation(opts: dict) -> dict:
    """Engine start, generate, sleep, sync, wake, generate, probe; `opts["backend"]` is vllm or hf."""
    import torch

    from rlvr.generate import (
        GenerationConfig,
        Request,
        Sampling,
        StaleWeightsError,
        WeightProbe,
        build_generator,
        check_probe,
        probe_dtype,
        probe_sequences,
    )
    from rlvr.world import World

    cuda, dtype = torch.cuda.is_available(), opts["dtype"]
    out: dict = {"backend": opts["backend"], "dtype": dtype}
    trainer = Trainer(opts["path"], dtype)
    cfg = GenerationConfig(backend=opts["backend"], max_model_len=opts["max_model_len"], kv_cache_gib=0.5,
                           gpu_memory_utilization=0.35, use_tqdm=False, sleep_mode=True, sleep_level=1)
    t0 = time.perf_counter()
    gen = build_generator(cfg, opts["path"], World(), dtype=dtype, seed=0)
    out["start_s"] = round(time.perf_counter() - t0, 2)
    if opts["backend"] == "vllm":
        cfg_v = gen.llm.llm_engine.vllm_config
        worker = gen.llm.llm_engine.model_executor.driver_worker.worker
        out["model_runner"] = {"v2": bool(cfg_v.use_v2_model_runner), "class": type(worker.model_runner).__name__,
                               "module": type(worker.model_runner).__module__,
                               "env_VLLM_USE_V2_MODEL_RUNNER": os.environ.get("VLLM_USE_V2_MODEL_RUNNER")}
    pdtype = probe_dtype(dtype)
    probe = WeightProbe(probe_sequences(gen.tokenizer, cfg.probe_sequences, cfg.probe_length), dtype=pdtype)
    out["probe_rule"] = {"dtype": pdtype, "statistic": "max" if pdtype == "float32" else "mean"}
    out["probe_equal_weights"] = _gaps(probe.check(gen, trainer))  # the noise floor: same weights both sides

    requests = [Request(messages=[{"role": "user", "content": p}]) for p in PROMPTS]
    sampling = Sampling(n=opts["n"], temperature=0.6, max_tokens=opts["max_tokens"], seed=0)
    gen.generate(requests[:1], Sampling(n=1, max_tokens=4))  # warm-up (CUDA graphs, allocator)
    gen.generate(requests, sampling)
    out["generate"] = _gaps(gen.last_stats)

    mem = (lambda: round(torch.cuda.memory_allocated() / GiB, 3)) if cuda else (lambda: None)
    t0 = time.perf_counter()
    gen.sleep()
    out["sleep"] = {"s": round(time.perf_counter() - t0, 2), "supported": bool(getattr(gen, "sleeps", False)),
                    "allocated_gib_after": mem()}
    trainer.update(seed=1, scale=UPDATE_SCALE)  # "a training step" while the engine sleeps
    out["sync_s"] = round(gen.sync_weights(trainer.model.named_parameters()), 3)
    t0 = time.perf_counter()
    gen.wake()
    out["wake"] = {"s": round(time.perf_counter() - t0, 2), "allocated_gib_after": mem()}
    out["probe_after_sync"] = _gaps(probe.check(gen, trainer))  # all three rules, as in the RL stage
    gen.generate(requests, sampling)
    out["generate_after_wake"] = _gaps(gen.last_stats)

    trainer.update(seed=2, scale=UPDATE_SCALE)  # a step whose sync is skipped: the probe must stop the run
    stale = probe.measure(gen, trainer)
    out["probe_skipped_sync"] = _gaps(stale)
    try:
        check_probe(stale, None, pdtype)
        out["skipped_sync_caught"] = False
    except StaleWeightsError as e:
        out["skipped_sync_caught"] = True
        out["skipped_sync_message"] = str(e).split(". Rollouts")[0][:300]
    gen.close()
    return out


def section_trainer(opts: dict) -> dict:
    """The RL loss path at the 1-shot micro-batch: peak memory of one step, then tokens/s and MFU."""
    import statistics

    import torch

    sys.path.insert(0, str(ROOT / "bench"))
    import memory  # bench/memory.py: the model builder, the meter and the RL step it measures

    from rlvr.backend import DeepSpeedBackend
    from rlvr.config import BackendConfig, OptimConfig
    from rlvr.tracking import quiet_libraries
    from rlvr.world import World

    quiet_libraries()
    cuda = torch.cuda.is_available()
    case = opts["case"]
    world = World.from_env()
    model = memory.build_model(case)
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    backend = DeepSpeedBackend.wrap(
        model, world=world, optim=OptimConfig(lr=1e-6), dtype=case["dtype"], total_steps=2 + opts["steps"],
        config=BackendConfig(zero_stage=case["zero"], micro_batch_size=case["rows"], grad_accum=1,
                             gradient_checkpointing=case["grad_ckpt"]))
    memory.make_step(case, backend, world, 16)()  # optimizer state and gradient buffers exist first
    step = memory.make_step(case, backend, world, case["length"])
    meter = memory.Meter(cuda)
    meter.start()
    t0 = time.perf_counter()
    step()
    first_s = time.perf_counter() - t0
    peak = meter.peak()
    out = {"loss_memory": {
        "rows": case["rows"], "prompt_tokens": case["prompt"], "response_tokens": case["length"],
        "micro_batch_tokens": case["rows"] * (case["prompt"] + case["length"]), "dtype": case["dtype"],
        "zero_stage": case["zero"], "gradient_checkpointing": case["grad_ckpt"], "vocab": cfg.vocab_size,
        "params": n_params, "method": meter.method,
        "peak_above_start_gib": round(peak / GiB, 3),
        "max_memory_allocated_gib": round(torch.cuda.max_memory_allocated() / GiB, 3) if cuda else None,
        "step_s": round(first_s, 2)}}
    times = []
    for _ in range(opts["steps"]):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    seq = case["prompt"] + case["length"]
    tokens = case["rows"] * seq
    embed = model.get_input_embeddings().weight.numel()
    head = cfg.vocab_size * cfg.hidden_size
    body = n_params - embed - (0 if cfg.tie_word_embeddings else head)  # the layers' matmul weights
    flops = (6 * body + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq) * tokens \
        + 6 * head * case["rows"] * case["length"]  # the LM head runs on response positions only
    peak_tflops = opts["peak_tflops"] or (
        next((v for k, v in PEAK_BF16_TFLOPS.items() if k in torch.cuda.get_device_name()), None) if cuda else None)
    achieved = flops / step_s / 1e12
    out["trainer_throughput"] = {
        "steps_timed": len(times), "step_s": round(step_s, 4), "tokens_per_step": tokens,
        "tokens_per_s": round(tokens / step_s, 1), "model_flop_per_step": float(f"{flops:.4g}"),
        "achieved_tflops": round(achieved, 3), "peak_tflops": peak_tflops,
        "peak_source": "--peak-tflops" if opts["peak_tflops"] else ("device table (bf16 dense)" if peak_tflops else None),
        "mfu": round(achieved / peak_tflops, 4) if peak_tflops else None}
    return out


def run_section(name: str, opts: dict) -> dict:
    fn = {"env": section_env, "checkpoint": section_checkpoint, "vllm": section_generation,
          "hf_generation": section_generation, "trainer": section_trainer}[name]
    return fn(opts)


# ------------------------------------------------------------------------------------ the check (parent)
def child(name: str, opts: dict, timeout: float) -> dict:
    """Run one section in a fresh interpreter; its last 'RESULT ' line is the section's JSON."""
    start = time.perf_counter()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--section", name, "--opts", json.dumps(opts)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        tail = ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or "")[-1500:]
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "tail": tail,
                "wall_s": round(time.perf_counter() - start, 1)}
    wall = round(time.perf_counter() - start, 1)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return {"ok": True, **json.loads(line[7:]), "wall_s": wall}
    return {"ok": False, "error": f"exit code {proc.returncode}", "tail": (proc.stdout + proc.stderr)[-3000:],
            "wall_s": wall}


def one_shot_micro_batch(prompt_tokens: int) -> dict:
    """The 1-shot recipe's trainer settings: rows of a full-length micro-batch under its token budget."""
    import yaml

    recipe = yaml.safe_load((ROOT / "recipes" / "one_shot.yaml").read_text())
    rl = next(s for s in recipe["stages"] if s["type"] == "rlvr")
    be, length = recipe["backend"], rl["max_response_tokens"]
    rows = min(be["micro_batch_size"], rl["max_tokens_per_micro_batch"] // (prompt_tokens + length))
    return {"rows": rows, "length": length, "zero": be["zero_stage"], "grad_ckpt": be["gradient_checkpointing"],
            "temperature": rl["temperature"], "kl_coef": rl["kl"]["coef"], "entropy_coef": rl["entropy_coef"],
            "token_budget": rl["max_tokens_per_micro_batch"]}


def plan(args) -> dict:
    """Options of every section for --tiny (CPU) or the real shape."""
    shot = one_shot_micro_batch(args.prompt_tokens)
    case = {"stage": "rl", "variant": "after", "prompt": args.prompt_tokens, "dtype": args.dtype,
            "temperature": shot["temperature"], "kl_coef": shot["kl_coef"], "entropy_coef": shot["entropy_coef"]}
    if args.tiny:
        spec = TINY
        case |= {"shape": None, "vocab": 151_936, "hidden": 64, "layers": 2, "heads": 2, "kv_heads": 1, "rows": 2,
                 "length": 64, "zero": shot["zero"], "grad_ckpt": shot["grad_ckpt"]}
        gen = {"max_tokens": 16, "n": 2, "max_model_len": 256}
    else:
        spec = QWEN_MATH_1P5B
        case |= {"shape": str(ROOT / "bench" / "configs" / "qwen2.5-math-1.5b.json"), "vocab": 151_936,
                 "rows": shot["rows"], "length": shot["length"], "zero": shot["zero"], "grad_ckpt": shot["grad_ckpt"]}
        gen = {"max_tokens": 256, "n": 4, "max_model_len": 4096}
    return {"spec": spec, "case": case, "gen": gen, "one_shot": shot}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny shapes (CPU, CI); default: the 1.5B shape")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--peak-tflops", type=float, default=None,
                   help=f"peak dense TFLOPs per device for MFU (default: {PEAK_BF16_TFLOPS} by device name)")
    p.add_argument("--prompt-tokens", type=int, default=128, help="prompt tokens per rollout in the micro-batch")
    p.add_argument("--steps", type=int, default=3, help="timed trainer steps")
    p.add_argument("--sections", default=",".join(SECTIONS), help="a subset, comma-separated (env always runs)")
    p.add_argument("--timeout", type=float, default=240, help="seconds per section")
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    p.add_argument("--section", default=None, help=argparse.SUPPRESS)
    p.add_argument("--opts", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.section:  # child
        result = run_section(args.section, json.loads(args.opts))
        print("RESULT " + json.dumps(result), flush=True)
        sys.stdout.flush()
        os._exit(0)  # skip DeepSpeed's and vLLM's teardown

    start = time.perf_counter()
    wanted = set(args.sections.split(",")) | {"env"}
    unknown = wanted - set(SECTIONS)
    if unknown:
        print(f"--sections: unknown {sorted(unknown)}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        sys.exit(2)
    cfg = plan(args)
    report: dict = {"argv": sys.argv[1:], "mode": "tiny" if args.tiny else "qwen2.5-math-1.5b shape",
                    "one_shot_micro_batch": cfg["one_shot"]}
    with tempfile.TemporaryDirectory(prefix="rlvr-gpu-check-") as tmp:
        report["env"] = env = child("env", {}, args.timeout)
        generation = [s for s in ("vllm", "hf_generation") if s in wanted]
        if generation:
            report["checkpoint"] = ckpt = child("checkpoint", {"spec": cfg["spec"], "dir": str(Path(tmp) / "model")},
                                                args.timeout)
            for name in generation:
                if name == "vllm" and not env.get("vllm_importable"):
                    report[name] = {"ok": True, "skipped": "vllm is not importable here, so every vLLM check "
                                    f"(model runner, engine, sleep/wake, sync, probe) is skipped: "
                                    f"{env.get('vllm_import_error', env.get('error'))}"}
                elif not ckpt["ok"]:
                    report[name] = {"ok": False, "error": "no checkpoint (see the checkpoint section)"}
                else:
                    opts = {"backend": "vllm" if name == "vllm" else "hf", "path": ckpt["path"], "dtype": args.dtype,
                            **cfg["gen"]}
                    report[name] = child(name, opts, args.timeout)
        if "trainer" in wanted:
            t = child("trainer", {"case": cfg["case"], "steps": args.steps, "peak_tflops": args.peak_tflops},
                      args.timeout)
            if t["ok"]:
                wall = t.pop("wall_s")
                report["loss_memory"] = {"ok": True, **t.pop("loss_memory"), "wall_s": wall}
                report["trainer_throughput"] = {"ok": True, **t.pop("trainer_throughput")}
            else:
                report["loss_memory"] = report["trainer_throughput"] = t
    failed = [k for k, v in report.items() if isinstance(v, dict) and v.get("ok") is False]
    report["failed_sections"] = failed
    report["wall_s"] = round(time.perf_counter() - start, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        tmp_path = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp_path.write_text(text + "\n")
        tmp_path.replace(args.json)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
