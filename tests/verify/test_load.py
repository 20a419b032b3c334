"""Verdicts do not depend on machine load (issue #20 item 5).

The fallback's per-item limit counts the worker's CPU time, so two verifiers judging the same
sympy-bound items next to busy loops, all pinned to one core, give the verdicts one verifier gives
alone. Under the old wall-clock limit the loaded runs timed out on the heavier items (each costs
0.05-0.25 s of CPU, under a 1 s limit, but several times that in wall time on a shared core).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 1.0  # CPU seconds; the items below cost 4x-20x less, alone or loaded
BUSY_LOOPS = 3

# Trigonometric identities: the exact path has no trigonometry, so each goes to sympy.
ITEMS = [
    (rf"\boxed{{{pred}}}", gold)
    for k in (3, 5, 7)
    for pred, gold in (
        (rf"\sin^2({k}x)\cos^2({k}x)", rf"\frac{{\sin^2({2 * k}x)}}{{4}}"),
        (rf"(\sin({k}x)+\cos({k}x))^2", rf"1 + \sin({2 * k}x)"),
        (rf"\cos^2({k}x) - \sin^2({k}x)", rf"\cos({2 * k}x)"),
        (rf"\sin^2({k}x) + \cos^2({k}x)", "1"),
    )
]

JUDGE = """
import json, os, sys
os.sched_setaffinity(0, {int(sys.argv[1])})  # the forkserver and workers inherit the one core
from rlvr.verify import Verifier, VerifierConfig
items = json.loads(sys.argv[2])
with Verifier(VerifierConfig(workers=1, timeout=float(sys.argv[3]), cache_size=0)) as v:
    v.start()
    print(json.dumps([r.reason for r in v.verify_batch([p for p, _ in items], [g for _, g in items])]))
"""

BUSY = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


def _judge(core: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", JUDGE, str(core), json.dumps(ITEMS), str(TIMEOUT)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _reasons(proc: subprocess.Popen) -> list[str]:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity to fix the load")
def test_concurrent_verifiers_under_cpu_load_give_the_verdicts_of_one_alone():
    core = min(os.sched_getaffinity(0))
    alone = _reasons(_judge(core))
    assert alone == ["match"] * len(ITEMS), alone  # every identity holds, well inside the limit
    busy = [subprocess.Popen([sys.executable, "-c", BUSY, str(core)]) for _ in range(BUSY_LOOPS)]
    try:
        time.sleep(0.2)
        loaded = [_judge(core), _judge(core)]
        both = [_reasons(p) for p in loaded]
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert both == [alone, alone], [[(i, r) for i, r in enumerate(rs) if r != "match"] for rs in both]
