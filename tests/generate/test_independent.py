"""One independent vLLM engine per rank under torchrun (2 ranks): uneven work per rank, including a rank
with no requests and calls only one rank makes (a hang in data-parallel lockstep), greedy outputs equal
to one engine's on all prompts, per-rank seeds, per-rank weight sync + probe, and the trainer's process
group alive after the engines close."""

from __future__ import annotations

import json

import pytest
from conftest import PYTHON, REPO, run_cmd, tail, torchrun

WORKER = str(REPO / "tests" / "generate" / "worker_independent.py")


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("independent")
    ref, two = tmp / "ref.json", tmp / "two.json"
    proc = run_cmd([PYTHON, WORKER, str(tiny_model), str(ref)], timeout=300)
    assert proc.returncode == 0, tail(proc)
    proc = run_cmd(torchrun(2, WORKER, str(tiny_model), str(two)), timeout=300)
    assert proc.returncode == 0, tail(proc)
    return json.loads(ref.read_text())["ranks"][0], json.loads(two.read_text())


@pytest.mark.slow
def test_uneven_shares_give_the_single_engine_greedy_outputs(runs):
    ref, two = runs
    r0, r1 = two["ranks"]
    assert [r0["dp"], r1["dp"]] == [[0, 2], [1, 2]] and ref["dp"] == [0, 1]
    assert r0["calls"] == [[1] * 5, []] and r1["calls"] == [[1], [1, 1, 1]]  # rank 0 had nothing in call 2
    assert r0["extra_calls_then_zero"] == r1["extra_calls_then_zero"] == []
    assert len(ref["greedy"]) == 6
    for rank in (r0, r1):
        assert rank["greedy"]  # every prompt a rank got is decoded exactly as one engine decodes it
        for i, ids in rank["greedy"].items():
            assert ids == ref["greedy"][i], f"prompt {i}"
    assert set(r0["greedy"]) | set(r1["greedy"]) == set(ref["greedy"])


@pytest.mark.slow
def test_each_rank_samples_its_own_seeded_stream_from_the_model(runs):
    _, two = runs
    r0, r1 = two["ranks"]
    for rank in (r0, r1):
        assert rank["same_seed_same_samples"]
        assert rank["sampled_gap"] <= 1e-5  # sampled logprobs are the trainer's: the same distribution
        assert len({tuple(s) for s in rank["samples"]}) == len(rank["samples"]) == 8
    assert r0["samples"] != r1["samples"]  # same Sampling.seed, different ranks, different samples


@pytest.mark.slow
def test_weight_sync_and_probe_per_rank_and_group_survives_close(runs):
    _, two = runs
    r0, r1 = two["ranks"]
    for rank in (r0, r1):
        assert rank["probe_stale"]["gen/logprob_gap_max"] > 1e-2  # each rank moved its own trainer copy
        assert rank["probe_synced"]["gen/logprob_gap_max"] <= 1e-5
    # the ranks pushed different weights: each engine holds its own, not a shared or averaged copy
    assert max(abs(a - b) for a, b in zip(r0["engine_scores"], r1["engine_scores"], strict=True)) > 1e-2
    assert two["pg_after_close"] == 2.0  # an all-reduce on the trainer's group after both engines closed
