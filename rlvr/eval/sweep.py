"""Run a sweep: generate what the cache lacks, judge it with the shared verifier, score, report.

For each checkpoint, benchmark, setting and seed (rlvr.eval.spec.Sweep), in order:
  1. read the cache file (rlvr.eval.cache); every grader of the benchmark (the `verifier`, or each of
     `graders`) that has not judged its rows with its current settings re-judges them from the cached
     completions (nothing is generated for them);
  2. the (problem, sample) pairs it lacks are generated in chunks of `chunk_size` pairs, judged, and
     appended, so a killed sweep resumes where it stopped. The engine starts only when a checkpoint
     has something to generate: a finished sweep reruns without loading a model;
  3. one progress line per (checkpoint, benchmark): each setting's avg@k, what was generated, seconds.
Then OUT/scores.json (one row per checkpoint x benchmark x setting x seed x grader, and with several
graders the completions they disagree on) and the report.

Sampling is reproducible: a chunk is sampled with seed (seed, chunk number) and request i of rank r
with blake2b(that, r, i) (rlvr.generate), over a fixed order of pairs (problem by problem, k samples
each). An interrupted sweep therefore draws the same samples as an uninterrupted one with the same
chunk_size and number of ranks; other world sizes draw other (equally valid) samples.

Under torchrun every rank takes a contiguous share of each chunk's pairs (by data-parallel rank),
generates (a collective call), judges its own share, and rank 0 gathers and writes. One process is the
CPU default.

Test hook: RLVR_EVAL_KILL_AFTER_CHUNKS=N makes the process SIGKILL itself right after its N-th appended
chunk (how the tests interrupt a sweep at a known point).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from rlvr.eval.cache import CacheFile, verdict_config
from rlvr.eval.spec import Checkpoint, Sweep
from rlvr.rundir import write_atomic
from rlvr.schema import UserError
from rlvr.world import World


class SweepError(Exception):
    """A sweep cannot go on (caches from other data or models, missing generations with --score-only)."""


_CHUNKS_WRITTEN = 0


# ------------------------------------------------------------------------------------ the sweep
def run_sweep(sweep: Sweep, world: World, *, checkpoint_index: int | None = None, score_only: bool = False,
              report: bool = True) -> dict[str, Any] | None:
    """Fill the caches (or, score_only, only re-judge them), then write scores.json and the report.
    With checkpoint_index, only that checkpoint's caches are filled (a SLURM array task) and no
    scores are written. Returns the scores (rank 0; None on other ranks and with checkpoint_index)."""
    from rlvr.eval.benchmarks import load_problems

    if checkpoint_index is not None and not 0 <= checkpoint_index < len(sweep.checkpoints):
        raise SweepError(f"--checkpoint-index {checkpoint_index}: the sweep has {len(sweep.checkpoints)} "
                         f"checkpoints (0..{len(sweep.checkpoints) - 1})")
    if world.is_main:
        sweep.out.mkdir(parents=True, exist_ok=True)
        write_atomic(sweep.out / "spec.yaml", yaml.safe_dump(sweep.resolved(), sort_keys=False))
    problems = {name: load_problems(bench) for name, bench in sweep.benchmarks.items()}
    if score_only:
        missing = world.broadcast_object(missing_generations(sweep, problems) if world.is_main else None)
        if missing:
            raise SweepError(f"--score-only: {len(missing)} cache file(s) under {sweep.out}/generations are "
                             "missing or incomplete (run `rlvr eval` without --score-only, or with "
                             "--checkpoint-index, to generate them):\n  " + "\n  ".join(missing))
    stats: Counter = Counter()
    chosen = sweep.checkpoints if checkpoint_index is None else [sweep.checkpoints[checkpoint_index]]
    for ckpt in chosen:
        evaluate_checkpoint(sweep, ckpt, problems, world, stats, generate=not score_only)
    world.print0(f"rlvr eval: {stats['generated']} completions generated, {stats['reused']} reused from the "
                 f"cache, {stats['rejudged']} re-judged")
    if checkpoint_index is not None or not world.is_main:
        return None
    scores = collect_scores(sweep, problems)
    write_atomic(sweep.out / "scores.json", json.dumps(scores, indent=2) + "\n")
    if report:
        print_report(sweep.out)
    world.print0(f"scores: {sweep.out / 'scores.json'}")
    return scores


def print_report(directory: Path) -> None:
    from rlvr.eval.report import write_report

    print(f"report: {write_report(directory)}", flush=True)


def evaluate_checkpoint(sweep: Sweep, ckpt: Checkpoint, problems: dict[str, list], world: World,
                        stats: Counter, generate: bool = True, *, generator=None, verifier=None,
                        quiet: bool = False) -> None:
    """Fill (or only re-judge) one checkpoint's caches. `generator`: an engine that already holds the
    checkpoint's weights (an rlvr stage's validation: its own engine, synced to the trainer), used
    instead of loading ckpt.path and left open; `verifier`: a started Verifier, reused wherever its
    config is the one a benchmark needs, and left open. `quiet`: no per-benchmark line."""
    from rlvr.eval.templates import TEMPLATES
    from rlvr.verify import Verifier

    engine: dict[str, Any] = {} if generator is None else {"generator": generator}  # else started on first need
    verifiers: dict[str, Verifier] = {} if verifier is None else {_config_key(verifier.config): verifier}
    try:
        for name, runs in sweep.settings.items():
            t0, before, parts = time.time(), stats["generated"], []
            judges = {}  # policy -> Verifier, the primary first
            for policy, config in sweep.graders_for(name).items():
                key = _config_key(config)
                if key not in verifiers:
                    verifiers[key] = Verifier(config)
                judges[policy] = verifiers[key]
            for setting, seed in runs:
                cache = CacheFile(sweep.out, ckpt.slug, name, setting.key(seed))
                template = TEMPLATES[setting.template]
                missing = world.broadcast_object(
                    _or_error(open_cache, cache, sweep, ckpt, name, setting, seed, problems[name], judges, stats)
                    if world.is_main else None)
                if isinstance(missing, SweepError):
                    raise missing
                if missing and generate:
                    if "generator" not in engine:
                        engine["generator"] = start_generator(sweep, ckpt, world)
                    fill_cache(cache, engine["generator"], judges, template, setting, seed, problems[name],
                               missing, sweep.chunk_size, world, stats)
                if world.is_main:
                    rows = cache.read()
                    score = score_cache(rows, problems[name], setting.k)
                    parts.append(f"T{setting.temperature:g} k{setting.k} s{seed} "
                                 + (f"{score['avg@k']:.3f}" if score else "incomplete"))
            if not quiet:
                world.print0(f"[eval] {ckpt.label} {name}: {' | '.join(parts)}  (n={len(problems[name])}, "
                             f"generated {stats['generated'] - before}, {time.time() - t0:.1f} s)")
    finally:
        if "generator" in engine and engine["generator"] is not generator:
            engine["generator"].close()
        for v in verifiers.values():
            if v is not verifier:
                v.close()


def _config_key(config) -> str:
    return json.dumps(config.model_dump(mode="json"), sort_keys=True)


def _or_error(fn, *args):
    """fn(*args), or the SweepError it raised (broadcast to every rank so that all of them stop)."""
    try:
        return fn(*args)
    except SweepError as err:
        return err


def start_generator(sweep: Sweep, ckpt: Checkpoint, world: World):
    from rlvr.generate import build_generator
    from rlvr.tracking import quiet_libraries

    quiet_libraries()
    world.print0(f"[eval] loading {ckpt.label} ({ckpt.path}) with {sweep.generation.backend}")
    return build_generator(sweep.generation, ckpt.path, world, dtype=sweep.dtype, seed=0)


# ------------------------------------------------------------------------------------ one cache file
def open_cache(cache: CacheFile, sweep: Sweep, ckpt: Checkpoint, bench: str, setting, seed: int,
               problems: list, judges: dict, stats: Counter) -> list[tuple[int, int]]:
    """Rank 0: check the cache against this sweep, judge its rows under every grader (policy -> Verifier,
    the primary first) that has not judged them with its current settings (from the cached
    completions: nothing is regenerated), write its sidecar, and return the (problem index, sample)
    pairs it still lacks."""
    rows = cache.read()
    meta = cache.read_meta()
    check_cache(cache, meta, rows, ckpt, problems)
    primary = next(iter(judges))
    judged = judged_by(meta)
    stale = [p for p, v in judges.items()
             if rows and (judged.get(p) != verdict_config(v.config) or any(p not in row_verdicts(r, meta) for r in rows))]
    if rows and (stale or (meta or {}).get("verifier", {}).get("policy") != primary):
        fresh = {p: judge_texts(judges[p], setting.template, bench, rows) for p in stale}
        rows = [with_verdicts(r, {**row_verdicts(r, meta), **{p: v[i] for p, v in fresh.items()}}, primary,
                              several=len(judges) > 1) for i, r in enumerate(rows)]
        cache.rewrite(rows)
        stats["rejudged"] += len(rows) * len(stale)
        if stale:
            meta = {**(meta or {}), "rejudged": {"from": verdict_config(meta.get("verifier")), "rows": len(rows),
                                         "graders": stale, "generated": 0,
                                         "note": "verdicts re-judged from the cached completions under these "
                                                 "graders; nothing was regenerated"}}
    have = {(r["index"], r["sample"]) for r in rows}
    wanted = [(p.index, s) for p in problems for s in range(setting.k)]
    missing = [pair for pair in wanted if pair not in have]
    stats["reused"] += len(wanted) - len(missing)
    graders = {**((meta or {}).get("graders") or {}), **{p: v.config.model_dump(mode="json") for p, v in judges.items()}}
    cache.write_meta({**(meta or {}), "checkpoint": ckpt.dump(), "weights": weights_fingerprint(ckpt.path),
                      "benchmark": sweep.benchmarks[bench].model_dump(mode="json"),
                      "setting": setting.model_dump(mode="json"), "seed": seed,
                      "verifier": judges[primary].config.model_dump(mode="json"), "graders": graders,
                      "complete": not missing,
                      "seconds": (meta or {}).get("seconds", 0.0), "tokens": sum(r["num_tokens"] for r in rows)})
    return missing


def judged_by(meta: dict | None) -> dict[str, dict]:
    """policy -> verdict_config of the verdicts a cache holds under that policy's name (a sidecar written
    before `graders` existed names only its `verifier`, whose verdicts are the rows' own fields)."""
    if not meta:
        return {}
    configs = dict(meta.get("graders") or {})
    if meta.get("verifier"):
        configs[meta["verifier"]["policy"]] = meta["verifier"]
    return {p: verdict_config(c) for p, c in configs.items()}


