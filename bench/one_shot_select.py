"""1-shot RLVR's selection loop in miniature, over seeds: does one example move held-out accuracy, and does
the highest-variance example (pi_1) move it more than the lowest-variance one (pi_last)?

Per seed s (recipe seed and tiny-model seed both s; the 16-problem pool is the same for every seed):
  1. recipes/tiny_select.yaml: SFT with the carry-forgetting teacher, held-out eval, GRPO on the pool for 6
     epochs (stages/rl/examples.jsonl), held-out eval;
  2. `rlvr select RUN --data pool.jsonl --top 16`: the ranking, pi_1 .. pi_16;
  3. recipes/tiny_one_shot.yaml twice from the SFT model: on pi_1 and on pi_16 (the last, lowest variance;
     ties keep first-sampled order, as the paper's pi_1209), held-out eval before and after.
It prints one table row per (seed, arm) and writes OUT/results.json; docs/algorithms.md ("The selection loop
in miniature") has the measured table.

    python bench/one_shot_select.py run --seeds 0 1 2 --out /tmp/one_shot_select     # ~5 min per seed, 2 CPUs
    python bench/one_shot_select.py table /tmp/one_shot_select                       # its table again
    python bench/one_shot_select.py pool toy_pool.jsonl                              # the pool file alone

Extra `--set` values go to every `rlvr run` (e.g. shorter runs: --set stages.sft.max_steps=100).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POOL = {"n": 16, "levels": [2], "seed": 0}  # CHOSEN: 16 distinct two-digit additions (10 with a carry)


def has_carry(problem: str) -> bool:
    """'What is 47 + 38? ...' -> True when some column of the addition carries."""
    a, b = (int(x) for x in problem.split("What is ")[1].split("?")[0].split(" + "))
    while a or b:
        if a % 10 + b % 10 >= 10:
            return True
        a, b = a // 10, b // 10
    return False


def write_pool(path: Path) -> list[dict]:
    """The toy pool as a data file (rows problem, answer, index), so `rlvr select --data` can read it."""
    from rlvr.data.toy import toy_rows

    rows = [{"problem": r["prompt"], "answer": r["answer"], "index": i}
            for i, r in enumerate(toy_rows("train", POOL["n"], POOL["levels"], POOL["seed"], distinct=True))]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)
    return rows


def rlvr(*args: str) -> float:
    """Run `python -m rlvr ARGS`; its seconds. Output goes to the caller's log; a failure stops the bench."""
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "rlvr", *args], cwd=REPO, text=True, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"rlvr {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.time() - t0


def held_out(run_dir: Path, stage: str) -> float:
    """The eval stage's accuracy on the toy benchmark (stages/<stage>/eval/scores.json)."""
    scores = json.loads((run_dir / "stages" / stage / "eval" / "scores.json").read_text())
    (row,) = [r for r in scores["rows"] if r["benchmark"] == "toy"]
    return float(row["avg@k"])


def held_out_by_carry(run_dir: Path, stage: str) -> dict[str, float]:
    """The eval stage's accuracy on the held-out problems whose sum carries and on those that do not (its
    generation cache holds each problem's prompt and verdict)."""
    (cache,) = (run_dir / "stages" / stage / "eval" / "generations").glob("*/toy/*.jsonl")
    rows = [json.loads(x) for x in cache.read_text().splitlines()]
    out = {}
    for name, want in (("carry", True), ("no_carry", False)):
        part = [r["correct"] for r in rows if has_carry(r["prompt"]) == want]
        out[name] = sum(part) / len(part)
    out["n_carry"] = sum(has_carry(r["prompt"]) for r in rows)
    return out


def rl_rewards(run_dir: Path, stage: str = "rl") -> list[float]:
    return [m["reward/mean"] for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if m.get("stage") == stage and "reward/mean" in m]


