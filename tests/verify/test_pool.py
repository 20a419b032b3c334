"""Isolation and timeouts: worker death loses no result, the hard deadline holds from any thread or
process, and the pool keeps working afterwards."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time

from rlvr.verify import Verifier, VerifierConfig
from rlvr.verify.pool import WALL_BACKSTOP_MIN

SLOW_PRED = r"\frac{d^{2} v_{o}}{d t^{3}}+\frac{v_{o}}{L C}=\frac{v_{i}}{L C}"
SLOW_GOLD = r"\frac{d^{2} v_{o}}{d t^{2}}+\frac{v_{o}}{L C}=\frac{v_{i}}{L C}"


def _symbolic_batch(n: int) -> tuple[list[str], list[str]]:
    """Pairs only the symbolic fallback can decide (the exact path has no cube roots)."""
    preds = [rf"\boxed{{\sqrt[3]{{{k}}} + {k}x + 1}}" for k in range(2, 2 + n)]
    golds = [rf"1 + {k}x + \sqrt[3]{{{k}}}" for k in range(2, 2 + n)]
    return preds, golds


def test_kill_9_of_busy_worker_loses_no_result():
    preds, golds = _symbolic_batch(12)
    with Verifier(VerifierConfig(workers=1, timeout=2.0)) as verifier:
        killed: list[int] = []

        def killer() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not killed:
                busy = verifier.busy_worker_pids()
                if busy:
                    os.kill(busy[0], signal.SIGKILL)
                    killed.append(busy[0])
                time.sleep(0.001)

        thread = threading.Thread(target=killer)
        thread.start()
        results = verifier.verify_batch(preds, golds)
        thread.join()
        assert killed, "the worker was never seen busy"
        assert len(results) == len(preds)
        assert all(r.reason in ("match", "timeout") for r in results), [r.reason for r in results]
        assert sum(r.reason == "match" for r in results) >= len(preds) - 1
        assert verifier._pool.restarts >= 1
        assert killed[0] not in verifier.worker_pids()
        # the respawned worker serves the next batch
        again = verifier.verify_batch([r"\boxed{\sqrt[3]{y}+1}"], [r"1+\sqrt[3]{y}"])
        assert again[0].reason == "match"


def test_timeout_kills_worker_and_pool_recovers():
    with Verifier(VerifierConfig(workers=1, timeout=0.3, cache_size=0)) as verifier:
        verifier.verify_batch([r"\boxed{\sqrt[3]{z}^2}"], [r"\sqrt[3]{z} \cdot \sqrt[3]{z}"])  # warm up
        start = time.monotonic()
        result = verifier.verify(rf"\boxed{{{SLOW_PRED}}}", SLOW_GOLD)
        elapsed = time.monotonic() - start
        assert result.score == 0.0
        assert result.reason in ("timeout", "mismatch")
        assert result.cpu_seconds <= 0.3 + 0.05  # the limit counts the worker's CPU time
        assert elapsed <= WALL_BACKSTOP_MIN + 1.0  # and a wall-clock backstop bounds the wait
        # the respawned worker serves later items (a loaded CI box may need a second try at 0.3 s)
        reasons = [verifier.verify(r"\boxed{2\sqrt[3]{k}+2}", r"2(\sqrt[3]{k}+1)").reason for _ in range(3)]
        assert "match" in reasons, reasons


def test_same_answers_from_threads_and_main_thread():
    preds, golds = _symbolic_batch(6)
    preds += [r"\boxed{\frac12}", r"\boxed{9^{9^{9^{9}}}}", r"\boxed{5"]
    golds += ["0.5", "3", "5"]
    with Verifier(VerifierConfig(workers=2)) as verifier:
        main = [r.reason for r in verifier.verify_batch(preds, golds)]
        outs: dict[int, list[str]] = {}

        def work(k: int) -> None:
            fresh = Verifier(VerifierConfig(workers=1, cache_size=0)) if k % 2 else verifier
            outs[k] = [r.reason for r in fresh.verify_batch(preds, golds)]
            if fresh is not verifier:
                fresh.close()

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert main == ["match"] * 7 + ["rejected_prescreen", "truncated"]
    assert all(outs[k] == main for k in range(4))


def _child(queue) -> None:
    from rlvr.verify import verify

    queue.put([verify(r"\boxed{2k+2}", "2(k+1)").reason, verify(r"\boxed{3}", "4").reason])


def test_works_inside_a_spawned_child_process():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue,))
    proc.start()
    got = queue.get(timeout=60)
    proc.join(timeout=30)
    assert got == ["match", "mismatch"]
