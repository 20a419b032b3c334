"""GAE, the clipped value loss, and the GSPO and CISPO objectives: hand-derived values (arithmetic in each
docstring), masking and micro-batch invariances, equality with verl 0.9.1's core_algos where verl is
installed (bench/verl_check.py), and a short RL run with `objective: gspo` / `objective: cispo`."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch
from conftest import PYTHON, REPO, TINY_SMALL, run_cmd, tail

from rlvr.rl.advantages import gae, masked_whiten
from rlvr.rl.losses import (
    AGGREGATIONS,
    aggregate,
    cispo_policy_loss,
    gspo_policy_loss,
    kl,
    policy_loss,
    tis_weights,
    value_loss,
)
from rlvr.rl.objectives import OBJECTIVES, ObjectiveConfig, ObjectiveInputs


# ------------------------------------------------------------------------------------ GAE
def test_gae_by_hand():
    """r = [0, 0, 1] (outcome reward on the last token), V = [0.5, 0.6, 0.7], gamma 0.9, lam 0.8:
    t=2: delta = 1 + 0.9 * 0 - 0.7 = 0.3;             A = 0.3
    t=1: delta = 0 + 0.9 * 0.7 - 0.6 = 0.03;          A = 0.03 + 0.72 * 0.3 = 0.246
    t=0: delta = 0 + 0.9 * 0.6 - 0.5 = 0.04;          A = 0.04 + 0.72 * 0.246 = 0.21712
    returns = A + V = [0.71712, 0.846, 1.0]."""
    r, v, m = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]), torch.ones(1, 3)
    a, ret = gae(r, v, m, gamma=0.9, lam=0.8, whiten=False)
    torch.testing.assert_close(a, torch.tensor([[0.21712, 0.246, 0.3]]))
    torch.testing.assert_close(ret, torch.tensor([[0.71712, 0.846, 1.0]]))


def test_gae_with_gamma_lam_one_is_return_minus_value():
    """gamma = lam = 1: A_t = (sum of rewards from t) - V_t = 1 - V_t, and every return is the outcome, 1."""
    r, v, m = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]), torch.ones(1, 3)
    a, ret = gae(r, v, m, gamma=1.0, lam=1.0, whiten=False)
    torch.testing.assert_close(a, torch.tensor([[0.5, 0.4, 0.3]]))
    torch.testing.assert_close(ret, torch.ones(1, 3))


def test_gae_whitens_over_loss_tokens_as_verl():
    """Whitened A = (A - mean) / sqrt(unbiased var + 1e-8) over the loss tokens, returns unchanged.
    From the hand case: mean 0.254373, deviations [-0.037253, -0.008373, 0.045627], unbiased variance
    0.0035397 / 2 = 0.00176987, std 0.0420698 -> [-0.88551, -0.19903, 1.08455]."""
    r, v, m = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]), torch.ones(1, 3)
    a, ret = gae(r, v, m, gamma=0.9, lam=0.8)
    torch.testing.assert_close(a, torch.tensor([[-0.88551, -0.19903, 1.08455]]), atol=2e-5, rtol=0)
    torch.testing.assert_close(ret, torch.tensor([[0.71712, 0.846, 1.0]]))
    # one loss token has no variance: it whitens to 0 (verl raises); others scale by 1 / sqrt(1e-8)
    lone = masked_whiten(torch.tensor([[3.0, 7.0]]), torch.tensor([[1.0, 0.0]]))
    assert lone[0, 0].item() == 0 and lone[0, 1].item() == pytest.approx(4e4)


def test_gae_ignores_what_right_padding_holds():
    """A row of 2 tokens padded to 5 gives the advantages and returns of the unpadded row, whatever the
    padding's rewards and values (even NaN), and 0 at padded positions; whitening's statistics count only
    loss tokens."""
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(2, 5, generator=g), torch.randn(2, 5, generator=g)
    m = torch.tensor([[1.0, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    junk_r, junk_v = r.clone(), v.clone()
    junk_r[1, 2:], junk_v[1, 2:] = float("nan"), 1e6
    for whiten in (False, True):
        a, ret = gae(r, v, m, 0.99, 0.95, whiten=whiten)
        a2, ret2 = gae(junk_r, junk_v, m, 0.99, 0.95, whiten=whiten)
        torch.testing.assert_close(a, a2)
        torch.testing.assert_close(ret, ret2)
        assert (a[1, 2:] == 0).all() and (ret[1, 2:] == 0).all()
    short_a, short_ret = gae(r[1:, :2], v[1:, :2], m[1:, :2], 0.99, 0.95, whiten=False)
    a, ret = gae(r, v, m, 0.99, 0.95, whiten=False)
    torch.testing.assert_close(a[1:, :2], short_a)
    torch.testing.assert_close(ret[1:, :2], short_ret)


def test_gae_skips_an_interior_masked_token_as_verl():
    """A masked token inside a response (an observation, in verl's multi-turn use) is skipped: its reward
    and value are dropped and V, A pass through it, so the row equals the row without that token."""
    r, v = torch.tensor([[0.2, 5.0, 1.0]]), torch.tensor([[0.5, -3.0, 0.7]])
    a, ret = gae(r, v, torch.tensor([[1.0, 0.0, 1.0]]), 0.9, 0.8, whiten=False)
    a2, ret2 = gae(r[:, [0, 2]], v[:, [0, 2]], torch.ones(1, 2), 0.9, 0.8, whiten=False)
    torch.testing.assert_close(a[:, [0, 2]], a2)
    torch.testing.assert_close(ret[:, [0, 2]], ret2)
    assert a[0, 1] == 0 and ret[0, 1] == 0


# ------------------------------------------------------------------------------------ value loss
@pytest.mark.parametrize("v, expect_loss, expect_frac, expect_grad", [
    # old 1.0, return 3.0, clip 0.2.
    # v 2.0: V_clip = 1.2; (2 - 3)^2 = 1 < (1.2 - 3)^2 = 3.24 -> 0.5 * 3.24 = 1.62, clipped, no gradient
    (2.0, 1.62, 1.0, 0.0),
    # v 1.1 inside the clip range: V_clip = v; 0.5 * 1.9^2 = 1.805, gradient (v - R) = -1.9
    (1.1, 1.805, 0.0, -1.9),
    # v 0.0 moved away from the return: V_clip = 0.8; 3^2 = 9 > 2.2^2 = 4.84 -> 4.5, unclipped, grad -3
    (0.0, 4.5, 0.0, -3.0),
])
def test_value_loss_by_hand(v, expect_loss, expect_frac, expect_grad):
    values = torch.tensor([[v]], requires_grad=True)
    loss, frac = value_loss(values, torch.tensor([[1.0]]), torch.tensor([[3.0]]), torch.ones(1, 1), 0.2, "token-mean")
    loss.backward()
    assert loss.item() == pytest.approx(expect_loss)
    assert frac.item() == expect_frac
    assert values.grad.item() == pytest.approx(expect_grad)


def test_value_loss_aggregates_with_the_mode():
    """Two rows: [e=1 (unclipped), e=3.24 (clipped)] and [e=4, padding]; 0.5 * aggregate:
    token-mean 0.5 * 8.24 / 3, seq-mean-token-sum 0.5 * (4.24 + 4) / 2, seq-mean-token-mean
    0.5 * (2.12 + 4) / 2; the clip fraction counts loss tokens: 1 of 3."""
    values = torch.tensor([[2.0, 2.0], [1.0, 9.0]])
    old = torch.tensor([[2.0, 1.0], [1.0, 0.0]])
    ret = torch.tensor([[3.0, 3.0], [3.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    for mode, expect in [("token-mean", 0.5 * 8.24 / 3), ("seq-mean-token-sum", 0.5 * 8.24 / 2),
                         ("seq-mean-token-mean", 0.5 * (2.12 + 4) / 2)]:
        loss, frac = value_loss(values, old, ret, mask, 0.2, mode)
        assert loss.item() == pytest.approx(expect), mode
        assert frac.item() == pytest.approx(1 / 3)


@pytest.mark.parametrize("mode", sorted(AGGREGATIONS))
def test_value_loss_is_invariant_to_micro_batches_and_ranks(mode):
    """With the step's global counts, the value losses of any split add up to the unsplit batch's, and so
    do their gradients."""
    g = torch.Generator().manual_seed(1)
    old, ret = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    base = old + 0.3 * torch.randn(8, 6, generator=g)
    mask = (torch.arange(6) < torch.randint(1, 7, (8, 1), generator=g)).float()
    counts = {"n_tokens": float(mask.sum()), "n_seqs": 8.0, "norm_len": 6.0}
    whole_v = base.clone().requires_grad_(True)
    whole, _ = value_loss(whole_v, old, ret, mask, 0.2, mode, **counts)
    whole.backward()
    for split in ([4, 4], [1, 3, 4], [2, 2, 2, 2]):
        v = base.clone().requires_grad_(True)
        total, start = 0.0, 0
        for n in split:
            part, _ = value_loss(v[start:start + n], old[start:start + n], ret[start:start + n],
                                 mask[start:start + n], 0.2, mode, **counts)
            part.backward()
            total, start = total + part, start + n
        torch.testing.assert_close(total, whole)
        torch.testing.assert_close(v.grad, whole_v.grad)


# ------------------------------------------------------------------------------------ GSPO
def test_gspo_clips_the_sequence_ratio():
    """One response of 2 tokens, logp - old = [0.002, 0.004]: log s = 0.003, s = e^0.003 = 1.0030045.
    A = +1, clip_high 4e-4: max(-1.0030045, -1.0004) = -1.0004 on each token -> loss -1.0004 (any mean),
    clipped, no gradient. A = -1: max(1.0030045, 1.0004) = 1.0030045, unclipped, and the gradient is the
    sequence's: d(-A s)/d logp_t = s / |y| = 0.5015 per token (seq-mean-token-mean)."""
    old = torch.log(torch.tensor([[0.5, 0.25]]))
    mask = torch.ones(1, 2)
    s = math.exp(0.003)
    for adv, expect, frac, grad in [(1.0, -1.0004, 1.0, 0.0), (-1.0, s, 0.0, s / 2)]:
        logp = (old + torch.tensor([[0.002, 0.004]])).requires_grad_(True)
        loss, m = gspo_policy_loss(logp, old, torch.tensor([adv]), mask, 3e-4, 4e-4, "seq-mean-token-mean")
        loss.backward()
        assert loss.item() == pytest.approx(expect, abs=1e-6)
        assert m["clip_frac"].item() == frac and m["ratio_max"].item() == pytest.approx(s, abs=1e-6)
        torch.testing.assert_close(logp.grad, torch.full((1, 2), grad))


def test_gspo_inside_its_range_is_the_papers_sequence_objective():
    """With no clipping, seq-mean-token-mean GSPO is -(1/G) sum_i A_i s_i, s_i = exp(mean_t log ratio),
    in value and gradient (GSPO paper eq. 5), whatever the padding."""
    g = torch.Generator().manual_seed(2)
    old = -torch.rand(3, 5, generator=g)
    mask = torch.tensor([[1.0, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    base = old + 1e-5 * torch.randn(3, 5, generator=g)
    adv = torch.tensor([1.0, -0.5, 2.0])
    lp1, lp2 = base.clone().requires_grad_(True), base.clone().requires_grad_(True)
    loss, m = gspo_policy_loss(lp1, old, adv, mask, 3e-4, 4e-4, "seq-mean-token-mean")
    s = torch.exp(((lp2 - old) * mask).sum(-1) / mask.sum(-1))
    paper = -(adv * s).mean()
    loss.backward()
    paper.backward()
    assert m["clip_frac"].item() == 0
    torch.testing.assert_close(loss, paper)
    torch.testing.assert_close(lp1.grad, lp2.grad)


# ------------------------------------------------------------------------------------ CISPO
def test_cispo_clips_the_weight_and_keeps_the_gradient():
    """logp = log 0.5, old = log 0.25: r = 2, capped at 1 + 0.2 = 1.2; A = 1: loss = -1.2 * log 0.5 =
    0.831777, gradient -1.2 (PPO's clip gives this token no gradient). r = 0.1 has no lower bound: w = 0.1,
    gradient -0.1."""
    for p, q, w in [(0.5, 0.25, 1.2), (0.1, 1.0, 0.1)]:
        logp = torch.log(torch.tensor([[p]])).requires_grad_(True)
        old = torch.log(torch.tensor([[q]]))
        loss, m = cispo_policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 1), 0.2, "token-mean")
        loss.backward()
        assert loss.item() == pytest.approx(-w * math.log(p), rel=1e-6)
        assert logp.grad.item() == pytest.approx(-w, rel=1e-6)
        assert m["clip_frac"].item() == (1.0 if p / q > 1.2 else 0.0)
    logp = torch.log(torch.tensor([[0.5]])).requires_grad_(True)
    ppo, _ = policy_loss(logp, torch.log(torch.tensor([[0.25]])), torch.tensor([1.0]), torch.ones(1, 1), 0.2, 0.2, "token-mean")
    ppo.backward()
    assert logp.grad.item() == 0.0


# ------------------------------------------------------------------------------------ the objectives
def _inputs(seed: int = 3, on_policy: bool = False, logp: torch.Tensor | None = None) -> ObjectiveInputs:
    g = torch.Generator().manual_seed(seed)
    B, T = 4, 7
    lp = -torch.rand(B, T, generator=g) if logp is None else logp
    old, ref, rollout = (lp.detach() + 0.1 * torch.randn(B, T, generator=g) for _ in range(3))
    mask = (torch.arange(T) < torch.tensor([[7], [3], [5], [1]])).float()
    return ObjectiveInputs(logp=lp, old_logp=lp.detach() if on_policy else old, advantages=torch.randn(B, generator=g),
                           mask=mask, entropy=torch.rand(B, T, generator=g), ref_logp=ref, rollout_logp=rollout,
                           n_tokens=40.0, n_seqs=4.0, norm_len=7.0)


def _config(**over) -> ObjectiveConfig:
    c = dict(clip_low=0.2, clip_high=0.28, loss_agg="seq-mean-token-mean", entropy_coef=0.01, kl_coef=0.05,
             kl_kind="k3", kl_in_loss=True, tis_cap=1.5, gspo_clip_low=3e-4, gspo_clip_high=4e-4, cispo_clip_high=0.3)
    c.update(over)
    return ObjectiveConfig(**c)


@pytest.mark.parametrize("name", ["gspo", "cispo"])
@pytest.mark.parametrize("kl_in_loss, tis_cap", [(True, 1.5), (False, None)])
def test_gspo_and_cispo_objectives_are_their_formulas(name, kl_in_loss, tis_cap):
    """OBJECTIVES[name] = its policy term (with its own clip range, TIS-weighted when tis_cap)
    + kl_coef * agg(KL) (when in the loss) - entropy_coef * agg(H), as grpo_objective."""
    x, c = _inputs(), _config(kl_in_loss=kl_in_loss, tis_cap=tis_cap)
    loss, m = OBJECTIVES[name](x, c)
    counts = {"n_tokens": 40.0, "n_seqs": 4.0, "norm_len": 7.0}
    w = tis_weights(x.old_logp, x.rollout_logp, tis_cap) if tis_cap else None
    if name == "gspo":
        pg, _ = gspo_policy_loss(x.logp, x.old_logp, x.advantages, x.mask, 3e-4, 4e-4, c.loss_agg, weights=w, **counts)
    else:
        pg, _ = cispo_policy_loss(x.logp, x.old_logp, x.advantages, x.mask, 0.3, c.loss_agg, weights=w, **counts)
    h = aggregate(x.entropy, x.mask, c.loss_agg, **counts)
    k = aggregate(kl(x.logp, x.ref_logp, "k3"), x.mask, c.loss_agg, **counts)
    torch.testing.assert_close(loss, pg - 0.01 * h + (0.05 * k if kl_in_loss else 0.0))
    torch.testing.assert_close(m["pg_loss"], pg)
    torch.testing.assert_close(m["kl"], k)
    assert {"entropy", "clip_frac", "approx_kl", "ratio_max"} <= set(m)


@pytest.mark.parametrize("mode", sorted(AGGREGATIONS))
def test_on_policy_grpo_gspo_and_cispo_share_their_gradient(mode):
    """With old = logp (one update per step) every ratio is 1, no clip binds, and the three policy terms
    have the same gradient, -A per token, aggregated alike (their loss values differ: CISPO's is -A logp)."""
    base = -torch.rand(4, 7, generator=torch.Generator().manual_seed(5))
    grads = []
    for name in ("grpo", "gspo", "cispo"):
        lp = base.clone().requires_grad_(True)
        loss, m = OBJECTIVES[name](_inputs(on_policy=True, logp=lp), _config(loss_agg=mode, kl_coef=0.0, entropy_coef=0.0,
                                                                         tis_cap=None))
        loss.backward()
        assert m["clip_frac"].item() == 0
        grads.append(lp.grad)
    torch.testing.assert_close(grads[1], grads[0])
    torch.testing.assert_close(grads[2], grads[0])


def test_the_stage_passes_each_objectives_clip_range():
    from rlvr.config import RlvrStage
    from rlvr.stages.rlvr import objective_config

    cfg = RlvrStage(name="rl", type="rlvr", data={"toy": {}}, objective="gspo", gspo_clip_low=1e-3,
                    gspo_clip_high=2e-3, cispo_clip_high=4.0)
    c = objective_config(cfg)
    assert (c.gspo_clip_low, c.gspo_clip_high, c.cispo_clip_high, c.clip_low) == (1e-3, 2e-3, 4.0, 0.2)
    assert RlvrStage(name="rl", type="rlvr", data={"toy": {}}).objective == "grpo"


# ------------------------------------------------------------------------------------ verl
def test_equal_to_verl_core_algos():
    """bench/verl_check.py's comparison in float64 (skipped where verl is not installed: it is not a
    dependency; bench/README.md has the side environment)."""
    pytest.importorskip("verl.trainer.ppo.core_algos")
    spec = importlib.util.spec_from_file_location("verl_check", REPO / "bench" / "verl_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    diffs = check.run(torch.float64)
    assert len(diffs) == 12 and all(a <= 1e-6 for a, _ in diffs.values()), diffs


# ------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
@pytest.mark.parametrize("objective", ["gspo", "cispo"])
def test_a_short_rl_run_trains_with_the_objective(sft_model, tmp_path, objective):
    """2 steps of 2 updates each (mini_batch_prompts 2 of 4 prompts, so the second update is off-policy and
    the ratios move; T 0.7, at which the SFT model answers within the length about half the time): the run
    finishes, losses are finite, and the weights change."""
    from safetensors.torch import load_file

    stage = (f"{{name: rl, type: rlvr, init: {sft_model}, data: {{toy: {{n: 200, levels: [1]}}}}, objective: {objective}, "
             "prompts_per_step: 4, rollouts_per_prompt: 4, mini_batch_prompts: 2, temperature: 0.7, "
             "max_response_tokens: 96, max_steps: 2, loss_agg: seq-mean-token-mean, "
             "optim: {lr: 1.0e-3, schedule: constant}, generation: {backend: hf, max_model_len: 256}}")
    run_dir = tmp_path / objective
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
                    "--set", f"model.tiny={TINY_SMALL}", "--set", f"stages=[{stage}]",
                    "--set", "backend={zero_stage: 2, micro_batch_size: 8}"], timeout=600)
    assert proc.returncode == 0, tail(proc)
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2
    for m in metrics:
        assert all(math.isfinite(m[k]) for k in ("pg_loss", "grad_norm", "clip_frac", "approx_kl")), m
    assert sum(m["grad_norm"] for m in metrics) > 0, [(m["reward/mean"], m["grad_norm"]) for m in metrics]
    before = load_file(str(sft_model / "model.safetensors"))
    after = load_file(str(run_dir / "stages" / "rl" / "final" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
