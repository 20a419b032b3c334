"""bench/gpu_check.py --tiny: the GPU check's every section runs on CPU, so the GPU run is a formality."""

from __future__ import annotations

import json

import pytest
from conftest import PYTHON, REPO, run_cmd, tail


@pytest.mark.slow
def test_gpu_check_tiny_reports_every_section(tmp_path):
    out = tmp_path / "check.json"
    proc = run_cmd([PYTHON, str(REPO / "bench" / "gpu_check.py"), "--tiny", "--peak-tflops", "1", "--steps", "2",
                    "--json", str(out)], timeout=900, VLLM_CPU_KVCACHE_SPACE="1")
    assert proc.returncode == 0, tail(proc)
    r = json.loads(out.read_text())
    assert json.loads(proc.stdout[proc.stdout.index("{"):]) == r  # the one JSON report is what it prints
    assert r["failed_sections"] == []
    for name in ("env", "checkpoint", "vllm", "hf_generation", "loss_memory", "trainer_throughput"):
        assert r[name]["ok"] is True, name
    assert r["env"]["cuda"] is False and r["env"]["vllm_importable"] is True
    assert r["checkpoint"]["vocab_rows"] == 151_936  # tiny layers, the real vocabulary
    # the 1-shot recipe's micro-batch: 3,072-token responses under its 24,000-token budget
    assert r["one_shot_micro_batch"]["length"] == 3072 and 1 <= r["one_shot_micro_batch"]["rows"] <= 8

    v = r["vllm"]
    assert v["model_runner"]["class"] == "CPUModelRunner" and v["model_runner"]["v2"] is False
    assert v["start_s"] > 0 and v["sync_s"] > 0
    assert v["sleep"]["supported"] is False  # vLLM has no sleep mode on CPU
    for name in ("vllm", "hf_generation"):
        g = r[name]
        assert g["probe_rule"] == {"dtype": "bfloat16", "statistic": "mean"}
        assert g["generate"]["tokens"] > 0 and g["generate"]["tokens_per_s"] > 0
        assert g["generate_after_wake"]["tokens"] > 0
        # bf16 noise at equal weights and after a sync stays far below the limit; a skipped sync does not
        assert g["probe_equal_weights"]["logprob_gap_mean"] < 0.02
        assert g["probe_after_sync"]["logprob_gap_mean"] < 0.02
        assert g["probe_skipped_sync"]["logprob_gap_mean"] > 0.1 and g["probe_skipped_sync"]["probe_engine_moved"] == 0
        assert g["skipped_sync_caught"] is True and "weight-sync probe failed" in g["skipped_sync_message"]

    m, t = r["loss_memory"], r["trainer_throughput"]
    assert m["vocab"] == 151_936 and m["micro_batch_tokens"] == m["rows"] * (m["prompt_tokens"] + m["response_tokens"])
    assert 0 < m["peak_above_start_gib"] < 4 and m["max_memory_allocated_gib"] is None  # CPU: RSS
    assert t["tokens_per_s"] > 0 and t["tokens_per_step"] == m["micro_batch_tokens"]
    assert t["peak_tflops"] == 1.0 and 0 < t["mfu"] < 1


@pytest.mark.slow
def test_gpu_check_without_vllm_skips_its_checks_and_says_why(tmp_path):
    # what a GPU box without network has: no importable vllm (here a stand-in package that fails to import)
    fake = tmp_path / "shadow" / "vllm"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no vllm on this machine')\n")
    proc = run_cmd([PYTHON, str(REPO / "bench" / "gpu_check.py"), "--tiny", "--sections", "vllm"], timeout=600,
                   PYTHONPATH=str(tmp_path / "shadow"))
    assert proc.returncode == 0, tail(proc)
    r = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert r["env"]["vllm_importable"] is False and "no vllm on this machine" in r["env"]["vllm_import_error"]
    assert "skipped" in r["vllm"] and "no vllm on this machine" in r["vllm"]["skipped"]
    assert "hf_generation" not in r and "trainer_throughput" not in r and r["failed_sections"] == []


def test_gpu_check_unknown_section_is_a_user_mistake():
    proc = run_cmd([PYTHON, str(REPO / "bench" / "gpu_check.py"), "--sections", "vlm"], timeout=60)
    assert proc.returncode == 2 and "--sections: unknown ['vlm']" in proc.stderr, tail(proc)
    assert "Traceback" not in proc.stderr
