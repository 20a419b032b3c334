"""vLLM sleep mode on a GPU: weights synced while asleep survive wake-up, and sleep frees memory. Level 2
discards the weights, so after a wake-up they are synced again before the probe (the RL stage's order).
Skipped without CUDA (CPU vLLM has no sleep mode). Not yet run: no GPU was lent to the session that
wrote it."""

from __future__ import annotations

import json

import pytest
from conftest import PYTHON, REPO, run_cmd, tail


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA device and a CUDA build of vLLM")
@pytest.mark.parametrize("level", [1, 2])
def test_sleep_sync_wake_keeps_new_weights(level, tiny_model, tmp_path):
    out = tmp_path / "result.json"
    proc = run_cmd([PYTHON, str(REPO / "tests" / "generate" / "worker_sleep.py"), str(tiny_model), str(level),
                    str(out)], timeout=600)
    assert proc.returncode == 0, tail(proc)
    r = json.loads(out.read_text())
    assert r["probe_initial"] <= 1e-4
    assert r["free_asleep"] > r["free_awake"]  # the KV cache (and weights) went back
    assert r["probe_after_sleep_sync_wake"] <= 1e-4  # not the stale offloaded copy
    assert r["probe_after_second_cycle"] <= 1e-4  # level 1: kept over a cycle; level 2: re-synced after wake
    assert r["greedy_after"] != r["greedy_before"]
