"""`rlvr select`: rank a pool's examples by the historical variance score of 1-shot RLVR and write
π₁…π_K as 1-shot dataset files.

Wang et al. 2025 (arXiv 2504.20571) §2, eq. 1-2: train on the whole pool for a while, record each
example i's training accuracy s_{i,e} in every epoch e = 1..E, and score it by

    v_i = var(s_{i,1}, ..., s_{i,E})          (population variance, 1/E)

highest first: π₁ is the example whose accuracy moved most. The released data_selection.py ranks by
numpy's std (population, ddof 0), the square root of the same quantity: the same order (`--method std`
writes those values). Its sort is Python's stable sort over the accuracy file's key order, so examples
with equal scores keep the order they have in the source; rlvr does the same (ties: first appearance in
SOURCE: the JSON's key order, or for a run the order examples were first sampled). That rule is the
only one that reproduces the released π₁₂₀₉ (index 789, last of the 104 examples whose accuracy never
changed).

SOURCE is one of
  - a run directory: its RL stage's stages/<name>/examples.jsonl (rlvr.rl.example_log). Each step an
    example was sampled in gives one accuracy (correct/total over that step's rollouts of it); with the
    stage's order (every example once per epoch) these are its per-epoch accuracies s_{i,e};
  - an examples.jsonl file itself;
  - an accuracy JSON in the released format (data/acc_step_500.json): {"<index>": [acc per epoch, ...]}.
The pool (`--data`) is the dataset the accuracies were measured on; its rows get ids the way the RL
stage gives them (rlvr.data.sources.example_id: `id`, `index` or verl's `extra_info.index`, else the
row's position), which is how scores find their problem and answer.

Outputs (written to a temporary name, then renamed):
  DIR/ranking.jsonl   one row per scored example, best first: rank, index, score, epochs, mean_accuracy,
                      problem, answer;
  DIR/pi_<r>.jsonl    for r = 1..K: the rank-r example repeated `repeat` times (128, the released
                      pi1_r128.parquet's one batch of prompts), rows {problem, answer, index}; a recipe reads
                      it with `data: {path: DIR/pi_1.jsonl}` and, on one_shot.yaml, `prompt_suffix: ""`
                      when the pool's problems already end with their instruction (DSR-sub's do). Each copy
                      is its own GRPO group; all share the id, so the run's examples.jsonl counts them as one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class SelectError(ValueError):
    """A bad input (missing file, unknown format, pool and accuracies that do not match): exit 2."""


def _population_variance(values: list[float]) -> float:
    """v_i of eq. 2: mean of (s_{i,e} - mean_e s_{i,e})^2 over the E epochs (numpy var, ddof 0)."""
    import numpy as np

    return float(np.var(values))


def _population_std(values: list[float]) -> float:
    """sqrt(v_i): the released data_selection.py's `np.std(values)` (ddof 0); same order as variance."""
    import numpy as np

    return float(np.std(values))


METHODS: dict[str, Callable[[list[float]], float]] = {"variance": _population_variance, "std": _population_std}


@dataclass(frozen=True)
class History:
    """Per-example accuracy histories in source order (str id -> [s_1, ..., s_E]) and what they came from."""

    accuracies: dict[str, list[float]]
    source: str
    kind: str  # "accuracy-json" | "examples-log"


# ------------------------------------------------------------------------------------ reading SOURCE
def history_from_log(lines: list[dict[str, Any]]) -> dict[str, list[float]]:
    """examples.jsonl lines (step order) -> {id: [accuracy at each step the example was sampled in]}."""
    out: dict[str, list[float]] = {}
    for line in sorted(lines, key=lambda x: int(x["step"])):
        for key, (correct, total) in line["examples"].items():
            if total:
                out.setdefault(key, []).append(correct / total)
    return out


def read_accuracy_json(path: Path) -> dict[str, list[float]]:
    """The released format: {"<index>": [accuracy per epoch, ...]}, every accuracy a number in [0, 1]."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SelectError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    expected = 'an object {"<example index>": [training accuracy per epoch, ...]} (the released acc_step_500.json)'
    if not isinstance(data, dict) or not data:
        raise SelectError(f"{path}: unknown accuracy format: expected {expected}")
    for key, values in data.items():
        ok = isinstance(values, list) and values and all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in values)
        if not ok:
            raise SelectError(f"{path}: example {key!r}: expected a non-empty list of accuracies in [0, 1], "
                              f"got {json.dumps(values)[:80]}; the file must be {expected}")
    return {str(k): [float(v) for v in vs] for k, vs in data.items()}


def _read_log(path: Path) -> dict[str, list[float]]:
    from rlvr.rl.example_log import read_lines

    try:
        lines = read_lines(path)
        history = history_from_log(lines)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise SelectError(f"{path}: not an examples.jsonl written by the RL stage ({err})") from None
    if not history:
        raise SelectError(f"{path}: no steps logged yet")
    return history


def read_history(source: Path, stage: str | None = None) -> History:
    """SOURCE -> History: a run directory, an examples.jsonl, or a released-format accuracy JSON."""
    if source.is_dir():
        logs = sorted(source.glob("stages/*/examples.jsonl"))
        if stage is not None:
            logs = [p for p in logs if p.parent.name == stage]
        if not logs:
            where = f"stages/{stage}/examples.jsonl" if stage else "stages/<name>/examples.jsonl"
            raise SelectError(f"{source}: no {where}; SOURCE must be a run directory whose RL stage logged "
                              "per-example accuracy, an examples.jsonl, or an accuracy JSON")
        if len(logs) > 1:
            names = ", ".join(p.parent.name for p in logs)
            raise SelectError(f"{source}: several RL stages logged examples ({names}); choose one with --stage NAME")
        return History(_read_log(logs[0]), str(logs[0]), "examples-log")
    if not source.is_file():
        raise SelectError(f"{source}: no such file or directory")
    if source.suffix == ".jsonl":
        return History(_read_log(source), str(source), "examples-log")
    if source.suffix == ".json":
        return History(read_accuracy_json(source), str(source), "accuracy-json")
    raise SelectError(f"{source}: unknown SOURCE format {source.suffix!r}: give a run directory, an examples.jsonl "
                      "or an accuracy .json")


# ------------------------------------------------------------------------------------ the pool
def read_pool(path: Path, preset: str | None = None) -> dict[str, dict[str, Any]]:
    """str id -> {id, prompt, answer} for every row of the pool file, in file order. preset None: the
    default problem/answer fields, else verl's (prompt.0.content, reward_model.ground_truth)."""
    from rlvr.data.config import DataConfig
    from rlvr.data.sources import DataError, load_rows

    if not path.is_file():
        raise SelectError(f"--data {path}: no such file")
    errors = []
    for name in [preset] if preset else ["problem_solution", "verl"]:
        try:
            rows = load_rows(DataConfig(path=str(path), preset=name), needs=("prompt", "answer"), with_ids=True)
            break
        except DataError as err:
            errors.append(str(err))
    else:
        raise SelectError(f"{errors[0]}" + ("" if preset else " (verl's fields were tried too; or give --preset)"))
    pool: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        key = str(row["id"])
        if key in pool:
            raise SelectError(f"--data {path}: row {i} has the same example id {row['id']!r} as an earlier row; "
                              "a pool needs one row per example (is this a 1-shot file rather than the pool?)")
        pool[key] = row
    return pool


