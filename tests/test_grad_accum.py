"""Gradient accumulation dtype (backend.grad_accum_dtype): a bf16 model's 16 micro-batch gradients summed
by DeepSpeed against the exact sum of the same per-micro-batch gradients (float64)."""

from __future__ import annotations

import json

import pytest
from conftest import PYTHON, run_cmd, tail

ACCUMULATE = r"""
import json, sys
import deepspeed, torch
import torch.nn.functional as F
from rlvr.backend import DeepSpeedBackend
from rlvr.config import BackendConfig, OptimConfig, TinyModelSpec
from rlvr.models.load import load_model
from rlvr.models.tiny import build_tiny
from rlvr.world import World

path, cases = sys.argv[1], json.loads(sys.argv[2])
build_tiny(TinyModelSpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128), path)
MICRO, T = 16, 32
data = torch.randint(3, 300, (MICRO, 1, T), generator=torch.Generator().manual_seed(0))


def loss_of(forward, ids):  # token NLL over the step's global count, the backend's loss contract
    logits = forward(input_ids=ids).logits.float()
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="sum") / (MICRO * (T - 1))


# reference: the same bf16 per-micro-batch gradients, summed exactly
model = load_model(path, dtype="bfloat16")
ref = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in model.named_parameters()}
for ids in data:
    model.zero_grad(set_to_none=True)
    loss_of(model, ids).backward()
    for n, p in model.named_parameters():
        ref[n] += p.grad.double()
flat_ref = torch.cat([g.flatten() for g in ref.values()])
out = {"one_rounding": ((flat_ref.bfloat16().double() - flat_ref).norm() / flat_ref.norm()).item()}
for stage, accum, comm in cases:
    backend = DeepSpeedBackend.wrap(load_model(path, dtype="bfloat16"), world=World(),
                                    config=BackendConfig(zero_stage=stage, grad_accum_dtype=accum,
                                                         communication_data_type=comm),
                                    optim=OptimConfig(lr=1e-3), dtype="bfloat16", total_steps=1,
                                    micro_batch_size=1, grad_accum=MICRO)
    for ids in data:
        backend.backward(loss_of(backend.forward, ids))
    got = {n: deepspeed.utils.safe_get_full_grad(p) for n, p in backend.module.named_parameters()}
    flat = torch.cat([got[n].double().flatten() for n in ref])
    out[f"{stage}/{accum}/{comm}"] = {"rel_error": ((flat - flat_ref).norm() / flat_ref.norm()).item(),
                               "dtype": str(next(iter(got.values())).dtype)}
    backend.step()
    backend.close()
print("ACCUM", json.dumps(out))
"""


def _accumulate(tmp_path, cases):
    proc = run_cmd([PYTHON, "-c", ACCUMULATE, str(tmp_path / "tiny"), json.dumps(cases)], timeout=300)
    assert proc.returncode == 0, tail(proc)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("ACCUM "))
    print(line)
    return json.loads(line.removeprefix("ACCUM "))


@pytest.mark.slow
def test_bf16_micro_batches_accumulate_in_fp32_by_default(tmp_path):
    """16 bf16 micro-batches: fp32 accumulation (the default at ZeRO 1-3) lands within one bf16 rounding of
    the exact sum; bf16 accumulation (DeepSpeed's own default) is several roundings off. ZeRO-1 (DeepSpeed's
    BF16_Optimizer) all-reduces the fp32 sum at the boundary in communication_data_type, bf16 by default:
    exactly one rounding, none with fp32 communication."""
    r = _accumulate(tmp_path, [[1, "auto", "auto"], [1, "auto", "fp32"], [2, "auto", "auto"], [3, "auto", "auto"],
                               [2, "bf16", "auto"], [3, "bf16", "auto"]])
    one = r["one_rounding"] * (1 + 1e-9)
    for case in ("1/auto/auto", "1/auto/fp32", "2/auto/auto", "3/auto/auto"):
        assert r[case]["dtype"] == "torch.float32", (case, r)
        assert r[case]["rel_error"] <= one, (case, r)
    for case in ("1/auto/fp32", "2/auto/auto", "3/auto/auto"):  # fp32 all the way: the sum is exact to fp32
        assert r[case]["rel_error"] < 1e-6, (case, r)
    for case in ("2/bf16/auto", "3/bf16/auto"):
        assert r[case]["rel_error"] > 2 * one, (case, r)


def test_grad_accum_dtype_follows_zero_stage_and_rejects_unsupported_mixes():
    from rlvr.backend import grad_accum_dtype
    from rlvr.config import BackendConfig

    assert grad_accum_dtype(BackendConfig(zero_stage=2), "bfloat16") == "fp32"
    assert grad_accum_dtype(BackendConfig(zero_stage=0), "bfloat16") == "bf16"  # DeepSpeed: model dtype only
    assert grad_accum_dtype(BackendConfig(zero_stage=0), "float32") == "fp32"
    assert grad_accum_dtype(BackendConfig(zero_stage=3, grad_accum_dtype="bf16"), "bfloat16") == "bf16"
    with pytest.raises(ValueError, match="backend.grad_accum_dtype=fp32"):
        grad_accum_dtype(BackendConfig(zero_stage=0, grad_accum_dtype="fp32"), "bfloat16")
    with pytest.raises(ValueError, match="backend.grad_accum_dtype=bf16"):
        grad_accum_dtype(BackendConfig(zero_stage=2, grad_accum_dtype="bf16"), "float32")
