"""torchrun worker: colocated vLLM next to a DeepSpeed trainer, weight sync + probe after every step.

Usage: torchrun --nproc_per_node 2 worker_sync.py MODEL_DIR ZERO_STAGE OUT_JSON STEPS [SKIP_AT]
Each step: sample (n=4, seeded) on every rank, compare the sampled logprobs with the trainer's forward,
train on the samples (a toy loss that moves the weights), sync the full parameters into the engine,
probe. With SKIP_AT, the sync of that step is skipped: the probe must stop the run (StaleWeightsError,
exit code 3, message on stderr). Rank 0 writes the JSON result before that.
"""

import json
import os
import sys

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

import torch  # noqa: E402

from rlvr.backend import DeepSpeedBackend  # noqa: E402
from rlvr.config import BackendConfig, OptimConfig  # noqa: E402
from rlvr.generate import (  # noqa: E402
    GenerationConfig,
    Request,
    Sampling,
    StaleWeightsError,
    build_generator,
    check_probe,
    probe_gap,
    probe_sequences,
)
from rlvr.models.load import load_model  # noqa: E402
from rlvr.world import World  # noqa: E402

PROMPTS = [[{"role": "user", "content": "What is 2 + 3?"}], [{"role": "user", "content": "Simplify 4 / 8."}]]


def sampled_gap_and_loss(backend, completions):
    """Max |engine logprob - trainer logprob| of the sampled tokens, and a loss on them (sum of NLL)."""
    gap, loss = 0.0, 0.0
    for c in completions:
        ids = torch.tensor([c.prompt_ids + c.completion_ids], device=backend.device)
        logp = torch.log_softmax(backend.forward(input_ids=ids).logits[0, :-1].float(), -1)
        p = len(c.prompt_ids)
        tok = logp[p - 1:].gather(-1, ids[0, p:, None])[:, 0]
        gap = max(gap, (tok.detach().cpu() - torch.tensor(c.logprobs)).abs().max().item())
        loss = loss - tok.sum()
    return gap, loss


def run(world, backend, gen, steps, skip_at, result):
    seqs = probe_sequences(gen.tokenizer, 4, 32)
    check_probe(probe_gap(gen, backend, seqs), 1e-5)  # engine and trainer start from the same checkpoint
    requests = [Request(messages=m) for m in PROMPTS]
    for step in range(steps):
        greedy = gen.generate(requests, Sampling(n=1, temperature=0.0, max_tokens=16))
        result["greedy"].append([cs[0].completion_ids for cs in greedy])
        samples = gen.generate(requests, Sampling(n=4, max_tokens=16, logprobs=True, seed=step))
        flat = [c for cs in samples for c in cs]
        result["samples"].append([c.completion_ids for c in flat])
        result["tokens_per_s"].append(gen.last_stats["gen/tokens_per_s"])
        gap, loss = sampled_gap_and_loss(backend, flat)
        result["sampled_gap"].append(gap)
        ntok = world.all_reduce_sum(sum(len(c.completion_ids) for c in flat))
        backend.backward(loss / ntok)
        backend.step()
        if step == skip_at:
            result["skipped"] = step
        else:
            result["sync_seconds"].append(gen.sync_weights(backend.iter_full_params()))
        metrics = probe_gap(gen, backend, seqs)
        result["probe"].append(metrics)
        if world.is_main:
            with open(result["out"], "w") as f:
                json.dump(result, f)
        check_probe(metrics, 1e-5)
    # seeds: the same seed again gives the same samples (weights unchanged since the last sync)
    again = [gen.generate(requests, Sampling(n=4, max_tokens=16, seed=123)) for _ in range(2)]
    ids = [[c.completion_ids for cs in a for c in cs] for a in again]
    result["same_seed_same_samples"] = ids[0] == ids[1]
    result["rank_samples"] = world.all_gather_object(ids[0])
    result["rank_greedy"] = world.all_gather_object(result["greedy"][-1])
    # uneven work: rank 1 has no requests this round and must still take part (no hang)
    part = gen.generate(requests if world.rank == 0 else [], Sampling(n=2, max_tokens=8))
    result["uneven"] = world.all_gather_object([len(cs) for cs in part])


def main():
    path, stage, out, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    skip_at = int(sys.argv[5]) if len(sys.argv) > 5 else -1
    world = World.from_env()
    backend = DeepSpeedBackend.wrap(load_model(path), world=world,
                                    config=BackendConfig(zero_stage=stage, micro_batch_size=1),
                                    optim=OptimConfig(lr=3e-2, weight_decay=0.0), dtype="float32", total_steps=steps)
    gen = build_generator(GenerationConfig(max_model_len=256, kv_cache_gib=1.0, use_tqdm=False), path, world,
                          dtype="float32", seed=0)
    result = {"out": out, "world_size": world.world_size, "greedy": [], "samples": [], "sampled_gap": [],
              "sync_seconds": [], "probe": [], "tokens_per_s": [], "skipped": None}
    code = 0
    try:
        run(world, backend, gen, steps, skip_at, result)
    except StaleWeightsError as e:
        print(f"rank {world.rank}: StaleWeightsError: {e}", file=sys.stderr, flush=True)
        code = 3
    if world.is_main:
        with open(out, "w") as f:
            json.dump(result, f)
    gen.close()
    backend.close()
    if code == 0:
        world.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
