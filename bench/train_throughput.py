"""Training throughput of rlvr's backend (DeepSpeed facade) on a model shape with random weights.

    python bench/train_throughput.py                                   # tiny shape, CPU, fp32
    torchrun --nproc_per_node 1 bench/train_throughput.py --config bench/configs/qwen2.5-math-1.5b.json \
        --seq-len 4096 --zero 3 --dtype bfloat16 --grad-ckpt --micro 2 --steps 10

Packed sequences (documents of --doc-len tokens, position ids restarting per document) go through the
same forward/loss/backward/step path as the causal-LM stages. Reports tokens/s (per rank and total),
step time, peak memory and MFU. FLOPs per token = 6 * non-embedding params + 12 * layers * hidden *
seq_len (attention, causal not discounted: the usual PaLM-style accounting). Peak FLOPS: bf16 dense
of a known GPU, or --peak-tflops.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlvr.backend import DeepSpeedBackend  # noqa: E402
from rlvr.config import BackendConfig, OptimConfig  # noqa: E402
from rlvr.stages.causal_lm import token_nll  # noqa: E402
from rlvr.tracking import quiet_libraries  # noqa: E402
from rlvr.world import World  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}  # dense, per GPU


def build(config_path: Path, dtype: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    raw = {k: v for k, v in json.loads(config_path.read_text()).items() if not k.startswith("_")}
    config = AutoConfig.for_model(**raw)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    return model, config


def flops_per_token(model, config, seq_len: int) -> float:
    n = sum(p.numel() for p in model.parameters())
    n -= model.get_input_embeddings().weight.numel()  # embedding lookup is not a matmul
    return 6 * n + 12 * config.num_hidden_layers * config.hidden_size * seq_len


def peak_tflops(arg: float | None) -> float | None:
    if arg:
        return arg
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=Path(__file__).parent / "configs" / "tiny.json")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--doc-len", type=int, default=0, help="packed document length (0: one document per row)")
    p.add_argument("--micro", type=int, default=4, help="sequences per rank per micro-batch")
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--zero", type=int, default=2, choices=[0, 1, 2, 3])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--grad-ckpt", action="store_true")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args()

    quiet_libraries()
    world = World.from_env()
    model, config = build(args.config, args.dtype)
    fpt = flops_per_token(model, config, args.seq_len)
    backend = DeepSpeedBackend.wrap(
        model, world=world,
        config=BackendConfig(zero_stage=args.zero, micro_batch_size=args.micro, grad_accum=args.accum,
                             gradient_checkpointing=args.grad_ckpt),
        optim=OptimConfig(lr=1e-5), dtype=args.dtype, total_steps=args.warmup + args.steps,
    )
    g = torch.Generator().manual_seed(world.rank)
    ids = torch.randint(0, config.vocab_size, (args.micro, args.seq_len), generator=g).to(backend.device)
    doc = args.doc_len or args.seq_len
    pos = (torch.arange(args.seq_len) % doc).repeat(args.micro, 1).to(backend.device)
    targets = torch.roll(ids, -1, dims=1)
    targets[:, -1] = -100
    tokens_per_step = args.micro * args.accum * args.seq_len * world.world_size
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    times = []
    backend.train()
    for step in range(args.warmup + args.steps):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.accum):
            nll = token_nll(backend.scorer, targets, input_ids=ids, position_ids=pos, use_cache=False)
            backend.backward(nll.sum() / tokens_per_step)
        backend.step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    tps = tokens_per_step / step_s
    peak = peak_tflops(args.peak_tflops)
    achieved = tps * fpt / world.world_size / 1e12  # per device
    if torch.cuda.is_available():
        mem_gib = torch.cuda.max_memory_allocated() / 2**30
    else:
        mem_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = {
        "config": args.config.name, "params": sum(p.numel() for p in backend.module.parameters()) if args.zero != 3 else None,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "ranks": world.world_size, "zero": args.zero, "dtype": args.dtype, "grad_ckpt": args.grad_ckpt,
        "seq_len": args.seq_len, "micro": args.micro, "accum": args.accum,
        "step_s": round(step_s, 4), "tokens_per_s": round(tps, 1), "tokens_per_s_per_rank": round(tps / world.world_size, 1),
        "achieved_tflops_per_rank": round(achieved, 3), "mfu": round(achieved / peak, 4) if peak else None,
        "peak_mem_gib": round(mem_gib, 2), "peak_mem_kind": "cuda max allocated" if torch.cuda.is_available() else "host max RSS",
    }
    if world.is_main:
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    backend.close()
    world.shutdown()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
