"""The update of one global batch does not depend on how it is split: micro-batches x accumulation
(1x8 vs 2x4, or a token budget per micro-batch), ranks (1 vs 2), ZeRO stage (0, 2, 3) or LM-head chunking (rlvr.rl.logprobs; unchunked,
chunks of 7 and of 16 positions, under ZeRO-3 too). Checked through the real `rlvr run` path on
SFT, whose examples have different numbers of loss tokens, so a per-micro-batch mean would give a
different update.

Adam's first step is nearly scale-free, so the logged pre-clip gradient norm is compared too: it
exposes any wrong overall scale (e.g. a missing 1/grad_accum or world-size correction), and a stage
that logs no norm at all (ZeRO-0 with the bare client optimizer once did)."""

from __future__ import annotations

import json

import pytest
from conftest import PYTHON, REPO, run_cmd, tail, torchrun
from safetensors.torch import load_file

TINY = ["--set", "model.tiny={hidden_size: 64, num_layers: 2, num_heads: 2, num_kv_heads: 1, intermediate_size: 128}"]


def _sft_run(tmp_path, name, micro, accum, nproc=1, zero=2, chunk=1024, budget=None):
    run_dir = tmp_path / name
    args = ["-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir), *TINY,
            "--set", "stages=[{name: sft, type: sft, data: {toy: {n: 64, levels: [1, 3, 5], seed: 4}}, "
                     "max_steps: 2, optim: {lr: 1.0e-3, schedule: constant, grad_clip: 0}, max_len: 128, "
                     f"max_tokens_per_micro_batch: {budget or 'null'}}}]",
            "--set", f"backend={{zero_stage: {zero}, micro_batch_size: {micro}, grad_accum: {accum}, "
                     f"logits_chunk_tokens: {chunk}}}"]
    cmd = torchrun(nproc, *args) if nproc > 1 else [PYTHON, *args]
    proc = run_cmd(cmd, timeout=240)
    assert proc.returncode == 0, tail(proc)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    weights = load_file(str(run_dir / "stages" / "sft" / "final" / "model.safetensors"))
    return metrics, weights


def _assert_same(a, b):
    (ma, wa), (mb, wb) = a, b
    for x, y in zip(ma, mb, strict=True):
        assert x["tokens"] == y["tokens"]
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5)
        assert x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-5)
    for k in wa:
        assert (wa[k] - wb[k]).abs().max().item() <= 1e-5, k


@pytest.mark.slow
def test_gradient_accumulation_invariance(tmp_path):
    whole = _sft_run(tmp_path, "1x8", micro=8, accum=1)
    split = _sft_run(tmp_path, "2x4", micro=2, accum=4, chunk=7)  # LM head in chunks of 7 positions
    _assert_same(whole, split)
    no_zero = _sft_run(tmp_path, "2x4-zero0", micro=2, accum=4, zero=0)
    _assert_same(whole, no_zero)
    budget = _sft_run(tmp_path, "budget", micro=2, accum=4, budget=210)  # rows packed up to 210 positions
    _assert_same(whole, budget)


@pytest.mark.slow
def test_data_parallel_invariance(tmp_path):
    one = _sft_run(tmp_path, "r1", micro=4, accum=2, chunk=0)  # full-vocabulary logits, the unchunked path
    two = _sft_run(tmp_path, "r2", micro=2, accum=2, nproc=2, zero=3, chunk=16)  # ZeRO-3 gathers the head in fwd and bwd
    _assert_same(one, two)
    # token budget, 2 ranks, ZeRO-3: the ranks cut their rows into different numbers of micro-batches,
    # and the one with fewer runs empty ones
    budget = _sft_run(tmp_path, "r2-budget", micro=2, accum=2, nproc=2, zero=3, budget=210)
    _assert_same(one, budget)
