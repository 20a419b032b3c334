"""Timeouts are counted where a run reports them: ``Verifier.stats()``, a log line per batch, the
``rlvr verify`` summary; the CPU limit and the wall-clock backstop are told apart."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from rlvr.verify import Verifier, VerifierConfig
from rlvr.verify import pool as pool_module

REPO = Path(__file__).resolve().parents[2]
# True, but sympy needs many CPU seconds for it (16 s on a 2-vCPU EPYC VM): over any small limit.
HEAVY = (r"\boxed{\sin^2(16x)\cos^2(16x)}", r"\frac{\sin^2(32x)}{4}")
LIGHT = (r"\boxed{\sqrt[3]{2} + 2x + 1}", r"1 + 2x + \sqrt[3]{2}")


def test_cpu_timeout_is_counted_logged_and_charged(caplog):
    with Verifier(VerifierConfig(workers=1, timeout=0.5, cache_size=0)) as verifier:
        assert verifier.stats()["timeouts"] == 0
        with caplog.at_level(logging.WARNING, logger="rlvr.verify"):
            heavy, light = verifier.verify_batch([HEAVY[0], LIGHT[0]], [HEAVY[1], LIGHT[1]])
        assert (heavy.reason, light.reason) == ("timeout", "match")
        assert 0.5 <= heavy.cpu_seconds <= 0.5 + 0.25
        assert 0.0 < light.cpu_seconds < 0.5
        stats = verifier.stats()
        assert stats["fallback_items"] == 2
        assert (stats["timeouts_cpu"], stats["timeouts_wall"], stats["timeouts"]) == (1, 0, 1)
        assert stats["worker_restarts"] == 1  # the overrunning worker was killed and replaced
        logged = [r.getMessage() for r in caplog.records if r.name == "rlvr.verify"]
        assert len(logged) == 1 and "1 of 2" in logged[0] and "0.5 s CPU limit" in logged[0]


def test_a_stalled_worker_is_killed_by_the_wall_backstop(monkeypatch):
    """A worker that gets no CPU at all (here SIGSTOPped) never reaches its CPU limit: the
    wall-clock backstop still ends the item, and it is counted apart."""
    monkeypatch.setattr(pool_module, "WALL_BACKSTOP_FACTOR", 1.0)
    monkeypatch.setattr(pool_module, "WALL_BACKSTOP_MIN", 1.0)
    with Verifier(VerifierConfig(workers=1, timeout=1.0, cache_size=0)) as verifier:
        verifier.start()
        stopped: list[int] = []

        def stopper() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not stopped:
                busy = verifier.busy_worker_pids()
                if busy:
                    os.kill(busy[0], signal.SIGSTOP)
                    stopped.append(busy[0])
                time.sleep(0.001)

        thread = threading.Thread(target=stopper)
        thread.start()
        start = time.monotonic()
        result = verifier.verify(*LIGHT)
        elapsed = time.monotonic() - start
        thread.join()
        assert stopped, "the worker was never seen busy"
        assert result.reason == "timeout" and result.cpu_seconds < 1.0
        assert elapsed < 30
        stats = verifier.stats()
        assert (stats["timeouts_cpu"], stats["timeouts_wall"]) == (0, 1)
        assert verifier.verify(*LIGHT).reason == "match"  # the respawned worker carries on


def test_cli_summary_counts_timeouts(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"prediction": p, "gold": g}) + "\n" for p, g in (HEAVY, LIGHT)))
    proc = subprocess.run([sys.executable, "-m", "rlvr", "verify", "--in", str(inp), "--out", str(tmp_path / "o.jsonl"),
                           "--workers", "1", "--timeout", "0.5"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert " timeouts=1" in proc.stdout.strip().splitlines()[-1]
    assert "1 of 2 symbolic-fallback items timed out" in proc.stderr
