"""Distillation data from a teacher (Phi-4-Mini-Reasoning's data pipeline for its stages 1-3): teacher
rollouts, judged by the shared verifier, become SFT data and rollout-DPO pairs.

Procedure, as implemented:
  1. prompts and golds: the stage's `data` rows (`prompt` + prompt_suffix, `answer`);
  2. rollouts: chunk by chunk (`chunk_size` prompts), the teacher samples k = samples_per_prompt responses
     per prompt (prompts sharded over the generator's data-parallel ranks), every rank judges its share with
     the recipe's `verifier`, and rank 0 appends the chunk to the cache (fsync'ed). A killed stage resumes at
     the first chunk the cache lacks; a prompt torn in half by the kill is sampled again. The cache is named
     by a fingerprint of the teacher's files (their bytes), the prompts and golds and the sampling settings,
     so another teacher or setting never reuses rollouts;
  3. selection, per prompt on all k samples (Phi-4's options): drop prompts never solved / always solved,
     and prompts whose response lengths vary more than selection.max_length_cv (std / mean);
  4. outputs of the kept prompts: sft.jsonl = verifier-correct, finished responses (`keep`: all, the
     shortest, or one random per prompt); pairs.jsonl = (correct, incorrect) responses to the same prompt,
     `pairs_per_prompt` at most, in the dpo stage's format; rollouts.jsonl = every sample of every prompt
     with its verdict and reason; stats.json = per-prompt accuracy and the statistics below. Each is written
     to a temporary name and renamed;
  5. summary metrics: teacher accuracy, solved share, response lengths, prompts each filter dropped, rows.

Sampling is reproducible: chunk c is sampled with seed (recipe seed, c), as in an evaluation sweep.
The stage makes no model. Later stages read it by name: `data: {from_stage: NAME, part: sft}` (midtrain,
SFT) and `pairs_from: NAME` (dpo).

Test hook: RLVR_DISTILL_KILL_AFTER_CHUNKS=N makes rank 0 SIGKILL itself right after its N-th appended chunk.

Launch: as part of `rlvr run RECIPE` (one process, or torchrun: the prompts are sharded over ranks).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rlvr.config import DistillSelection, DistillStage
from rlvr.data.lm import chat_messages
from rlvr.data.sources import load_rows
from rlvr.eval.cache import CacheFile
from rlvr.rundir import write_atomic
from rlvr.stages.context import StageContext, StageResult, fingerprint

OUTPUTS = ("rollouts.jsonl", "sft.jsonl", "pairs.jsonl", "stats.json")


# ------------------------------------------------------------------------------------ the teacher's identity
def teacher_fingerprint(model: str) -> str:
    """A hash of the teacher's files (weights, config, tokenizer, chat template: everything at the top of its
    directory, by content). A hub id is hashed through its snapshot in the local Hugging Face cache when
    there is one (the snapshot's files), else by the id itself (pin another model by its local path)."""
    path = Path(model)
    if not path.is_dir():
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(model, local_files_only=True))
        except Exception:  # not cached (or not a hub id): the id is all we know
            return hashlib.blake2b(f"hub:{model}".encode(), digest_size=8).hexdigest()
    digest = hashlib.blake2b(digest_size=8)
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(f.name.encode())
        with open(f, "rb") as fh:
            digest.update(hashlib.file_digest(fh, "blake2b").digest())
    return digest.hexdigest()


def cache_key(cfg: DistillStage, teacher: str, prompts: list[str], golds: list[str], seed: int) -> str:
    """The cache's name: teacher files, prompts and golds, and every setting a sample depends on."""
    sampling = cfg.model_dump(mode="json", include={"samples_per_prompt", "temperature", "top_p",
                                                    "max_response_tokens", "system_prompt", "chunk_size"})
    return fingerprint([teacher, fingerprint([prompts, golds]), sampling, seed, cfg.generation.backend,
                        cfg.generation.dtype])


