"""torchrun worker: one independent vLLM engine per rank, with uneven work per rank (no lockstep).

Usage: torchrun --nproc_per_node 2 worker_independent.py MODEL_DIR OUT_JSON
   or: python worker_independent.py MODEL_DIR OUT_JSON          (the single-process reference)

Each rank gets its share of PROMPTS (uneven counts and lengths, and a call where rank 0 has none), and
rank 1 makes calls rank 0 does not make at all: engines in data-parallel lockstep hang or pair mismatched
collectives there (the old layout dies), independent engines cannot. Then seeded sampling per rank, a per-rank weight sync (each rank pushes *different*
weights, so each engine is provably its own) with the probe, and the trainer's process group in use
after the engines are closed. Rank 0 writes the JSON (the reference run writes its own).
"""

import json
import os
import sys

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

import torch  # noqa: E402
from worker_single import Trainer, trainer_gap  # noqa: E402

from rlvr.generate import GenerationConfig, Request, Sampling, build_generator, probe_gap, probe_sequences  # noqa: E402
from rlvr.world import World  # noqa: E402

PROMPTS = [
    "What is 2 + 3?",
    "Let's think step by step about the sum of the first ten odd numbers, then box the answer.",
    "7 * 8 =",
    "Simplify 4 / 8.",
    "The final answer is",
    "Solve for x: 3x + 5 = 20. Show every step and check the result by substituting it back.",
]
# rank -> prompt indices, per call: uneven counts and lengths, and rank 0 with nothing in call 2
SHARES = [{0: [0, 1, 2, 3, 4], 1: [5]}, {0: [], 1: [0, 2, 5]}]
GREEDY = Sampling(n=1, temperature=0.0, max_tokens=24)


def main():
    path, out = sys.argv[1], sys.argv[2]
    world = World.from_env()
    world.init()  # the trainer's process group exists before the engine, as in a run
    gen = build_generator(GenerationConfig(max_model_len=256, kv_cache_gib=0.5, use_tqdm=False), path, world,
                          dtype="float32", seed=0)
    r = {"world_size": world.world_size, "dp": [gen.dp_rank, gen.dp_size], "greedy": {}, "calls": []}
    if not world.distributed:  # reference: every prompt in one call on one engine
        outs = gen.generate([Request(prompt=p) for p in PROMPTS], GREEDY)
        r["greedy"] = {i: cs[0].completion_ids for i, cs in enumerate(outs)}
    else:
        for share in SHARES:
            mine = share[world.rank]
            outs = gen.generate([Request(prompt=PROMPTS[i]) for i in mine], GREEDY)
            r["calls"].append([len(cs) for cs in outs])
            r["greedy"].update({i: cs[0].completion_ids for i, cs in zip(mine, outs, strict=True)})
        if world.rank == 1:  # calls the other rank never makes: no engine waits for another
            for _ in range(2):
                gen.generate([Request(prompt=PROMPTS[1])], Sampling(n=4, max_tokens=32, seed=9))
            gen.score([[1, 2, 3, 4]])
        r["extra_calls_then_zero"] = [len(cs) for cs in gen.generate([], GREEDY)]

    # sampled: seeded per rank (engine seed + dp_rank, request seeds hashed with dp_rank), logprobs exact
    trainer = Trainer(path)
    sampling = Sampling(n=8, max_tokens=16, logprobs=True, seed=7)
    samples = gen.generate([Request(prompt=PROMPTS[0])], sampling)[0]
    again = gen.generate([Request(prompt=PROMPTS[0])], sampling)[0]
    r["same_seed_same_samples"] = [c.completion_ids for c in samples] == [c.completion_ids for c in again]
    r["sampled_gap"] = trainer_gap(trainer.model, samples)
    r["samples"] = [c.completion_ids for c in samples]

    # per-rank weight sync: each rank moves its own copy differently; its engine follows, the probe agrees
    seqs = probe_sequences(gen.tokenizer, 4, 32)
    with torch.no_grad():
        g = torch.Generator().manual_seed(100 + world.rank)
        for p in trainer.model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    r["probe_stale"] = probe_gap(gen, trainer, seqs)
    r["sync_seconds"] = gen.sync_weights(trainer.model.named_parameters())
    r["probe_synced"] = probe_gap(gen, trainer, seqs)
    r["engine_scores"] = gen.score(seqs[:1])[0]
    gen.close()
    gathered = world.all_gather_object(r)  # the trainer's group outlives the engines
    if world.is_main:
        result = {"ranks": gathered, "pg_after_close": world.all_reduce_sum(1) if world.distributed else 1.0}
        with open(out, "w") as f:
            json.dump(result, f)
    elif world.distributed:
        world.all_reduce_sum(1)
    world.shutdown()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
