"""Generation throughput of the vLLM and HF backends on the same model and requests, plus the cost of
weight sync and the probe inside a colocated RL step (generate -> train step -> sync -> probe).

    python bench/generate.py                       # tiny model (as in tests), CPU, fp32, ZeRO-2
    python bench/generate.py --hidden 256 --layers 4 --heads 8 --max-tokens 128 --zero 3
    torchrun --nproc_per_node 2 bench/generate.py  # colocated engines on 2 ranks (numbers from rank 0)
    python bench/generate.py --model Qwen/Qwen2.5-Math-1.5B --dtype bfloat16 --max-tokens 512  # GPU

Prints one JSON object: tokens/s of each backend (the HF backend twice: rlvr's decode loop, "hf", and
transformers `generate`, "hf_generate") and their ratios, and per RL step the seconds of
generation, the train step, the weight sync and the probe, with sync and probe as a share of the step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

from rlvr.config import BackendConfig, OptimConfig, TinyModelSpec  # noqa: E402
from rlvr.generate import (  # noqa: E402
    GenerationConfig,
    Request,
    Sampling,
    build_generator,
    check_probe,
    probe_gap,
    probe_sequences,
)
from rlvr.world import World  # noqa: E402

QUESTIONS = ["What is {a} + {b}?", "Simplify {a} / {b}.", "Compute {a} * {b}.", "If x = {a}, what is x - {b}?"]


def requests(count: int) -> list[Request]:
    return [Request(messages=[{"role": "user", "content": QUESTIONS[i % 4].format(a=i + 3, b=2 * i + 1)}])
            for i in range(count)]


def tokens_per_s(gen, reqs, sampling, repeats: int) -> dict:
    gen.generate(reqs, sampling)  # warm-up (first-call compilation and allocation)
    rates, tokens = [], []
    for _ in range(repeats):
        gen.generate(reqs, sampling)
        rates.append(gen.last_stats["gen/tokens_per_s"])
        tokens.append(gen.last_stats["gen/tokens"])
    return {"tokens_per_s": statistics.median(rates), "tokens_per_call": statistics.median(tokens)}


def train_step(backend, world, completions):
    """A toy policy step on the sampled completions (NLL of the samples), through the backend facade."""
    import torch

    loss = 0.0
    for c in completions:
        ids = torch.tensor([c.prompt_ids + c.completion_ids], device=backend.device)
        logp = torch.log_softmax(backend.forward(input_ids=ids).logits[0, :-1].float(), -1)
        p = len(c.prompt_ids)
        loss = loss - logp[p - 1:].gather(-1, ids[0, p:, None]).sum()
    backend.backward(loss / world.all_reduce_sum(sum(len(c.completion_ids) for c in completions)))
    backend.step()


def rl_steps(args, path: Path, world: World, reqs, sampling) -> dict:
    from rlvr.backend import DeepSpeedBackend
    from rlvr.models.load import load_model

    backend = DeepSpeedBackend.wrap(load_model(path, dtype=args.dtype), world=world,
                                    config=BackendConfig(zero_stage=args.zero, micro_batch_size=1),
                                    optim=OptimConfig(lr=1e-3), dtype=args.dtype, total_steps=args.steps + 1)
    cfg = GenerationConfig(max_model_len=args.max_model_len, use_tqdm=False,
                           probe_threshold=1e-3 if args.dtype == "float32" else 0.1)
    gen = build_generator(cfg, str(path), world, dtype=args.dtype, seed=0)
    seqs = probe_sequences(gen.tokenizer, cfg.probe_sequences, cfg.probe_length)
    throughput = tokens_per_s(gen, reqs, sampling, args.repeats)  # before any update: same weights as HF's
    rows = []
    for step in range(args.steps + 1):
        t0 = time.perf_counter()
        outs = gen.generate(reqs, sampling)
        t1 = time.perf_counter()
        train_step(backend, world, [c for cs in outs for c in cs])
        t2 = time.perf_counter()
        sync = gen.sync_weights(backend.iter_full_params())
        t3 = time.perf_counter()
        probe = probe_gap(gen, backend, seqs)
        check_probe(probe, cfg.probe_threshold)
        t4 = time.perf_counter()
        if step:  # step 0 is warm-up
            rows.append({"generate": t1 - t0, "train": t2 - t1, "sync": sync, "sync_wall": t3 - t2,
                         "probe": t4 - t3, "step": t4 - t0, "gap": probe["gen/logprob_gap_max"]})
    gen.close()
    backend.close()
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return throughput, {
        "zero_stage": args.zero,
        "step_s": med["step"],
        "generate_s": med["generate"],
        "train_s": med["train"],
        "sync_s": med["sync_wall"],
        "probe_s": med["probe"],
        "sync_share": med["sync_wall"] / med["step"],
        "probe_share": med["probe"] / med["step"],
        "probe_gap_max": max(r["gap"] for r in rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--kv-heads", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-model-len", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5, help="RL steps timed (after one warm-up step)")
    ap.add_argument("--zero", type=int, default=2, choices=[0, 1, 2, 3])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--model", help="an HF checkpoint directory or hub id instead of a built tiny model")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()

    from rlvr.models.tiny import build_tiny
    from rlvr.tracking import quiet_libraries

    quiet_libraries()
    world = World.from_env()
    spec = TinyModelSpec(hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
                         num_kv_heads=args.kv_heads, intermediate_size=2 * args.hidden)
    with tempfile.TemporaryDirectory() as tmp:
        # every rank builds the same deterministic model
        path = Path(args.model) if args.model else build_tiny(spec, Path(tmp) / "model")
        reqs = requests(args.prompts)
        sampling = Sampling(n=args.n, temperature=1.0, max_tokens=args.max_tokens, seed=0, logprobs=True)
        result: dict = {"model": args.model or spec.model_dump(), "prompts": args.prompts, "n": args.n,
                        "max_tokens": args.max_tokens, "world_size": world.world_size}
        # vLLM throughput, then RL steps, on one colocated engine (one engine per process)
        result["vllm"], result["rl_step"] = rl_steps(args, path, world, reqs, sampling)
        # the HF backend twice: rlvr's decode loop (its default for Llama-family models) and transformers generate
        for key, fast in (("hf", True), ("hf_generate", False)):
            cfg = GenerationConfig(backend="hf", max_model_len=args.max_model_len, use_tqdm=False, hf_fast_decode=fast)
            gen = build_generator(cfg, str(path), world, dtype=args.dtype, seed=0)
            result[key] = tokens_per_s(gen, reqs, sampling, args.repeats)
            result[key]["fast_decode"] = bool(gen.fast_decode)
            gen.close()
        result["vllm_over_hf"] = result["vllm"]["tokens_per_s"] / result["hf"]["tokens_per_s"]
        result["hf_over_hf_generate"] = result["hf"]["tokens_per_s"] / result["hf_generate"]["tokens_per_s"]
    if world.is_main:
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    world.shutdown()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