def row_verdicts(row: dict, meta: dict | None) -> dict[str, dict]:
    """policy -> {answer, correct, reason} of one cache row: its `verdicts` and, under the sidecar's
    `verifier` policy, its own fields."""
    own = {k: row.get(k) for k in ("answer", "correct", "reason")}
    top = ((meta or {}).get("verifier") or {}).get("policy")
    return {**({top: own} if top else {}), **(row.get("verdicts") or {})}


def with_verdicts(row: dict, verdicts: dict[str, dict], primary: str, *, several: bool) -> dict:
    """The row with the primary grader's verdict as its own fields and, with several graders (or
    verdicts from an earlier sweep with several), every grader's under `verdicts`."""
    row = {**row, **verdicts[primary]}
    if several or "verdicts" in row:
        row["verdicts"] = {**(row.get("verdicts") or {}), **verdicts}
    return row


def paper_benchmark(name: str) -> str | None:
    """The name qwen_math_eval's per-benchmark rules know a benchmark by (rlvr.verify.paper_rules); None
    for others (they get its math500 rules)."""
    from rlvr.verify.paper_rules import BENCHMARKS

    name = {"minerva": "minerva_math"}.get(name, name)
    return name if name in BENCHMARKS else None


def judge_texts(verifier, template_name: str, bench: str, rows: list[dict]) -> list[dict]:
    """One grader's verdicts ({answer, correct, reason}) on cached rows, from their completions."""
    from rlvr.eval.templates import TEMPLATES, graded_text

    template = TEMPLATES[template_name]
    results = verifier.verify_batch([graded_text(template, r["completion"]) for r in rows], [r["gold"] for r in rows],
                                    truncated=[r["finish_reason"] == "length" for r in rows],
                                    benchmarks=[paper_benchmark(bench)] * len(rows))
    return [{"answer": v.answer, "correct": v.score == 1.0, "reason": v.reason} for v in results]