# ------------------------------------------------------------------------------------ rollouts
def complete_prompts(rows: list[dict[str, Any]], k: int) -> dict[int, list[dict[str, Any]]]:
    """The cached prompts that have all k samples (a prompt torn by a kill is sampled again), by index."""
    by_prompt: dict[int, dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_prompt.setdefault(r["index"], {})[r["sample"]] = r
    return {i: [s[j] for j in range(k)] for i, s in by_prompt.items() if all(j in s for j in range(k))}


def sample_and_judge(generator: Any, verifier: Any, cfg: DistillStage, prompts: list[str], golds: list[str],
                     indices: list[int], seed: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """k teacher samples for each prompt in `indices`, judged: one row per (prompt, sample), and the seconds
    spent generating and judging."""
    from rlvr.generate import Request, Sampling

    requests = [Request(messages=chat_messages({"prompt": prompts[i], "response": ""}, cfg.system_prompt)[:-1])
                for i in indices]
    sampling = Sampling(n=cfg.samples_per_prompt, temperature=cfg.temperature, top_p=cfg.top_p,
                        max_tokens=cfg.max_response_tokens, seed=seed,
                        stop_token_ids=[generator.tokenizer.eos_token_id])
    t0 = time.perf_counter()
    outs = generator.generate(requests, sampling)
    t1 = time.perf_counter()
    samples = [(i, s, c) for i, cs in zip(indices, outs, strict=True) for s, c in enumerate(cs)]
    verdicts = verifier.verify_batch([c.text for _, _, c in samples], [golds[i] for i, _, _ in samples],
                                     truncated=[c.finish_reason == "length" for _, _, c in samples])
    rows = [{"index": i, "sample": s, "prompt": prompts[i], "completion": c.text, "gold": golds[i],
             "correct": v.score == 1.0, "reason": v.reason, "answer": v.answer, "finish_reason": c.finish_reason,
             "truncated": c.finish_reason == "length", "num_tokens": len(c.completion_ids)}
            for (i, s, c), v in zip(samples, verdicts, strict=True)]
    return rows, {"generate": t1 - t0, "verify": time.perf_counter() - t1}


def fill_cache(ctx: StageContext, cache: CacheFile, prompts: list[str], golds: list[str],
               done: set[int]) -> dict[str, float]:
    """Sample and judge every chunk with a prompt not in `done`; rank 0 appends each chunk. Returns the
    samples generated and the seconds spent generating, judging and writing."""
    from rlvr.generate import build_generator
    from rlvr.tracking import progress, quiet_libraries
    from rlvr.verify import Verifier

    cfg, world = ctx.cfg, ctx.world
    chunks = [(c, [i for i in range(start, min(start + cfg.chunk_size, len(prompts))) if i not in done])
              for c, start in enumerate(range(0, len(prompts), cfg.chunk_size))]
    chunks = [(c, idx) for c, idx in chunks if idx]
    quiet_libraries()
    generator = build_generator(cfg.generation, ctx.input_model, world, dtype=ctx.recipe.model.dtype,
                                seed=ctx.recipe.seed)
    totals = {"samples": 0, "tokens": 0, "generate": 0.0, "verify": 0.0, "write": 0.0}
    bar = progress(len(chunks), f"{cfg.name} chunks", enabled=world.is_main)
    try:
        with Verifier(ctx.recipe.verifier) as verifier:
            for c, idx in chunks:
                lo, hi = generator.dp_rank * len(idx) // generator.dp_size, (generator.dp_rank + 1) * len(idx) // generator.dp_size
                rows, seconds = sample_and_judge(generator, verifier, cfg, prompts, golds, idx[lo:hi],
                                                 seed=ctx.recipe.seed * 1_000_003 + c)
                gathered = {(r["index"], r["sample"]): r for part in world.all_gather_object(rows) for r in part}
                chunk_rows = [gathered[key] for key in sorted(gathered)]  # tensor-parallel ranks duplicate rows
                t0 = time.perf_counter()
                if world.is_main:
                    cache.append(chunk_rows)
                    chunk_written()
                seconds["write"] = time.perf_counter() - t0
                for key, value in seconds.items():  # rank 0's clock: generation is collective
                    totals[key] += value
                totals["samples"] += len(chunk_rows)
                tokens = sum(r["num_tokens"] for r in chunk_rows)
                totals["tokens"] += tokens
                ctx.tracker.log(cfg.name, c + 1, {
                    "accuracy": sum(r["correct"] for r in chunk_rows) / len(chunk_rows),
                    "response/length_mean": tokens / len(chunk_rows),
                    "samples_per_s": len(chunk_rows) / max(seconds["generate"], 1e-9),
                    "tokens_per_s": tokens / max(seconds["generate"], 1e-9)})
                bar.update(1)
    finally:
        bar.close()
        generator.close()
    return totals


_CHUNKS_WRITTEN = 0


def chunk_written() -> None:
    global _CHUNKS_WRITTEN
    _CHUNKS_WRITTEN += 1
    limit = os.environ.get("RLVR_DISTILL_KILL_AFTER_CHUNKS")
    if limit and _CHUNKS_WRITTEN >= int(limit):
        print(f"rlvr distill: RLVR_DISTILL_KILL_AFTER_CHUNKS={limit}: killing myself", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------------------ selection
def length_cv(lengths: list[int]) -> float:
    """std / mean of a prompt's response lengths (population std, as the rlvr stage's prompt filter)."""
    mean = sum(lengths) / len(lengths)
    return statistics.pstdev(lengths) / max(mean, 1)


def drop_reason(samples: list[dict[str, Any]], selection: DistillSelection) -> str | None:
    """Which of Phi-4's filters drops this prompt (the first that applies), or None."""
    accuracy = sum(r["correct"] for r in samples) / len(samples)
    if selection.drop_never_solved and accuracy == 0:
        return "never_solved"
    if selection.drop_always_solved and accuracy == 1:
        return "always_solved"
    if selection.max_length_cv is not None and length_cv([r["num_tokens"] for r in samples]) > selection.max_length_cv:
        return "length_cv"
    return None


def sft_rows(samples: list[dict[str, Any]], keep: str, rng: random.Random) -> list[dict[str, Any]]:
    """The prompt's finished, verifier-correct responses that `keep` keeps, as problem/solution/answer rows."""
    good = [r for r in samples if r["correct"] and not r["truncated"]]
    if good and keep == "shortest":
        good = [min(good, key=lambda r: r["num_tokens"])]
    elif good and keep == "one_per_prompt":
        good = [rng.choice(good)]
    return [{"problem": r["prompt"], "solution": r["completion"], "answer": r["gold"], "index": r["index"],
             "sample": r["sample"], "num_tokens": r["num_tokens"]} for r in good]


def pair_rows(samples: list[dict[str, Any]], cfg: DistillStage, rng: random.Random) -> list[dict[str, Any]]:
    """Up to pairs_per_prompt distinct (chosen correct, rejected incorrect) pairs, the dpo stage's format."""
    pos = [r for r in samples if r["correct"] and not r["truncated"]]
    neg = [r for r in samples if not r["correct"] and (cfg.allow_truncated_rejected or not r["truncated"])]
    combos = [(a, b) for a in pos for b in neg]
    return [{"prompt": a["prompt"], "gold": a["gold"], "chosen": a["completion"], "rejected": b["completion"],
             "chosen_reason": a["reason"], "rejected_reason": b["reason"]}
            for a, b in rng.sample(combos, min(cfg.pairs_per_prompt, len(combos)))]


def select(groups: list[list[dict[str, Any]]], cfg: DistillStage, seed: int) -> dict[str, Any]:
    """sft rows, pairs and the statistics of the judged groups (one list of k samples per prompt)."""
    rng = random.Random(f"{seed}|distill")
    sft, pairs = [], []
    dropped = {"never_solved": 0, "always_solved": 0, "length_cv": 0}
    for g in groups:
        reason = drop_reason(g, cfg.selection)
        if reason is not None:
            dropped[reason] += 1
            continue
        sft += sft_rows(g, cfg.keep, rng)
        pairs += pair_rows(g, cfg, rng)
    return {"sft": sft, "pairs": pairs, "stats": statistics_of(groups, dropped, len(sft), len(pairs))}


def statistics_of(groups: list[list[dict[str, Any]]], dropped: dict[str, int], n_sft: int, n_pairs: int) -> dict[str, Any]:
    samples = [r for g in groups for r in g]
    k = len(groups[0]) if groups else 0
    per_prompt = [sum(r["correct"] for r in g) / len(g) for g in groups]
    lengths = sorted(r["num_tokens"] for r in samples)
    correct = [r["num_tokens"] for r in samples if r["correct"]]
    wrong = [r["num_tokens"] for r in samples if not r["correct"]]

    def mean(xs: list[int]) -> float:
        return sum(xs) / len(xs) if xs else 0.0

    summary = {
        "prompts": len(groups), "samples": len(samples), "samples_per_prompt": k,
        "teacher_accuracy": mean([r["correct"] for r in samples]),
        "solved_share": mean([a > 0 for a in per_prompt]), "all_solved_share": mean([a == 1 for a in per_prompt]),
        "length_mean": mean(lengths), "length_p50": lengths[len(lengths) // 2] if lengths else 0,
        "length_p90": lengths[int(0.9 * (len(lengths) - 1))] if lengths else 0, "length_max": lengths[-1] if lengths else 0,
        "length_correct_mean": mean(correct), "length_incorrect_mean": mean(wrong),
        "truncated_share": mean([r["truncated"] for r in samples]),
        **{f"dropped_{name}": n for name, n in dropped.items()},
        "prompts_kept": len(groups) - sum(dropped.values()), "sft_rows": n_sft, "pairs": n_pairs,
    }
    histogram = {f"{j}/{k}": sum(round(a * k) == j for a in per_prompt) for j in range(k + 1)}
    return {"summary": summary, "prompt_accuracy_histogram": histogram, "prompt_accuracy": per_prompt}


def write_outputs(stage_dir: Path, groups: list[list[dict[str, Any]]], chosen: dict[str, Any]) -> None:
    def jsonl(rows: list[dict[str, Any]]) -> str:
        return "".join(json.dumps(r) + "\n" for r in rows)  # ASCII: a U+2028 in a completion stays escaped

    write_atomic(stage_dir / "rollouts.jsonl", jsonl([r for g in groups for r in g]))
    write_atomic(stage_dir / "sft.jsonl", jsonl(chosen["sft"]))
    write_atomic(stage_dir / "pairs.jsonl", jsonl(chosen["pairs"]))
    write_atomic(stage_dir / "stats.json", json.dumps(chosen["stats"], indent=1) + "\n")


# ------------------------------------------------------------------------------------ the stage
def main(ctx: StageContext) -> StageResult:
    cfg, world = ctx.cfg, ctx.world
    stage_dir = ctx.run.stage(cfg.name)
    rows = load_rows(cfg.data, needs=("prompt", "answer"), run=ctx.run)
    prompts, golds = [r["prompt"] + cfg.prompt_suffix for r in rows], [r["answer"] for r in rows]

    # 1-2. the teacher's rollouts: what the cache lacks, chunk by chunk
    key = world.broadcast_object(
        cache_key(cfg, teacher_fingerprint(ctx.input_model), prompts, golds, ctx.recipe.seed) if world.is_main else None)
    cache = CacheFile(stage_dir, "teacher", "rollouts", key)
    done = set(world.broadcast_object(list(complete_prompts(cache.read(), cfg.samples_per_prompt))
                                      if world.is_main else None))
    world.print0(f"[{cfg.name}] teacher {ctx.input_model}: {len(prompts)} prompts x {cfg.samples_per_prompt} samples; "
                 f"{len(done)} prompts cached ({cache})")
    totals = {"samples": 0, "tokens": 0, "generate": 0.0, "verify": 0.0, "write": 0.0}
    if len(done) < len(prompts):
        totals = fill_cache(ctx, cache, prompts, golds, done)

    # 3-5. selection, outputs, statistics (rank 0 holds the cache)
    metrics = None
    if world.is_main:
        cached = complete_prompts(cache.read(), cfg.samples_per_prompt)
        groups = [cached[i] for i in range(len(prompts))]
        chosen = select(groups, cfg, ctx.recipe.seed)
        write_outputs(stage_dir, groups, chosen)
        cache.write_meta({"teacher": ctx.input_model, "fingerprint": key, "prompts": len(prompts), "complete": True,
                          "settings": cfg.model_dump(mode="json", exclude={"data", "selection"})})
        metrics = {**chosen["stats"]["summary"], "generated": totals["samples"],
                   "generate_seconds": round(totals["generate"], 2), "verify_seconds": round(totals["verify"], 2),
                   "write_seconds": round(totals["write"], 2),
                   "tokens_per_s": totals["tokens"] / totals["generate"] if totals["generate"] else 0.0}
        s = metrics
        print(f"[{cfg.name}] teacher accuracy {s['teacher_accuracy']:.3f}, {s['solved_share']:.0%} of prompts solved; "
              f"kept {s['prompts_kept']} prompts (dropped: {s['dropped_never_solved']} never solved, "
              f"{s['dropped_always_solved']} always solved, {s['dropped_length_cv']} uneven lengths) -> "
              f"{s['sft_rows']} sft rows, {s['pairs']} pairs; generated {s['generated']} samples", flush=True)
    metrics = world.broadcast_object(metrics)
    return StageResult(steps=0, metrics=metrics, output=str(stage_dir))
