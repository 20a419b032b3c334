"""Colocated vLLM next to a DeepSpeed trainer under torchrun: weight sync, probe, seeds (2 ranks)."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, run_cmd, tail, torchrun

WORKER = str(REPO / "tests" / "generate" / "worker_sync.py")
STEPS = 3


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [2, 3])
def test_train_sync_probe_each_step(zero_stage, tiny_model, tmp_path):
    out = tmp_path / "result.json"
    proc = run_cmd(torchrun(2, WORKER, str(tiny_model), str(zero_stage), str(out), str(STEPS)), timeout=300)
    assert proc.returncode == 0, tail(proc)
    r = json.loads(out.read_text())
    assert r["world_size"] == 2 and r["skipped"] is None
    assert len(r["probe"]) == len(r["sync_seconds"]) == STEPS
    # every step: the engine's sampled logprobs equal the trainer's, and after the sync so do the probe's
    assert max(r["sampled_gap"]) <= 1e-5
    assert all(p["gen/logprob_gap_max"] <= 1e-5 for p in r["probe"])
    # the training steps moved the weights, and the engine generates from the new ones
    assert r["greedy"][0] != r["greedy"][-1]
    assert r["samples"][0] != r["samples"][1]
    # seeds: same seed, same samples; different ranks, different samples (engine seed + rank)
    assert r["same_seed_same_samples"]
    assert r["rank_samples"][0] != r["rank_samples"][1]
    assert r["rank_greedy"][0] == r["rank_greedy"][1]  # same weights on both ranks
    assert max(r["sync_seconds"]) < 5
    assert r["uneven"] == [[2, 2], []]  # a rank with no requests takes part without hanging


@pytest.mark.slow
def test_skipped_sync_stops_the_run(tiny_model, tmp_path):
    out = tmp_path / "result.json"
    proc = run_cmd(torchrun(2, WORKER, str(tiny_model), "3", str(out), str(STEPS), "1"), timeout=300)
    assert proc.returncode != 0, tail(proc)
    assert "StaleWeightsError: weight-sync probe failed" in proc.stderr, tail(proc)
    r = json.loads(out.read_text())
    assert r["skipped"] == 1 and len(r["probe"]) == 2  # stopped right at the skipped step
    assert r["probe"][0]["gen/logprob_gap_max"] <= 1e-5 and r["probe"][1]["gen/logprob_gap_max"] > 1e-3


@pytest.mark.slow
def test_generate_bench_runs(tmp_path):
    from conftest import PYTHON

    out = tmp_path / "bench.json"
    proc = run_cmd([PYTHON, str(REPO / "bench" / "generate.py"), "--prompts", "2", "--max-tokens", "8",
                    "--steps", "1", "--repeats", "1", "--json", str(out)], timeout=240)
    assert proc.returncode == 0, tail(proc)
    r = json.loads(out.read_text())
    assert r["vllm"]["tokens_per_s"] > 0 and r["hf"]["tokens_per_s"] > 0 and r["vllm_over_hf"] > 0
    assert 0 < r["rl_step"]["sync_s"] < r["rl_step"]["step_s"] and r["rl_step"]["probe_gap_max"] <= 1e-5