def check_cache(cache: CacheFile, meta: dict | None, rows: list[dict], ckpt: Checkpoint, problems: list) -> None:
    """Refuse a cache made from another model or other problems under the same names."""
    if meta and not _same_model(meta["checkpoint"]["path"], ckpt.path):
        raise SweepError(f"{cache}: generated by {meta['checkpoint']['path']}, but label '{ckpt.label}' is now "
                         f"{ckpt.path}; give one of them another `label`, use another `out`, or delete the file")
    now = weights_fingerprint(ckpt.path)
    if rows and meta and meta.get("weights") and now and meta["weights"] != now:
        raise SweepError(f"{cache}: generated from other weights than {ckpt.path} holds now (the checkpoint was "
                         "retrained or overwritten since); use another `out`, or delete the file to regenerate it")
    by_index = {p.index: p for p in problems}
    for r in rows:
        p = by_index.get(r["index"])
        if p is not None and (str(r["id"]) != p.id or r["gold"] != p.gold):
            raise SweepError(f"{cache}: problem {r['index']} was '{r['id']}' with gold {r['gold']!r}, now "
                             f"'{p.id}' with gold {p.gold!r}: the benchmark's data changed since it was "
                             "generated; use another `out` or delete the file")


def weights_fingerprint(path: str) -> str | None:
    """Identity of the weights in a local checkpoint directory: name, size and mtime of its weight files.
    A checkpoint retrained or overwritten at the same path (e.g. a stage rerun with --from-stage) gets
    another fingerprint. None for hub ids and directories without weight files."""
    import hashlib

    p = Path(path)
    files = sorted(f for f in p.iterdir() if f.suffix in (".safetensors", ".bin", ".pt")) if p.is_dir() else []
    if not files:
        return None
    stats = [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha1("|".join(stats).encode()).hexdigest()[:16]


def stale_caches(out: Path, ckpt: Checkpoint) -> list[Path]:
    """Cache files of this checkpoint label whose generations came from other weights than ckpt.path
    holds now (the sidecar's fingerprint differs)."""
    now, stale = weights_fingerprint(ckpt.path), []
    for meta_path in sorted((Path(out) / "generations" / ckpt.slug).glob("*/*.meta.json")):
        cache = CacheFile(out, ckpt.slug, meta_path.parent.name, meta_path.name.removesuffix(".meta.json"))
        then = (cache.read_meta() or {}).get("weights")
        if now is not None and then is not None and then != now:
            stale += [cache.meta_path, cache.path]
    return stale


def _same_model(a: str, b: str) -> bool:
    return a == b or (Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve())


def fill_cache(cache: CacheFile, generator, judges: dict, template, setting, seed: int, problems: list,
               missing: list[tuple[int, int]], chunk_size: int, world: World, stats: Counter) -> None:
    """Generate, judge and append the missing pairs, chunk by chunk over the fixed order of all pairs."""
    from rlvr.eval.templates import build_request

    tokenizer = generator.tokenizer
    by_index = {p.index: p for p in problems}
    check_prompt_lengths(generator, template, setting, [by_index[i] for i in sorted({i for i, _ in missing})],
                         cache.path.parent.name)
    sampling = sampling_for(template, setting, tokenizer)
    todo = set(missing)
    pairs = [(p.index, s) for p in problems for s in range(setting.k)]
    dp_rank, dp_size = generator.dp_rank, generator.dp_size
    t0, tokens = time.time(), 0
    for c, start in enumerate(range(0, len(pairs), chunk_size)):
        chunk = [pair for pair in pairs[start:start + chunk_size] if pair in todo]
        if not chunk:
            continue
        mine = chunk[dp_rank * len(chunk) // dp_size:(dp_rank + 1) * len(chunk) // dp_size]
        requests = [build_request(template, by_index[i].problem, tokenizer) for i, _ in mine]
        sampling.seed = seed * 1_000_003 + c
        outs = generator.generate(requests, sampling)
        rows = judge(judges, setting.template, cache.path.parent.name, [by_index[i] for i, _ in mine],
                     [s for _, s in mine], [r.prompt for r in requests], [cs[0] for cs in outs])
        gathered = {(r["index"], r["sample"]): r for part in world.all_gather_object(rows) for r in part}
        if world.is_main:
            cache.append([gathered[pair] for pair in chunk])
            tokens += sum(r["num_tokens"] for r in gathered.values())
            _chunk_written()
        stats["generated"] += len(chunk)
    if world.is_main:
        meta = cache.read_meta() or {}
        complete = len({(r["index"], r["sample"]) for r in cache.read()} & set(pairs)) == len(pairs)
        cache.write_meta({**meta, "complete": complete, "seconds": round(meta.get("seconds", 0.0) + time.time() - t0, 2),
                          "tokens": meta.get("tokens", 0) + tokens})


class PromptTooLong(UserError):
    """A benchmark prompt the engine cannot hold: vLLM would stop the sweep with a traceback."""


def check_prompt_lengths(generator, template, setting, problems: list, benchmark: str) -> None:
    """Raise PromptTooLong, naming the problems and the max_model_len to set, when a prompt of `problems` is
    not shorter than the engine's max_model_len. Every rank checks the same problems, so all stop together."""
    from rlvr.eval.templates import build_request
    from rlvr.generate.types import render_prompts

    limit = generator.max_model_len
    lengths = [(p, len(ids)) for p, ids in zip(problems, render_prompts(
        generator.tokenizer, [build_request(template, p.problem, generator.tokenizer) for p in problems]), strict=True)]
    long = [(p, n) for p, n in lengths if n >= limit]
    if long:
        longest = max(n for _, n in long)
        raise PromptTooLong(f"{benchmark}: {len(long)} problem(s) have prompts the engine cannot hold (first: problem "
                            f"{long[0][0].id}, {long[0][1]} tokens; generation.max_model_len is {limit}); raise "
                            f"generation.max_model_len to at least {longest + setting.max_tokens} (longest prompt + "
                            f"max_tokens {setting.max_tokens}), or leave those problems out with `limit`")


def sampling_for(template, setting, tokenizer):
    """Sampling for a setting. Template stop strings that are single tokens of this tokenizer
    (<|im_end|>, <|endoftext|>) become stop ids: completions are decoded without special tokens, so
    they could never match as text."""
    from rlvr.generate import Sampling

    vocab = tokenizer.get_vocab()
    stop_ids = [tokenizer.eos_token_id] + [vocab[s] for s in template.stop if s in vocab]
    return Sampling(n=1, temperature=setting.temperature, top_p=setting.top_p, max_tokens=setting.max_tokens,
                    stop=[s for s in template.stop if s not in vocab],
                    stop_token_ids=sorted({i for i in stop_ids if i is not None}))


def judge(judges: dict, template_name: str, bench: str, problems: list, samples: list[int], prompts: list[str],
          completions: list) -> list[dict]:
    """Cache rows of new completions, judged by every grader (policy -> Verifier, the primary first)."""
    rows = [{"index": p.index, "id": p.id, "sample": s, "prompt": prompt, "completion": c.text,
             "finish_reason": c.finish_reason, "num_tokens": len(c.completion_ids), "gold": p.gold}
            for p, s, prompt, c in zip(problems, samples, prompts, completions, strict=True)]
    verdicts = {policy: judge_texts(v, template_name, bench, rows) for policy, v in judges.items()}
    primary = next(iter(judges))
    return [with_verdicts(r, {p: v[i] for p, v in verdicts.items()}, primary, several=len(judges) > 1)
            for i, r in enumerate(rows)]


def _chunk_written() -> None:
    global _CHUNKS_WRITTEN
    _CHUNKS_WRITTEN += 1
    limit = os.environ.get("RLVR_EVAL_KILL_AFTER_CHUNKS")
    if limit and _CHUNKS_WRITTEN >= int(limit):
        print(f"rlvr eval: RLVR_EVAL_KILL_AFTER_CHUNKS={limit}: killing myself", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------------------ scores
def score_cache(rows: list[dict], problems: list, k: int) -> dict[str, Any] | None:
    """Scores of one cache over the sweep's problems and k samples; None while incomplete."""
    from rlvr.eval.scores import score_records

    indices = {p.index for p in problems}
    rows = [r for r in rows if r["index"] in indices and r["sample"] < k]
    if len(rows) < len(problems) * k:
        return None
    return score_records(rows, k)


def _lacking(sweep: Sweep, ckpt: Checkpoint, problems: dict[str, list]):
    """(cache, samples it lacks, samples wanted) for each of a checkpoint's caches that is incomplete."""
    for name, runs in sweep.settings.items():
        for setting, seed in runs:
            cache = CacheFile(sweep.out, ckpt.slug, name, setting.key(seed))
            have = {(r["index"], r["sample"]) for r in cache.read()}
            wanted = {(p.index, s) for p in problems[name] for s in range(setting.k)}
            if wanted - have:
                yield cache, len(wanted - have), len(wanted)


def missing_generations(sweep: Sweep, problems: dict[str, list]) -> list[str]:
    return [f"{cache.path.relative_to(sweep.out)}: "
            f"{'not generated' if lacking == wanted else f'{lacking} of {wanted} samples missing'} (checkpoint {ckpt.label})"
            for ckpt in sweep.checkpoints for cache, lacking, wanted in _lacking(sweep, ckpt, problems)]


def list_checkpoints(sweep: Sweep) -> str:
    """`rlvr eval SPEC --list-checkpoints`: the resolved checkpoints, one tab-separated line each (index,
    label, how many of its cache files are missing or incomplete, path) under a `# name=... out=...`
    line. Reads only files: no model, no torch, nothing written (slurm/eval.sh sizes its array with it)."""
    from rlvr.eval.benchmarks import load_problems

    problems = {name: load_problems(bench) for name, bench in sweep.benchmarks.items()}
    lines = [f"# name={sweep.name} checkpoints={len(sweep.checkpoints)} out={sweep.out}",
             "# index\tlabel\tmissing_caches\tpath"]
    for i, ckpt in enumerate(sweep.checkpoints):
        lines.append(f"{i}\t{ckpt.label}\t{sum(1 for _ in _lacking(sweep, ckpt, problems))}\t{ckpt.path}")
    return "\n".join(lines)


def collect_scores(sweep: Sweep, problems: dict[str, list]) -> dict[str, Any]:
    """OUT/scores.json: one row per checkpoint x benchmark x setting x seed x grader, scores as fractions
    (`primary`: the row of the benchmark's first grader). With several graders, `disagreements` holds
    per cache how many completions the graders disagree on, with a few of them written out."""
    rows, disagreements = [], []
    for ckpt in sweep.checkpoints:
        for name, runs in sweep.settings.items():
            graders = list(sweep.graders_for(name))
            for setting, seed in runs:
                cache = CacheFile(sweep.out, ckpt.slug, name, setting.key(seed))
                meta, wanted = cache.read_meta(), {p.index for p in problems[name]}
                cached = [r for r in cache.read() if r["index"] in wanted and r["sample"] < setting.k]
                verdicts = [row_verdicts(r, meta) for r in cached]
                split = disagreement(cached, verdicts, graders) if len(graders) > 1 else None
                for i, policy in enumerate(graders):
                    if any(policy not in v for v in verdicts):
                        raise SweepError(f"{cache}: not judged by {policy}; rerun the sweep to judge it")
                    score = score_cache([{**r, **v[policy]} for r, v in zip(cached, verdicts, strict=True)],
                                        problems[name], setting.k)
                    if score is None:
                        raise SweepError(f"{cache}: incomplete; rerun the sweep to finish it")
                    rows.append({"checkpoint": ckpt.label, "path": ckpt.path, "stage": ckpt.stage, "step": ckpt.step,
                                 "benchmark": name, **setting.model_dump(mode="json"), "seed": seed,
                                 "grader": policy, "primary": i == 0,
                                 **({"disagree": split["disagree"]} if split else {}), **score})
                if split:
                    disagreements.append({"checkpoint": ckpt.label, "benchmark": name, "setting": setting.key(seed),
                                          **split})
    out = {"name": sweep.name, "protocol": sweep.protocol, "verifier": sweep.verifier.model_dump(mode="json"),
           "graders": sweep.graders or [sweep.verifier.policy],
           "checkpoints": [c.dump() for c in sweep.checkpoints], "rows": rows}
    return {**out, "disagreements": disagreements} if sweep.graders and len(sweep.graders) > 1 else out


EXAMPLES = 3
"""Disagreements written out per cache in scores.json (and the report)."""


def disagreement(rows: list[dict], verdicts: list[dict[str, dict]], graders: list[str]) -> dict[str, Any]:
    """How many completions the graders disagree on (not all of them give the same correct/incorrect),
    each grader's count of correct ones, and the first EXAMPLES disagreements (id, gold, each grader's
    answer, verdict and reason, the completion's last 300 characters)."""
    split = [(r, v) for r, v in zip(rows, verdicts, strict=True) if len({bool(v[g]["correct"]) for g in graders}) > 1]
    return {"graders": graders, "completions": len(rows), "disagree": len(split),
            "correct": {g: sum(bool(v[g]["correct"]) for v in verdicts) for g in graders},
            "examples": [{"id": r["id"], "index": r["index"], "sample": r["sample"], "gold": r["gold"],
                          "finish_reason": r["finish_reason"], "completion_tail": r["completion"][-300:],
                          "verdicts": {g: v[g] for g in graders}} for r, v in split[:EXAMPLES]]}


def summary_metrics(scores: dict[str, Any]) -> dict[str, float]:
    """A stage's summary of scores.json: `accuracy` (mean over benchmarks of the primary grader's avg@k,
    averaged over settings) and each benchmark's; with several graders also `<grader>/accuracy` and
    `<grader>/<benchmark>` for the others, and `disagree`, the share of judged completions on which the
    graders disagree."""
    by: dict[str, dict[str, list[float]]] = {}
    for row in scores["rows"]:
        key = "" if row.get("primary", True) else f"{row['grader']}/"
        by.setdefault(key, {}).setdefault(row["benchmark"], []).append(row["avg@k"])
    metrics: dict[str, float] = {}
    for key, benches in by.items():
        means = {name: sum(v) / len(v) for name, v in benches.items()}
        metrics[f"{key}accuracy"] = sum(means.values()) / len(means)
        metrics.update({f"{key}{name}": v for name, v in means.items()})
    split = scores.get("disagreements")
    if split:
        metrics["disagree"] = sum(d["disagree"] for d in split) / max(1, sum(d["completions"] for d in split))
    return metrics
