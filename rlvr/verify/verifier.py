"""The Verifier: extract → normalise → exact fast path → guarded symbolic fallback, with a cache.

One instance owns one worker pool (started lazily, only when an item needs the fallback) and one
result cache keyed by (policy, normalised answer, normalised gold). It is safe to share between
threads: the fast path is pure, and batches that need the pool take turns on it.
"""

from __future__ import annotations

import cmath
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rlvr.verify import multiple_choice, paper_rules
from rlvr.verify.config import VerifierConfig
from rlvr.verify.exact import Undecided, align, compare, parse_number
from rlvr.verify.extract import extract_answer
from rlvr.verify.normalize import normalize
from rlvr.verify.policy import Policy
from rlvr.verify.prescreen import prescreen

REASONS = (
    "match",
    "mismatch",
    "no_answer",
    "truncated",
    "hedged",
    "unparseable",
    "timeout",
    "rejected_prescreen",
)
log = logging.getLogger("rlvr.verify")
# Exceptions the exact path may raise on hostile input; all mean "cannot decide here".
_UNDECIDED = (Undecided, RecursionError, ValueError, ZeroDivisionError, OverflowError, TypeError)


@dataclass(frozen=True)
class Result:
    """One verdict.

    Attributes:
        score: 1.0 for ``match``, else 0.0.
        answer: the extracted final answer (None when nothing was extracted).
        reason: one of REASONS.
        seconds: wall time spent on this item (fast path + worker time, or the cache lookup).
        stage: where it was decided: extract, exact, symbolic, prescreen, cache (or error, when
            the fast path raised on this input; the item is then scored 0 as unparseable).
        cpu_seconds: CPU time charged against ``timeout`` for a symbolic-fallback item (the fast
            path's thread CPU plus the worker's CPU); 0.0 for items decided without the pool.
            Unlike ``seconds``, it does not grow with machine load.
    """

    score: float
    answer: str | None
    reason: str
    seconds: float
    stage: str = "exact"
    cpu_seconds: float = 0.0


def gold_text(gold: object) -> str | None:
    """Golds as datasets store them: strings, numbers (AMC's 27.0) or lists of strings
    (OlympiadBench's ``final_answer``, joined as one multi-part answer)."""
    if isinstance(gold, str):
        return gold
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        return repr(gold)
    if isinstance(gold, (list, tuple)) and gold and all(isinstance(g, str) for g in gold):
        return ", ".join(gold)
    return None


# The equivalence that stands in for the originals' sympy calls: exact values, no leniencies
# (no inequality-for-interval, no percent-as-fraction), the same exact path and fallback.
_SYMPY_STAND_IN = Policy(
    name="paper_sympy",
    interval_relations=False,
    percent_as_fraction=False,
    equation_forms=False,
    angle_units=False,
    var_names=False,
    anchored_final_box=False,
)
# Rounds of "decide, judge the oracle's open questions in the pool, decide again" per batch. A
# second run only asks questions the first asked (answers only turn False into True, which only
# short-cuts), so two rounds settle every item; the spare rounds are a guard.
_PAPER_ROUNDS = 4


def _result(reason: str, answer: str | None, seconds: float, stage: str, cpu: float = 0.0) -> Result:
    return Result(1.0 if reason == "match" else 0.0, answer, reason, seconds, stage, cpu)


