"""Benchmark rlvr's verifier against math-verify alone, on the same cases in the same run.

    python bench/verifier.py                 # labelled table + 4 synthetic RL steps, pinned to one core
    python bench/verifier.py --rl-steps 1 --no-pin
    python bench/verifier.py --paper-only    # only the paper policies' tables and RL throughput
    python bench/verifier.py --heldout-only  # only the math policy's held-out set

Case sets:

* the labelled table of tests/verify/cases.py (normal and adversarial groups, policy-tagged cases
  counted apart);
* the held-out set of tests/verify/heldout.py (the `math` policy): every gold of MATH500, AIME24/25,
  AMC23 and OlympiadBench in other spellings, normal and adversarial groups apart;
* synthetic RL batches: steps of 64 prompts x 16 rollouts of long chain-of-thought text (about 11 k
  characters) ending in a boxed answer; golds are MATH500 answers, about 65 % integers; rollouts
  repeat answers the way sampled groups do, with wrong, unboxed, truncated and hedged ones mixed in;
* the paper policies (`one_shot_reward`, `qwen_math_eval`): their labelled tables
  (tests/verify/test_paper_policies.py ONE_SHOT and QWEN, each case labelled with the ORIGINAL
  grader's decision), agreement of the policy and of math-verify with those labels, and the policy's
  throughput on the same RL batches as above (qwen_math_eval with math500's rules), against
  math-verify's on those batches in the same run.

math-verify runs as verl/lighteval wrap it: gold parsed from ``\\boxed{gold}`` with
``LatexExtractionConfig``, the prediction with ``parse()`` defaults, ``verify()`` defaults (its own
5 s alarms active). It runs in a worker process that the parent kills after ``--mv-kill`` seconds,
so its hangs cannot stall the bench; a killed case counts as wrong and as ``--mv-kill`` seconds.

Printed per verifier: accuracy, false positives, false negatives, throughput (items/s), mean and
worst-case latency, then the ratios rlvr / math-verify. Throughput is single-core when pinned
(the default): the bench and every child process share one CPU.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "verify"))

import test_paper_policies as paper  # noqa: E402
from cases import CASES  # noqa: E402

from rlvr.verify import Verifier, VerifierConfig  # noqa: E402

SHARED_DATA = Path(os.environ.get("RLVR_SHARED_DATA", REPO.parent / "shared" / "data"))


@dataclass
class Item:
    name: str
    prediction: str
    gold: str
    expected: bool
    group: str  # normal | adversarial | rl
    policy: bool = False
    config: str = "math"
    truncated: bool = False
    benchmark: str | None = None


# ------------------------------------------------------------------ math-verify in a killable worker


def _mv_worker(conn) -> None:
    import logging

    logging.disable(logging.WARNING)
    from math_verify import LatexExtractionConfig, parse, verify

    conn.send("ready")
    gold_cfg = [LatexExtractionConfig()]
    while True:
        task = conn.recv()
        if task is None:
            return
        pred, gold = task
        start = time.perf_counter()
        try:
            ok = bool(verify(parse("\\boxed{" + gold + "}", extraction_config=gold_cfg), parse(pred)))
        except Exception:  # noqa: BLE001 - math-verify raising counts as "not accepted"
            ok = False
        conn.send((ok, time.perf_counter() - start))


class MathVerifyRunner:
    def __init__(self, kill_after: float):
        self.kill_after = kill_after
        self.ctx = mp.get_context("spawn")
        self.kills = 0
        self._start()

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_mv_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        assert self.conn.recv() == "ready"

    def judge(self, pred: str, gold: str) -> tuple[bool, float, bool]:
        """(accepted, seconds, killed)."""
        start = time.perf_counter()
        self.conn.send((pred, gold))
        if wait([self.conn], timeout=self.kill_after):
            try:
                ok, secs = self.conn.recv()
                return ok, secs, False
            except EOFError:
                pass
        self.proc.kill()
        self.proc.join()
        self.kills += 1
        self._start()
        return False, max(self.kill_after, time.perf_counter() - start), True

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(timeout=5)


# ------------------------------------------------------------------ cases


def table_items() -> list[Item]:
    return [
        Item(
            c.name,
            c.prediction,
            c.gold,
            c.expected,
            "adversarial" if c.adversarial else "normal",
            c.policy,
            c.config,
            c.truncated,
        )
        for c in CASES
    ]


_FILLER = [
    "Let me reconsider the constraint on {a} and {b}.",
    "We have {a} + {b} = {c}, so the remaining part is {d}.",
    "Substituting $x = {a}$ gives $x^2 - {b}x + {c} = {d}$.",
    "Note that $\\frac{{{a}}}{{{b}}}$ cannot be simplified further since gcd({a}, {b}) = 1.",
    "Checking the case n = {a}: the sum is {c}, which is not divisible by {b}.",
    "So far we have counted {c} arrangements; the symmetric ones number {d}.",
    "Wait, I should double-check: {a} * {b} = {c}.",
]


def _cot(rng: random.Random, chars: int) -> str:
    parts, size = [], 0
    while size < chars:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        line = rng.choice(_FILLER).format(a=a, b=b, c=a * b, d=a + b)
        parts.append(line)
        size += len(line) + 1
    return "\n".join(parts)


def _math500_golds() -> list[str]:
    path = SHARED_DATA / "math500" / "test.jsonl"
    if not path.is_file():
        return [str(k) for k in range(1, 200)] + [r"\frac{3}{4}", r"2\sqrt{5}", "x^2+1"]
    return [json.loads(line)["answer"] for line in path.open(encoding="utf-8")]


def _wrong(gold: str, rng: random.Random) -> str:
    if gold.lstrip("-").isdigit():
        return str(int(gold) + rng.choice([-2, -1, 1, 3, 10]))
    digits = [i for i, ch in enumerate(gold) if ch.isdigit()]
    if digits:
        k = rng.choice(digits)
        return gold[:k] + str((int(gold[k]) + 1) % 10) + gold[k + 1 :]
    return gold + "+1"


def _spelling(gold: str, rng: random.Random) -> str:
    if gold.lstrip("-").isdigit() and rng.random() < 0.2:
        return gold + ".0" if rng.random() < 0.5 else f"{gold}\\text{{ ways}}"
    if gold.startswith("\\frac") and rng.random() < 0.3:
        return gold.replace("\\frac", "\\dfrac")
    return gold


def rl_items(steps: int, seed: int = 0) -> list[list[Item]]:
    """`steps` batches of 64 prompts x 16 rollouts, about 65 % integer golds."""
    rng = random.Random(seed)
    golds = _math500_golds()
    ints = [g for g in golds if g.lstrip("-").isdigit()]
    others = [g for g in golds if not g.lstrip("-").isdigit()]
    batches = []
    for step in range(steps):
        batch = []
        for prompt in range(64):
            gold = rng.choice(ints) if rng.random() < 0.65 else rng.choice(others)
            wrong_answers = [_wrong(gold, rng) for _ in range(3)]
            for k in range(16):
                body = _cot(rng, rng.randint(6_000, 16_000))
                roll = rng.random()
                if roll < 0.55:
                    text, ok = f"{body}\n\nTherefore the answer is $\\boxed{{{_spelling(gold, rng)}}}$.", True
                elif roll < 0.85:
                    text, ok = f"{body}\n\nSo the answer is $\\boxed{{{rng.choice(wrong_answers)}}}$.", False
                elif roll < 0.92:
                    text, ok = body, False  # ran out of tokens mid-reasoning
                elif roll < 0.96:
                    text, ok = (
                        f"{body}\n\nThe answer is $\\boxed{{{gold}}}$ or $\\boxed{{{wrong_answers[0]}}}$.",
                        False,
                    )
                else:
                    text, ok = f"<think>{body}\n\nThe answer is {gold}", False  # unclosed think
                batch.append(Item(f"rl/{step}/{prompt}/{k}", text, gold, ok, "rl"))
        batches.append(batch)
    return batches


# ------------------------------------------------------------------ running


def run_rlvr(items: list[Item], verifier_for) -> tuple[list[bool], list[float], float]:
    accepted: list[bool] = [False] * len(items)
    seconds: list[float] = [0.0] * len(items)
    wall = 0.0
    for config in sorted({it.config for it in items}):
        idx = [i for i, it in enumerate(items) if it.config == config]
        start = time.perf_counter()
        results = verifier_for(config).verify_batch(
            [items[i].prediction for i in idx],
            [items[i].gold for i in idx],
            truncated=[items[i].truncated for i in idx],
            benchmarks=[items[i].benchmark for i in idx],
        )
        wall += time.perf_counter() - start
        for i, res in zip(idx, results, strict=True):
            accepted[i], seconds[i] = res.score == 1.0, res.seconds
    return accepted, seconds, wall


def run_math_verify(items: list[Item], runner: MathVerifyRunner) -> tuple[list[bool], list[float], float]:
    accepted, seconds = [], []
    start = time.perf_counter()
    for it in items:
        ok, secs, _ = runner.judge(it.prediction, it.gold)
        accepted.append(ok)
        seconds.append(secs)
    return accepted, seconds, time.perf_counter() - start


def stats(items: list[Item], accepted: list[bool], seconds: list[float], wall: float) -> dict:
    n = len(items)
    right = sum(a == it.expected for a, it in zip(accepted, items, strict=True))
    neutral = [(a, it) for a, it in zip(accepted, items, strict=True) if not it.policy]
    return {
        "n": n,
        "accuracy": right / n,
        "policy_neutral_accuracy": sum(a == it.expected for a, it in neutral) / max(1, len(neutral)),
        "false_positives": sum(a and not it.expected for a, it in zip(accepted, items, strict=True)),
        "false_negatives": sum(it.expected and not a for a, it in zip(accepted, items, strict=True)),
        "items_per_s": n / wall if wall > 0 else float("inf"),
        "mean_s": statistics.fmean(seconds),
        "worst_s": max(seconds),
        "wall_s": wall,
    }


def _row(label: str, s: dict) -> str:
    return (
        f"  {label:<12} acc {s['accuracy']:.4f} (policy-neutral {s['policy_neutral_accuracy']:.4f})  "
        f"FP {s['false_positives']:>3}  FN {s['false_negatives']:>3}  {s['items_per_s']:>9.1f} items/s  "
        f"mean {s['mean_s'] * 1000:7.2f} ms  worst {s['worst_s']:.3f} s"
    )


def report(title: str, rl: dict, mv: dict) -> None:
    print(f"\n{title} (n={rl['n']})")
    print(_row("rlvr", rl))
    print(_row("math-verify", mv))
    speed = rl["items_per_s"] / mv["items_per_s"] if mv["items_per_s"] else float("inf")
    worst = mv["worst_s"] / rl["worst_s"] if rl["worst_s"] else float("inf")
    print(
        f"  ratio        accuracy {rl['accuracy'] / mv['accuracy']:.3f}x  throughput {speed:.1f}x  "
        f"worst-case latency {worst:.1f}x lower"
    )


def bench_rl(args, runner: MathVerifyRunner) -> dict:
    """RL steps through one Verifier (cache and pool persist, as in training) vs math-verify."""
    batches = rl_items(args.rl_steps)
    verifier = Verifier(VerifierConfig(policy="math", workers=1, timeout=args.timeout))
    per_step = [run_rlvr(batch, lambda _policy: verifier) for batch in batches]
    verifier.close()
    flat = [it for batch in batches for it in batch]
    mv = stats(flat, *run_math_verify(flat, runner))

    def merged(steps: list[int]) -> dict:
        items = [it for k in steps for it in batches[k]]
        acc = [a for k in steps for a in per_step[k][0]]
        sec = [x for k in steps for x in per_step[k][1]]
        return stats(items, acc, sec, sum(per_step[k][2] for k in steps))

    out = {"math_verify": mv, "rlvr_all": merged(list(range(len(batches))))}
    report(f"synthetic RL batches, {len(batches)} step(s) x 1024 rollouts, all steps", out["rlvr_all"], mv)
    out["rlvr_step1"] = merged([0])
    report("  ... step 1 only (cold: worker start-up, empty cache)", out["rlvr_step1"], mv)
    if len(batches) > 1:
        out["rlvr_steady"] = merged(list(range(1, len(batches))))
        report(f"  ... steps 2-{len(batches)} (steady state)", out["rlvr_steady"], mv)
    return out


def paper_items() -> dict[str, list[Item]]:
    """The paper policies' labelled tables; labels are the original graders' decisions."""
    golds = paper.golds.__wrapped__(SHARED_DATA)  # the fixture's function: golds read from the benchmark files
    one_shot = [Item(n, p, g, e, "one_shot_reward", config="one_shot_reward") for n, p, g, e in paper.ONE_SHOT]
    qwen = [Item(n, p, golds.get(g, g), e, "qwen_math_eval", config="qwen_math_eval", truncated=True, benchmark=b)
            for n, b, p, g, e in paper.QWEN]
    return {"one_shot_reward": one_shot, "qwen_math_eval": qwen}


def bench_paper(args, runner: MathVerifyRunner, mv_rl: dict | None, batches: list[list[Item]]) -> dict:
    """Each paper policy: agreement with its labelled table (and math-verify's on the same cases), and
    throughput on the RL batches through one Verifier (cache and pool persist, as in training), against
    math-verify's on those batches. The policy's workers are started first, as the RL stage does
    during setup (Verifier.start), and given a moment to import sympy."""
    out: dict = {}
    for policy, items in paper_items().items():
        verifier = Verifier(VerifierConfig(policy=policy, workers=1, timeout=args.timeout))
        verifier.start()
        time.sleep(3.0)
        table = stats(items, *run_rlvr(items, lambda _p, v=verifier: v))
        mv = stats(items, *run_math_verify([_mv_item(it) for it in items], runner))
        report(f"{policy}: labelled table (labels = the original grader's decisions)", table, mv)
        out[policy] = {"table": table, "table_math_verify": mv}
        if batches and mv_rl:
            steps = [[replace(it, config=policy, benchmark="math500" if policy == "qwen_math_eval" else None)
                      for it in batch] for batch in batches]
            per_step = [run_rlvr(batch, lambda _p, v=verifier: v) for batch in steps]

            def merged(ks: list[int], steps=steps, per_step=per_step) -> dict:
                return stats([it for k in ks for it in steps[k]], [a for k in ks for a in per_step[k][0]],
                             [x for k in ks for x in per_step[k][1]], sum(per_step[k][2] for k in ks))

            out[policy]["rl"] = merged(list(range(len(steps))))
            report(f"{policy}: synthetic RL batches, {len(steps)} step(s) x 1024 rollouts, all steps "
                   "(accuracy against the `math` labels of these batches, not this policy's)", out[policy]["rl"], mv_rl)
            if len(steps) > 1:
                out[policy]["rl_steady"] = merged(list(range(1, len(steps))))
                report(f"  ... steps 2-{len(steps)} (steady state)", out[policy]["rl_steady"], mv_rl)
        verifier.close()
    return out


def _mv_item(it: Item) -> Item:
    """math-verify gets each gold as the Qwen harness reads it (a Minerva solution's last box,
    OlympiadBench's first list element), boxed like every other gold of this bench."""
    from rlvr.verify.paper_rules import gold_string, qwen_gold

    gold = gold_string(it.gold, it.benchmark)
    gold = qwen_gold(gold, it.benchmark) if it.benchmark else gold
    return replace(it, gold=str(gold))


def heldout_items() -> list[Item]:
    from heldout import heldout_cases  # tests/verify/heldout.py: built from the shared benchmark golds

    return [Item(c.name, c.prediction, c.gold, c.expected, c.group) for c in heldout_cases(SHARED_DATA)]


def bench_heldout(runner: MathVerifyRunner, verifier_for) -> dict:
    """The `math` policy and math-verify on the held-out set, normal and adversarial groups apart."""
    items = heldout_items()
    out = {}
    for group in ("normal", "adversarial"):
        sel = [it for it in items if it.group == group]
        rl = stats(sel, *run_rlvr(sel, verifier_for))
        mv = stats(sel, *run_math_verify(sel, runner))
        out[group] = {"rlvr": rl, "math_verify": mv}
        report(f"held-out set (tests/verify/heldout.py), {group} cases", rl, mv)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rl-steps", type=int, default=4, help="synthetic RL steps of 1024 rollouts")
    parser.add_argument("--mv-kill", type=float, default=10.0, help="hard kill for one math-verify case, s")
    parser.add_argument("--timeout", type=float, default=2.0, help="rlvr per-item timeout, s")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the bench to one CPU")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--paper-only", action="store_true",
                        help="only the paper policies (their tables, RL throughput vs math-verify)")
    parser.add_argument("--heldout-only", action="store_true",
                        help="only the held-out set of the math policy (tests/verify/heldout.py)")
    args = parser.parse_args()
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        cpu = sorted(os.sched_getaffinity(0))[-1]
        os.sched_setaffinity(0, {cpu})  # children (workers, math-verify) inherit the single core
        print(f"pinned to CPU {cpu} (single core)")

    verifiers: dict[str, Verifier] = {}

    def verifier_for(policy: str) -> Verifier:
        if policy not in verifiers:
            verifiers[policy] = Verifier(VerifierConfig(policy=policy, workers=1, timeout=args.timeout))
        return verifiers[policy]

    runner = MathVerifyRunner(args.mv_kill)
    figures: dict = {}
    if args.heldout_only:
        figures["heldout"] = bench_heldout(runner, verifier_for)
        runner.close()
        for v in verifiers.values():
            v.close()
        return _write(args, figures)
    if args.paper_only:
        batches = rl_items(args.rl_steps)
        flat = [it for batch in batches for it in batch]
        mv_rl = stats(flat, *run_math_verify(flat, runner)) if flat else None
        figures["paper"] = bench_paper(args, runner, mv_rl, batches)
        runner.close()
        return _write(args, figures)
    table = table_items()
    for group in ("normal", "adversarial"):
        items = [it for it in table if it.group == group]
        rl = stats(items, *run_rlvr(items, verifier_for))
        mv = stats(items, *run_math_verify(items, runner))
        figures[group] = {"rlvr": rl, "math_verify": mv}
        report(f"labelled table, {group} cases", rl, mv)
    both = {k: None for k in ("rlvr", "math_verify")}
    for who in both:
        n = sum(figures[g][who]["n"] for g in ("normal", "adversarial"))
        right = sum(figures[g][who]["accuracy"] * figures[g][who]["n"] for g in ("normal", "adversarial"))
        both[who] = {
            "n": n,
            "accuracy": right / n,
            "false_positives": sum(figures[g][who]["false_positives"] for g in ("normal", "adversarial")),
            "false_negatives": sum(figures[g][who]["false_negatives"] for g in ("normal", "adversarial")),
        }
    figures["table_total"] = both
    print(
        f"\nlabelled table, all {both['rlvr']['n']} cases: rlvr acc {both['rlvr']['accuracy']:.4f} "
        f"(FP {both['rlvr']['false_positives']}, FN {both['rlvr']['false_negatives']}) vs math-verify "
        f"{both['math_verify']['accuracy']:.4f} (FP {both['math_verify']['false_positives']}, "
        f"FN {both['math_verify']['false_negatives']}); math-verify hard kills: {runner.kills}"
    )
    figures["heldout"] = bench_heldout(runner, verifier_for)
    if args.rl_steps:
        figures["rl"] = bench_rl(args, runner)
    batches = rl_items(args.rl_steps)
    figures["paper"] = bench_paper(args, runner, figures.get("rl", {}).get("math_verify"), batches)
    runner.close()
    for v in verifiers.values():
        v.close()
    return _write(args, figures)


def _write(args, figures: dict) -> int:
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
