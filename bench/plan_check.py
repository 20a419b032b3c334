"""`rlvr plan`'s estimates against one real training step on this CPU.

    .venv/bin/python bench/plan_check.py                 # every case, one fresh process each
    .venv/bin/python bench/plan_check.py --only h256-v152k

Each case builds a Qwen2-architecture model with random weights in a fresh process, wraps it in rlvr's
DeepSpeed backend (fp32, ZeRO-0, one process) and runs one SFT step through rlvr's own token scorer
(rlvr.stages.causal_lm.token_nll: the LM head in backend.logits_chunk_tokens chunks), twice: the first
step allocates Adam's states after its backward, so the second, measured step is the steady state in
which the states are held while activations and logits peak. Measured:

  * peak RSS of the process during the step (VmHWM, reset just before the step through
    /proc/self/clear_refs; ru_maxrss where that is not possible) minus the RSS before the model was
    built: weights + gradients + Adam states + activations + logits + whatever else the step holds;
  * torch's own count of the model states after the step: bytes of the parameters, of their
    gradients (taken after backward) and of the optimizer's state tensors.

Estimated: rlvr.plan.stage_memory for the same shape and knobs (weights + grads + optimizer +
activations + logits; ZeRO-0 has no DeepSpeed buffers). Error = (estimate - measured) / measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QWEN2 = dict(model_type="qwen2", max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6,
             hidden_act="silu", tie_word_embeddings=False)
BENCH_SHAPE = dict(QWEN2, hidden_size=256, intermediate_size=768, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, vocab_size=151936)
WIDE_SHAPE = dict(QWEN2, hidden_size=768, intermediate_size=2048, num_hidden_layers=6, num_attention_heads=12,
                  num_key_value_heads=2, vocab_size=8192)


def tiny_rl_shape() -> dict:
    """recipes/tiny_rl.yaml's model.tiny, as rlvr plan reads it."""
    from rlvr.config import load_recipe
    from rlvr.plan import resolve_shape

    s = resolve_shape(load_recipe(ROOT / "recipes" / "tiny_rl.yaml"))
    return dict(QWEN2, hidden_size=s.hidden, intermediate_size=s.intermediate, num_hidden_layers=s.layers,
                num_attention_heads=s.heads, num_key_value_heads=s.kv_heads, vocab_size=s.vocab)


# name -> (shape, micro-batch rows, sequence length, logits_chunk_tokens, gradient checkpointing)
CASES = {
    "tiny_rl": ("tiny_rl", 32, 128, 1024, False),
    "h256-v152k": ("bench", 4, 512, 1024, False),
    "h256-v152k-full-logits": ("bench", 4, 512, 0, False),
    "h256-v152k-ckpt": ("bench", 4, 512, 1024, True),
    "h768-l6-v8k": ("wide", 4, 1024, 1024, False),
    "h768-l6-v8k-ckpt": ("wide", 4, 1024, 1024, True),
}


def shape_config(name: str) -> dict:
    return {"tiny_rl": tiny_rl_shape, "bench": lambda: BENCH_SHAPE, "wide": lambda: WIDE_SHAPE}[name]()