class Verifier:
    """Reusable math-answer judge; a context manager (``close()`` stops its workers)."""

    def __init__(self, config: VerifierConfig | None = None):
        self.config = config or VerifierConfig()
        self.policy = self.config.resolved_policy()
        self._pool = None
        self._pool_lock = threading.Lock()
        self._cache: dict = {}
        self._cache_lock = threading.Lock()
        self._stats = dict.fromkeys(("fallback_items", "timeouts_cpu", "timeouts_wall"), 0)
        self._restarts_of_closed_pools = 0

    # -------------------------------------------------------------- public API
    def verify(
        self, prediction: str, gold: str, *, truncated: bool = False, benchmark: str | None = None
    ) -> Result:
        return self.verify_batch([prediction], [gold], truncated=[truncated], benchmarks=[benchmark])[0]

    def verify_batch(
        self,
        predictions: Sequence[str],
        golds: Sequence[str | float | list[str]],
        *,
        truncated: Sequence[bool] | None = None,
        benchmarks: Sequence[str | None] | None = None,
    ) -> list[Result]:
        """Judge predictions against golds.

        ``truncated`` marks completions cut at the length limit (rlvr's policies score them 0;
        the paper policies grade them, as the originals do). ``benchmarks`` names each item's
        benchmark (``paper_rules.BENCHMARKS``); only ``qwen_math_eval`` reads it (math500 when
        None), and an unknown name raises ValueError.
        """
        if len(predictions) != len(golds):
            raise ValueError(f"{len(predictions)} predictions but {len(golds)} golds")
        if truncated is not None and len(truncated) != len(predictions):
            raise ValueError(f"{len(predictions)} predictions but {len(truncated)} truncated flags")
        if benchmarks is not None:
            if len(benchmarks) != len(predictions):
                raise ValueError(f"{len(predictions)} predictions but {len(benchmarks)} benchmarks")
            for name in benchmarks:
                if name is not None and name not in paper_rules.BENCHMARKS:
                    raise ValueError(
                        f"unknown benchmark {name!r}; known: {', '.join(paper_rules.BENCHMARKS)}"
                    )
        if self.policy.rules == "multiple_choice":
            return self._choice_batch(predictions, golds, truncated)
        if self.policy.rules != "rlvr":
            names = list(benchmarks) if benchmarks is not None else [None] * len(predictions)
            return self._paper_batch(predictions, golds, names)
        results: list[Result | None] = [None] * len(predictions)
        pending: dict = {}  # cache key -> [(index, answer, fast wall seconds, fast CPU seconds)]
        jobs: dict = {}  # cache key -> (pred text, gold text)
        for i, (pred, gold) in enumerate(zip(predictions, golds, strict=True)):
            start, start_cpu = time.perf_counter(), time.thread_time()
            cut = bool(truncated[i]) if truncated is not None else False
            try:
                outcome = self._fast(pred, gold, cut)
            except Exception:  # noqa: BLE001 - a reward must never crash on model output
                outcome = _result("unparseable", None, 0.0, "error")
            elapsed, cpu = time.perf_counter() - start, time.thread_time() - start_cpu
            if isinstance(outcome, tuple):
                key, answer, texts = outcome
                pending.setdefault(key, []).append((i, answer, elapsed, cpu))
                jobs[key] = texts
            else:
                results[i] = Result(outcome.score, outcome.answer, outcome.reason, elapsed, outcome.stage)
        if pending:
            self._run_fallback(pending, jobs, results)
        return results  # type: ignore[return-value]

    def start(self) -> None:
        """Start the fallback workers now (e.g. during a stage's setup) instead of on the first
        item that needs them; they import sympy and math-verify while the caller does other work."""
        if not self.policy.symbolic:
            return
        with self._pool_lock:
            self._pool = self._pool or self._new_pool()
            self._pool.start()

    def _new_pool(self):
        from rlvr.verify.pool import WorkerPool

        return WorkerPool(self.config.workers or min(2, os.cpu_count() or 1), self.config.memory_mb)

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._restarts_of_closed_pools += self._pool.restarts
                self._pool.close()
                self._pool = None

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------- pipeline
    def _fast(self, pred: str, gold: str, cut: bool):
        """A Result, or (cache key, answer, (pred text, gold text)) for the symbolic fallback."""
        if cut:
            return _result("truncated", None, 0.0, "extract")
        gold = gold_text(gold)
        if not isinstance(pred, str) or gold is None:
            return _result("unparseable", None, 0.0, "extract")
        answer, why = extract_answer(pred, self.policy)
        if answer is None:
            return _result(why, None, 0.0, "extract")
        if why == "hedged":
            return _result("hedged", answer, 0.0, "extract")
        limit = self.policy.max_answer_chars
        if len(answer) > max(limit, 2 * len(gold) + 50):
            return _result("rejected_prescreen", answer, 0.0, "prescreen")
        g, p = align(normalize(gold), normalize(answer), self.policy)
        key = (self.policy, p, g)
        hit = self._cache.get(key)
        if hit is not None:
            return _result(hit[0], answer, 0.0, "cache")
        try:
            reason = compare(g, p, self.policy)
        except _UNDECIDED:
            reason = None
        except Exception:  # noqa: BLE001 - an exact-path bug must not decide anything: defer
            reason = None
        if reason is not None:
            self._remember(key, reason, "exact")
            return _result(reason, answer, 0.0, "exact")
        screened = prescreen(p.text, g.text)
        if screened is not None:
            self._remember(key, "rejected_prescreen", "prescreen")
            return _result("rejected_prescreen", answer, 0.0, "prescreen")
        if not self.policy.symbolic:
            return _result("unparseable", answer, 0.0, "exact")
        return key, answer, (p.text, g.text)

    def _run_fallback(self, pending: dict, jobs: dict, results: list) -> None:
        # The budget is CPU time, the fast path's included (its calling thread's CPU, not wall time:
        # a verdict must not depend on machine load, pool.py's docstring says why).
        timeout = self.config.timeout
        items = []
        for key, uses in pending.items():
            fast = min(c for *_, c in uses)
            items.append((key, jobs[key][0], jobs[key][1], self._judge_flags(), max(0.01, timeout - fast)))
        verdicts = self._pool_run(items)
        for key, uses in pending.items():
            reason, secs, cpu = verdicts.get(key, ("timeout", timeout, timeout))
            self._remember(key, reason, "symbolic")
            for i, answer, fast, fast_cpu in uses:
                results[i] = _result(reason, answer, fast + secs, "symbolic", fast_cpu + cpu)

    def _judge_flags(self) -> bool | tuple[bool, bool]:
        """What symbolic.judge is told: interval_relations, and whether an equation may stand for
        a value (math-verify's right-side comparison; off under ``var_names``)."""
        if self.policy.var_names:
            return (self.policy.interval_relations, False)
        return self.policy.interval_relations

    def _pool_run(self, items: list[tuple]) -> dict:
        """Judge items in the pool; timeouts are counted (``stats()``) and logged per batch."""
        with self._pool_lock:
            self._pool = self._pool or self._new_pool()
            pool = self._pool
            before = (pool.timeouts_cpu, pool.timeouts_wall)
            verdicts = pool.run(items)
            cpu, wall = pool.timeouts_cpu - before[0], pool.timeouts_wall - before[1]
            self._stats["fallback_items"] += len(items)
            self._stats["timeouts_cpu"] += cpu
            self._stats["timeouts_wall"] += wall
        if cpu or wall:
            log.warning(
                "rlvr.verify: %d of %d symbolic-fallback items timed out (%d over the %g s CPU limit, %d at "
                "the wall-clock backstop); they score 0 with reason 'timeout'",
                cpu + wall,
                len(items),
                cpu,
                self.config.timeout,
                wall,
            )
        return verdicts

    def stats(self) -> dict[str, int]:
        """Cumulative counters since this Verifier was made: ``fallback_items`` (items judged in the
        pool), ``timeouts_cpu`` (over the CPU limit), ``timeouts_wall`` (the others: killed by the
        wall-clock backstop, workers that could not start, or a worker that died twice on the item),
        ``timeouts`` (their sum), ``worker_restarts``."""
        with self._pool_lock:
            out = dict(self._stats)
            out["worker_restarts"] = self._restarts_of_closed_pools + (
                self._pool.restarts if self._pool else 0
            )
        out["timeouts"] = out["timeouts_cpu"] + out["timeouts_wall"]
        return out

    # -------------------------------------------------------------- multiple choice
    def _choice_batch(self, predictions, golds, truncated) -> list[Result]:
        """Letter grading (multiple_choice.py): pure string work, never the worker pool."""
        results = []
        for i, (pred, gold) in enumerate(zip(predictions, golds, strict=True)):
            start = time.perf_counter()
            if truncated is not None and truncated[i]:
                results.append(_result("truncated", None, 0.0, "extract"))
                continue
            try:
                graded = multiple_choice.grade(pred, gold, self.policy)
            except Exception:  # noqa: BLE001 - a reward must never crash on model output
                graded = multiple_choice.Graded("unparseable", None)
            stage = "exact" if graded.reason in ("match", "mismatch") else "extract"
            results.append(_result(graded.reason, graded.answer, time.perf_counter() - start, stage))
        return results

    # -------------------------------------------------------------- paper policies
    def _paper_batch(self, predictions, golds, benchmarks) -> list[Result]:
        """Run a published grader's decision (paper_rules.py) on each item.

        Where the original calls sympy, the decision asks ``sym(pred, gold)``. Questions the fast
        path settles are answered at once; the others are answered False for now and collected,
        judged together in the worker pool, and the items that asked them are decided again.
        """
        n = len(predictions)
        results: list[Result | None] = [None] * n
        spent = [0.0] * n
        pool_used = [False] * n
        known: dict[tuple[str, str], str] = {}  # (pred, gold) -> match | mismatch | timeout | ...
        todo = list(range(n))
        for round_ in range(_PAPER_ROUNDS):
            open_questions: dict[tuple[str, str], tuple[str, str]] = {}
            again = []
            for i in todo:
                start = time.perf_counter()
                asked: set = set()
                consulted: set = set()

                def sym(
                    pred: str, gold: str, asked=asked, consulted=consulted, questions=open_questions
                ) -> bool:
                    key = (pred, gold)
                    consulted.add(key)
                    if key not in known:
                        verdict = self._sym_fast(pred, gold)
                        if isinstance(verdict, tuple):  # needs the pool
                            asked.add(key)
                            questions[key] = verdict
                            return False
                        known[key] = verdict
                    return known[key] == "match"

                try:
                    outcome = self._paper_decide(predictions[i], golds[i], benchmarks[i], sym)
                except Exception:  # noqa: BLE001 - a reward must never crash on model output
                    outcome = _result("unparseable", None, 0.0, "error")
                spent[i] += time.perf_counter() - start
                if asked and round_ < _PAPER_ROUNDS - 1:
                    again.append(i)
                    continue
                if outcome.reason == "mismatch" and any(known.get(k) == "timeout" for k in consulted):
                    outcome = _result("timeout", outcome.answer, 0.0, "symbolic")
                stage = "symbolic" if pool_used[i] else outcome.stage
                results[i] = Result(outcome.score, outcome.answer, outcome.reason, spent[i], stage)
            if not open_questions:
                break
            verdicts, seconds = self._judge_in_pool(open_questions)
            known.update(verdicts)
            for i in again:
                spent[i] += seconds
                pool_used[i] = True
            todo = again
        return results  # type: ignore[return-value]

    def _paper_decide(self, prediction, gold, benchmark, sym) -> Result:
        rules = self.policy.rules
        gold = paper_rules.gold_string(gold, benchmark or "math500")
        if not isinstance(prediction, str) or gold is None:
            return _result("unparseable", None, 0.0, "extract")
        if rules == "one_shot_reward":
            ok, answer = paper_rules.one_shot_reward(prediction, gold, sym)
        elif rules == "qwen_math_eval":
            ok, answer = paper_rules.qwen_math_eval(prediction, gold, benchmark or "math500", sym)
        else:
            raise ValueError(f"unknown rules {rules!r}")
        if ok:
            return _result("match", answer, 0.0, "exact")
        return _result("no_answer" if not answer else "mismatch", answer or None, 0.0, "exact")

    def _sym_fast(self, pred: str, gold: str):
        """The stand-in for the original's sympy step: a reason, or (pred text, gold text) to
        judge in the pool. qwen_math_eval's ``symbolic_equal`` ends with ``N(a) ≈ N(b)`` at a
        relative 1e-4, so two plain numbers are compared that way first."""
        key = ("paper_sympy", self.policy.rules, pred, gold)
        hit = self._cache.get(key)
        if hit is not None:
            return hit[0]
        g, p = normalize(gold), normalize(pred)
        reason = None
        if self.policy.rules == "qwen_math_eval":
            gv, pv = _plain_number(g.text), _plain_number(p.text)
            if gv is not None and pv is not None:
                close = cmath.isclose(gv, pv, rel_tol=1e-4)
                reason = "match" if close else "mismatch"
        if reason is None:
            try:
                reason = compare(g, p, _SYMPY_STAND_IN)
            except Exception:  # noqa: BLE001 - Undecided and parser errors alike: defer
                reason = None
        if reason is None and prescreen(p.text, g.text) is not None:
            reason = "rejected_prescreen"
        if reason is None and not self.policy.symbolic:
            reason = "unparseable"
        if reason is None:
            return (p.text, g.text)
        self._remember(key, reason, "exact")
        return reason

    def _judge_in_pool(self, questions: dict) -> tuple[dict, float]:
        start = time.perf_counter()
        items = [
            (("paper_sympy", self.policy.rules, *key), texts[0], texts[1], False, self.config.timeout)
            for key, texts in questions.items()
        ]
        verdicts = self._pool_run(items)
        out = {}
        for item in items:
            reason, *_ = verdicts.get(item[0], ("timeout", self.config.timeout, self.config.timeout))
            self._remember(item[0], reason, "symbolic")
            out[item[0][2:]] = reason
        return out, time.perf_counter() - start

    def _remember(self, key, reason: str, stage: str) -> None:
        size = self.config.cache_size
        if not size:
            return
        with self._cache_lock:
            if len(self._cache) >= size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (reason, stage)

    # -------------------------------------------------------------- introspection (tests, bench)
    def worker_pids(self) -> list[int]:
        return self._pool.pids() if self._pool is not None else []

    def busy_worker_pids(self) -> list[int]:
        return self._pool.busy_pids() if self._pool is not None else []


def _plain_number(text: str) -> complex | None:
    """The value of a variable-free number (exact path), or None."""
    try:
        value = parse_number(text)
        if value.has_variables() or value.has_atoms():
            return None
        return value.to_complex()
    except Exception:  # noqa: BLE001 - not a plain number
        return None