def one_seed(seed: int, out: Path, pool: Path, extra: list[str]) -> list[dict]:
    sets = ["--set", f"seed={seed}", "--set", f"model.tiny.seed={seed}", *extra]
    sel_run = out / f"seed{seed}" / "select"
    secs = rlvr("run", str(REPO / "recipes" / "tiny_select.yaml"), "--run-dir", str(sel_run),
                "--set", f"stages.rl.data.path={pool}", *sets)
    picks = out / f"seed{seed}" / "pis"
    rlvr("select", str(sel_run), "--data", str(pool), "--top", str(POOL["n"]), "--repeat", "8", "--out", str(picks))
    ranking = [json.loads(x) for x in (picks / "ranking.jsonl").read_text().splitlines()]
    sft = sel_run / "stages" / "sft" / "final"
    rows = []
    base = {"seed": seed, "sft": held_out(sel_run, "eval_sft"), "pool_rl": held_out(sel_run, "eval_rl"),
            "select_seconds": round(secs, 1)}
    for arm, entry in (("pi_1", ranking[0]), ("pi_last", ranking[-1])):
        run, pi = out / f"seed{seed}" / arm, picks / f"pi_{entry['rank']}.jsonl"
        secs = rlvr("run", str(REPO / "recipes" / "tiny_one_shot.yaml"), "--run-dir", str(run),
                    "--set", f"stages.eval_before.init={sft}", "--set", f"stages.rl.init={sft}",
                    "--set", f"stages.rl.data={{path: {pi}}}", *sets)
        ids = {k for line in (run / "stages" / "rl" / "examples.jsonl").read_text().splitlines()
               for k in json.loads(line)["examples"]}
        assert ids == {str(entry["index"])}, (ids, entry["index"])  # trained on exactly the chosen example
        rewards = rl_rewards(run)
        split = {f"{k}_{when}": v for when in ("before", "after")
                 for k, v in held_out_by_carry(run, f"eval_{when}").items() if k != "n_carry"}
        rows.append({**base, "arm": arm, "index": entry["index"], "problem": entry["problem"].split("?")[0] + "?",
                     "carry": has_carry(entry["problem"]), "variance": entry["score"],
                     "pool_mean_acc": entry["mean_accuracy"], "before": held_out(run, "eval_before"),
                     "after": held_out(run, "eval_after"), "reward_first3": sum(rewards[:3]) / 3,
                     "reward_last3": sum(rewards[-3:]) / 3, **split,
                     "one_shot_seconds": round(secs, 1)})
        print(_row(rows[-1]), flush=True)
    return rows


def _row(r: dict) -> str:
    return (f"| {r['seed']} | {r['arm']} | {r['index']}: {r['problem'][8:]} | {'yes' if r['carry'] else 'no'} | "
            f"{r['variance']:.3f} | {r['pool_mean_acc']:.2f} | {r['reward_first3']:.2f} -> {r['reward_last3']:.2f} | "
            f"{r['before']:.3f} -> {r['after']:.3f} ({r['after'] - r['before']:+.3f}) | "
            f"{r['carry_before']:.3f} -> {r['carry_after']:.3f} | {r['no_carry_before']:.3f} -> {r['no_carry_after']:.3f} | "
            f"{r['pool_rl']:.3f} |")


HEADER = ("| seed | arm | example | carry | variance | pool acc | 1-shot reward (first 3 -> last 3 steps) | "
          "held-out before -> after | carry problems | no-carry problems | after pool RL |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def table(out: Path) -> list[dict]:
    """Print the table (and the means) of a finished or partial OUT/results.json, with the carry split
    recomputed from the runs' generation caches."""
    rows = json.loads((out / "results.json").read_text())
    print(HEADER)
    for r in rows:
        run = out / f"seed{r['seed']}" / r["arm"]
        for when in ("before", "after"):
            r.update({f"{k}_{when}": v for k, v in held_out_by_carry(run, f"eval_{when}").items() if k != "n_carry"})
        print(_row(r))
    for arm in ("pi_1", "pi_last"):
        d = [r["after"] - r["before"] for r in rows if r["arm"] == arm]
        if d:
            print(f"{arm}: mean held-out change {sum(d) / len(d):+.3f} over {len(d)} seeds "
                  f"({', '.join(f'{x:+.3f}' for x in d)})")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("pool", help="write the toy pool file")
    q.add_argument("path", type=Path)
    q = sub.add_parser("run", help="run the loop over seeds")
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    q = sub.add_parser("table", help="print the table of a run's OUT/results.json")
    q.add_argument("out", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "table":
        table(args.out)
        return 0
    if args.cmd == "pool":
        rows = write_pool(args.path)
        print(f"{args.path}: {len(rows)} problems, {sum(has_carry(r['problem']) for r in rows)} with a carry")
        return 0
    pool = write_pool(args.out / "pool.jsonl") and args.out / "pool.jsonl"
    extra = [x for o in args.overrides for x in ("--set", o)]
    print(HEADER, flush=True)
    rows = []
    for seed in args.seeds:
        rows += one_seed(seed, args.out, pool, extra)
        (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    print()
    table(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
