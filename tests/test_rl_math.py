"""Advantage estimators, aggregation modes, the clipped policy loss, KL estimators and entropy against
hand-derived values (arithmetic in each docstring), and aggregation invariance to splitting."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.rl.advantages import ESTIMATORS
from rlvr.rl.losses import AGGREGATIONS, aggregate, entropy, kl, policy_loss, tis_weights, token_logprobs

# groups: g0 = [1, 0, 0, 1], g1 = [1, 1], g2 = [1] (a singleton)
REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
GROUP = torch.tensor([0, 0, 0, 0, 1, 1, 2])


def test_grpo():
    """g0: mean 0.5, unbiased std sqrt((4 * 0.25) / 3) = 0.577350 -> +-0.5 / (0.577350 + 1e-6) = +-0.866024.
    g1: all equal -> std 0 -> 0. g2: singleton -> mean 0, std 1 -> 1 / (1 + 1e-6)."""
    a = ESTIMATORS["grpo"](REWARDS, GROUP)
    s = math.sqrt(1 / 3)
    expect = [0.5 / (s + 1e-6), -0.5 / (s + 1e-6), -0.5 / (s + 1e-6), 0.5 / (s + 1e-6), 0, 0, 1 / (1 + 1e-6)]
    torch.testing.assert_close(a, torch.tensor(expect), atol=1e-6, rtol=0)


def test_dr_grpo():
    """r - group mean: g0 -> [0.5, -0.5, -0.5, 0.5], g1 -> [0, 0], singleton -> 1 - 0 = 1."""
    a = ESTIMATORS["dr_grpo"](REWARDS, GROUP)
    torch.testing.assert_close(a, torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 1.0]))


def test_rloo():
    """r_i - mean of the others: g0 element 0: 1 - (0 + 0 + 1) / 3 = 2/3; element 1: 0 - 2/3 = -2/3.
    g1: 1 - 1 = 0. Singleton keeps its reward: 1."""
    a = ESTIMATORS["rloo"](REWARDS, GROUP)
    torch.testing.assert_close(a, torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3, 0, 0, 1.0]), atol=1e-6, rtol=0)


def test_reinforce_pp_baseline():
    """x = r - group mean = [.5, -.5, -.5, .5, 0, 0, 1]; batch mean 1/7; unbiased variance
    sum((x - 1/7)^2) / 6 = 1.857143 / 6 = 0.309524; A = (x - 1/7) / sqrt(0.309524 + 1e-8):
    first = 0.357143 / 0.556349 = 0.641941."""
    a = ESTIMATORS["reinforce_pp_baseline"](REWARDS, GROUP)
    assert a[0].item() == pytest.approx(0.641941, abs=1e-5)
    assert a.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert a.std(unbiased=True).item() == pytest.approx(1.0, abs=1e-5)


def test_estimators_are_invariant_to_order():
    perm = torch.tensor([6, 2, 4, 0, 5, 1, 3])
    for name, fn in ESTIMATORS.items():
        torch.testing.assert_close(fn(REWARDS, GROUP)[perm], fn(REWARDS[perm], GROUP[perm]), msg=name)


VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[1, 1, 0], [1, 0, 0]])


@pytest.mark.parametrize("mode, expect", [
    ("token-mean", 7 / 3),                # (1 + 2 + 4) / 3 loss tokens
    ("seq-mean-token-sum", 3.5),          # ((1 + 2) + 4) / 2 sequences
    ("seq-mean-token-mean", 2.75),        # ((1 + 2) / 2 + 4 / 1) / 2
    ("seq-mean-token-sum-norm", 7 / 6),   # (3 + 4) / (2 sequences * L=3)
])
def test_aggregation_modes(mode, expect):
    assert aggregate(VALUES, MASK, mode).item() == pytest.approx(expect)


@pytest.mark.parametrize("mode", sorted(AGGREGATIONS))
def test_aggregation_invariant_to_micro_batches_and_ranks(mode):
    """Shares of micro-batches computed with the global counts add up to the unsplit value."""
    g = torch.Generator().manual_seed(0)
    values = torch.randn(8, 5, generator=g)
    mask = (torch.rand(8, 5, generator=g) > 0.3).int()
    mask[:, 0] = 1
    whole = aggregate(values, mask, mode)
    counts = {"n_tokens": float(mask.sum()), "n_seqs": 8.0, "norm_len": 5.0}
    for split in ([8], [4, 4], [2, 2, 2, 2], [1, 3, 4]):  # 1 rank x 1 micro, 2 ranks, 4 micro, uneven
        parts = torch.split(torch.arange(8), split)
        total = sum(aggregate(values[i], mask[i], mode, **counts) for i in parts)
        assert total.item() == pytest.approx(whole.item(), rel=1e-6)


def test_policy_loss_clip_and_clip_higher():
    """ratios per row [1.5, 0.5, 1.0]; row 0 has A = +1, row 1 A = -1; clip 0.2:
    row 0: max(-1.5, -1.2) = -1.2 (clipped), max(-0.5, -0.8) = -0.5, -1.0
    row 1: max(1.5, 1.2) = 1.5, max(0.5, 0.8) = 0.8 (clipped), 1.0
    token-mean = (-1.2 - 0.5 - 1 + 1.5 + 0.8 + 1) / 6 = 0.1; clip_frac = 2/6.
    clip-higher 0.28: row 0 first token -1.28 -> (0.6 - 0.08) / 6 = 0.086667."""
    old = torch.zeros(2, 3)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.0], [1.5, 0.5, 1.0]]))
    adv = torch.tensor([1.0, -1.0])
    mask = torch.ones(2, 3)
    loss, m = policy_loss(logp, old, adv, mask, 0.2, 0.2, "token-mean")
    assert loss.item() == pytest.approx(0.1, abs=1e-6)
    assert m["clip_frac"].item() == pytest.approx(2 / 6)
    assert m["approx_kl"].item() == pytest.approx(-(2 * math.log(1.5) + 2 * math.log(0.5)) / 6)
    loss_hi, _ = policy_loss(logp, old, adv, mask, 0.2, 0.28, "token-mean")
    assert loss_hi.item() == pytest.approx(0.52 / 6, abs=1e-6)


def test_policy_loss_gradient_at_ratio_one_is_reinforce():
    """At ratio 1 (one update per rollout step) the clip is inactive: d loss / d logp = -A / n_tokens."""
    logp = torch.zeros(2, 2, requires_grad=True)
    loss, _ = policy_loss(logp, torch.zeros(2, 2), torch.tensor([2.0, -1.0]), torch.ones(2, 2), 0.2, 0.2, "token-mean")
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.5, -0.5], [0.25, 0.25]]))


def test_tis_weights_are_capped():
    w = tis_weights(torch.log(torch.tensor([[1.0, 4.0]])), torch.zeros(1, 2), cap=2.0)
    torch.testing.assert_close(w, torch.tensor([[1.0, 2.0]]))


def test_kl_estimators():
    """pi = 0.5, pi_ref = 0.25 for the sampled token: k1 = log 2 = 0.693147; k2 = (log 2)^2 / 2 = 0.240227;
    k3 with d = log(0.25 / 0.5) = -log 2: exp(d) - d - 1 = 0.5 + 0.693147 - 1 = 0.193147."""
    logp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    assert kl(logp, ref, "k1").item() == pytest.approx(0.693147, abs=1e-6)
    assert kl(logp, ref, "k2").item() == pytest.approx(0.240227, abs=1e-6)
    assert kl(logp, ref, "k3").item() == pytest.approx(0.193147, abs=1e-6)
    assert kl(torch.zeros(1), torch.tensor([20.0]), "k3").item() == 10.0  # clamped
    assert kl(logp, logp, "k3").item() == 0.0


def test_entropy_values_and_stability():
    """uniform over 4 -> log 4 = 1.386294; two tied huge logits -> log 2 (no overflow); one-hot-ish -> ~0."""
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [1000.0, 1000.0, -1000.0, -1000.0], [100.0, 0.0, 0.0, 0.0]]])
    h = entropy(logits)
    torch.testing.assert_close(h, torch.tensor([[math.log(4), math.log(2), 0.0]]), atol=1e-5, rtol=0)
    z = torch.randn(3, 5, 11, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(entropy(z), torch.distributions.Categorical(logits=z).entropy(), atol=1e-5, rtol=0)


def test_token_logprobs_use_temperature():
    z = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(2))
    tok = torch.randint(0, 7, (2, 3), generator=torch.Generator().manual_seed(3))
    expect = torch.log_softmax(z / 0.6, -1).gather(-1, tok.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(token_logprobs(z, tok, 0.6), expect)


@pytest.mark.parametrize("kl_in_loss", [True, False])
@pytest.mark.parametrize("tis_cap", [None, 1.5])
def test_grpo_objective_is_its_formula(kl_in_loss, tis_cap):
    """OBJECTIVES['grpo'] = policy_loss (TIS-weighted when tis_cap) + kl_coef * agg(KL) (only when the KL
    is in the loss) - entropy_coef * agg(H), each aggregated with the step's global counts; its metrics
    carry the three terms."""
    from rlvr.rl.objectives import OBJECTIVES, ObjectiveConfig, ObjectiveInputs

    g = torch.Generator().manual_seed(3)
    B, T = 4, 7
    logp = -torch.rand(B, T, generator=g)
    old, ref, rollout = (logp + 0.1 * torch.randn(B, T, generator=g) for _ in range(3))
    mask = (torch.rand(B, T, generator=g) > 0.2).float()
    ent, adv = torch.rand(B, T, generator=g), torch.randn(B, generator=g)
    c = ObjectiveConfig(clip_low=0.2, clip_high=0.28, loss_agg="token-mean", entropy_coef=0.01, kl_coef=0.05,
                        kl_kind="k3", kl_in_loss=kl_in_loss, tis_cap=tis_cap)
    x = ObjectiveInputs(logp=logp, old_logp=old, advantages=adv, mask=mask, entropy=ent, ref_logp=ref,
                        rollout_logp=rollout, n_tokens=40.0, n_seqs=4.0, norm_len=7.0)
    loss, m = OBJECTIVES["grpo"](x, c)
    counts = {"n_tokens": 40.0, "n_seqs": 4.0, "norm_len": 7.0}
    w = tis_weights(old, rollout, tis_cap) if tis_cap is not None else None
    pg, _ = policy_loss(logp, old, adv, mask, 0.2, 0.28, "token-mean", weights=w, **counts)
    h = aggregate(ent, mask, "token-mean", **counts)
    k = aggregate(kl(logp, ref, "k3"), mask, "token-mean", **counts)
    expected = pg - 0.01 * h + (0.05 * k if kl_in_loss else 0.0)
    assert torch.allclose(loss, expected) and torch.allclose(m["kl"], k) and torch.allclose(m["entropy"], h)
    assert torch.allclose(m["pg_loss"], pg)