# ------------------------------------------------------------------------------------ ranking
def rank(accuracies: dict[str, list[float]], method: str) -> list[tuple[str, float]]:
    """(id, score) best first. Python's sort is stable, so equal scores keep the source order (the
    released data_selection.py's `sorted(..., reverse=True)` over the JSON's keys)."""
    score = METHODS[method]
    return sorted(((k, score(v)) for k, v in accuracies.items()), key=lambda kv: kv[1], reverse=True)


def ranking_rows(history: History, pool: dict[str, dict[str, Any]], method: str) -> list[dict[str, Any]]:
    """ranking.jsonl's rows; checks that SOURCE and the pool describe the same examples."""
    if history.kind == "accuracy-json" and len(history.accuracies) != len(pool):
        raise SelectError(f"pool size mismatch: {history.source} has {len(history.accuracies)} examples, the pool "
                          f"has {len(pool)} rows; --data must be the pool the accuracies were measured on")
    missing = [k for k in history.accuracies if k not in pool]
    if missing:
        raise SelectError(f"{history.source} scores {len(missing)} example(s) that the pool does not have "
                          f"(ids {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); --data must be "
                          "the pool the accuracies were measured on")
    out = []
    for r, (key, score) in enumerate(rank(history.accuracies, method), 1):
        row, accs = pool[key], history.accuracies[key]
        out.append({"rank": r, "index": row["id"], "score": score, "epochs": len(accs),
                    "mean_accuracy": sum(accs) / len(accs), "problem": row["prompt"], "answer": row["answer"]})
    return out


def pi_rows(entry: dict[str, Any], repeat: int) -> list[dict[str, Any]]:
    """One example repeated to fill the batch (pi1_r128.parquet: 128 copies), in the default preset's fields."""
    return [{"problem": entry["problem"], "answer": entry["answer"], "index": entry["index"]}] * repeat


@dataclass(frozen=True)
class Selection:
    ranking: list[dict[str, Any]]
    pool_rows: int
    source: str


def select(source: Path, pool_path: Path, out: Path, *, method: str = "variance", top: int = 1, repeat: int = 128,
           stage: str | None = None, preset: str | None = None) -> Selection:
    """Read, rank, write DIR/ranking.jsonl and DIR/pi_1..K.jsonl."""
    from rlvr.rundir import write_atomic

    if method not in METHODS:
        raise SelectError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if top < 0 or repeat < 1:
        raise SelectError(f"--top must be >= 0 and --repeat >= 1 (got {top}, {repeat})")
    history = read_history(source, stage)
    pool = read_pool(pool_path, preset)
    ranking = ranking_rows(history, pool, method)
    if top > len(ranking):
        raise SelectError(f"--top {top}: only {len(ranking)} examples are scored in {history.source}")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "ranking.jsonl", "".join(json.dumps(r) + "\n" for r in ranking))
    for entry in ranking[:top]:
        write_atomic(out / f"pi_{entry['rank']}.jsonl", "".join(json.dumps(r) + "\n" for r in pi_rows(entry, repeat)))
    return Selection(ranking, len(pool), history.source)


def summary(sel: Selection, top: int, method: str, out: Path) -> str:
    """The command's closing lines: what was ranked, the first few picks, where they went."""
    shown = ", ".join(f"pi_{r['rank']} = index {r['index']} ({method} {r['score']:.4g})" for r in sel.ranking[:max(top, 1)][:5])
    unscored = sel.pool_rows - len(sel.ranking)
    note = f" ({unscored} pool rows never sampled: not ranked)" if unscored else ""
    return (f"ranked {len(sel.ranking)} examples from {sel.source}{note}\n{shown}{', ...' if top > 5 else ''}\n"
            f"-> {out}/ranking.jsonl" + (f", pi_1..{top}.jsonl" if top else ""))