def estimate(case: str) -> dict:
    """The planner's numbers for a case (bytes)."""
    from rlvr.plan import StageSetup, shape_from_config, stage_memory

    shape_name, micro, seq, chunk, ckpt = CASES[case]
    shape = shape_from_config(shape_config(shape_name), case)
    setup = StageSetup(name=case, type="sft", dtype="float32", zero_stage=0, offload_optimizer=False,
                       gradient_checkpointing=ckpt, logits_chunk_tokens=chunk, micro_batch_size=micro,
                       seq_len=seq, tokens=micro * seq)
    m = stage_memory(shape, setup, world=1, gpu_memory=80 * 2**30)
    return {"states": m.weights + m.grads + m.optimizer, "activations": m.activations, "logits": m.logits,
            "total": m.weights + m.grads + m.optimizer + m.zero_buffers + m.activations + m.logits}


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _trim() -> None:
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def measure(case: str) -> dict:
    """One training step of `case` in this process (call in a fresh one)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from rlvr.backend import DeepSpeedBackend
    from rlvr.config import BackendConfig, OptimConfig
    from rlvr.stages.causal_lm import token_nll
    from rlvr.tracking import quiet_libraries
    from rlvr.world import World

    shape_name, micro, seq, chunk, ckpt = CASES[case]
    quiet_libraries()
    world = World.from_env()
    _trim()
    rss0 = _status("VmRSS")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**shape_config(shape_name)), dtype=torch.float32,
                                             attn_implementation="sdpa")
    backend = DeepSpeedBackend.wrap(
        model, world=world,
        config=BackendConfig(zero_stage=0, micro_batch_size=micro, grad_accum=1, gradient_checkpointing=ckpt,
                             logits_chunk_tokens=chunk),
        optim=OptimConfig(lr=1e-5), dtype="float32", total_steps=1)
    V = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, V, (micro, seq), generator=g)
    pos = torch.arange(seq).repeat(micro, 1)
    targets = torch.roll(ids, -1, dims=1)
    targets[:, -1] = -100
    backend.train()

    def step() -> int:
        nll = token_nll(backend.scorer, targets, input_ids=ids, position_ids=pos, use_cache=False)
        backend.backward(nll.sum() / nll.numel())
        grads = sum(p.grad.numel() * p.grad.element_size() for p in backend.module.parameters() if p.grad is not None)
        backend.step()
        return grads

    step()  # the first step allocates Adam's states after backward; the measured one holds them throughout
    _trim()
    rss1 = _status("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        hwm = "VmHWM"
    except OSError:
        hwm = "ru_maxrss"
    grads = step()
    params = list(backend.module.parameters())
    peak = _status("VmHWM") if hwm == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    opt = backend.engine.optimizer
    opt = getattr(opt, "optimizer", opt)
    opt_bytes = sum(t.numel() * t.element_size() for st in opt.state.values() for t in st.values()
                    if torch.is_tensor(t) and t.dim() > 0)
    weights = sum(p.numel() * p.element_size() for p in params)
    return {"rss_increase": peak - rss0, "step_increase": peak - rss1, "torch_states": weights + grads + opt_bytes,
            "peak_kind": hwm}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", choices=list(CASES), help="run these cases only")
    p.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)  # the child process
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    if args.case:
        print("RESULT " + json.dumps(measure(args.case)), flush=True)
        sys.stdout.flush()
        os._exit(0)  # skip DeepSpeed's teardown
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    rows = []
    GiB = 2**30
    print(f"{'case':24} {'tokens':>7} {'chunk':>5} {'ckpt':>4} | {'estimate':>8} {'measured':>8} {'error':>7} | "
          f"{'states est':>10} {'torch':>7} {'error':>6} | {'act est':>7} {'logits est':>10}   (GiB)")
    for case in args.only or CASES:
        proc = subprocess.run([sys.executable, __file__, "--case", case], env=env, capture_output=True, text=True,
                              timeout=300)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"{case}: failed (rc {proc.returncode})\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        got, est = json.loads(line[7:]), estimate(case)
        _, micro, seq, chunk, ckpt = CASES[case]
        err = (est["total"] - got["rss_increase"]) / got["rss_increase"]
        err_states = (est["states"] - got["torch_states"]) / got["torch_states"]
        rows.append({"case": case, **got, **{f"est_{k}": v for k, v in est.items()}, "error": err,
                     "error_states": err_states})
        print(f"{case:24} {micro * seq:7d} {chunk:5d} {'on' if ckpt else 'off':>4} | {est['total'] / GiB:8.3f} "
              f"{got['rss_increase'] / GiB:8.3f} {err:+7.1%} | {est['states'] / GiB:10.3f} "
              f"{got['torch_states'] / GiB:7.3f} {err_states:+6.1%} | {est['activations'] / GiB:7.3f} "
              f"{est['logits'] / GiB:10.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
