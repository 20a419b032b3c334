"""rlvr's GAE, value loss, GSPO and CISPO policy losses against verl 0.9.1's `core_algos`, on random tensors.

    /work/verl-venv/bin/python bench/verl_check.py          # a side environment with verl (bench/README.md)

verl is not a dependency of rlvr: run this with a Python that can import `verl.trainer.ppo.core_algos`
(and torch); rlvr is imported from this checkout. Shapes from [1, 2] to [64, 257], right-padded masks
of ragged lengths (1..T tokens per row), every aggregation mode, with local counts and with a micro-batch's
share of global counts, with and without rollout IS weights. Compared: GAE advantages (verl whitens
them) and returns on loss tokens; value loss and its clip fraction; the GSPO and CISPO losses, their
gradients with respect to the log-probs, and their clip fraction and ppo_kl.

Run twice, in float64 and float32. Printed per quantity: the largest absolute difference in float64 (what
the formulas differ by: verl's 1e-8 in its masked means' denominators) and, in float32, the largest absolute
and relative (|a - b| / max(1, |b|)) difference, for information: the two sum in different orders (verl per
row, then over rows), so a float32 loss of ~30 differs by an ulp, ~4e-6 absolute, and a sum whose terms
cancel by more, relative to the result. Exits 1 when a float64 absolute difference exceeds --tol (1e-6).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rlvr.rl import advantages as rl_adv  # noqa: E402
from rlvr.rl import losses as rl_loss  # noqa: E402

MODES = ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
SHAPES = [(1, 2), (2, 3), (4, 7), (16, 64), (64, 257)]


def ragged_mask(B: int, T: int, g: torch.Generator) -> torch.Tensor:
    """[B,T] right padding: row b keeps its first n_b tokens, n_b uniform in 1..T (>= 2 tokens in all,
    since verl's masked_var raises below that)."""
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    if lengths.sum() < 2:
        lengths[0] = 2
    return (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).float()


def counts(mask: torch.Tensor, share: bool) -> tuple[dict, dict]:
    """(rlvr kwargs, verl kwargs): none (each side's local defaults), or global counts of a step this
    batch is a part of (2.5x the tokens, 3x the sequences, a norm length of 2T)."""
    if not share:
        return {}, {}
    n_tok, n_seq, L = float(mask.sum()) * 2.5, float(mask.shape[0]) * 3, 2 * mask.shape[1]
    return ({"n_tokens": n_tok, "n_seqs": n_seq, "norm_len": L},
            {"dp_size": 1, "batch_num_tokens": n_tok, "global_batch_size": n_seq, "loss_scale_factor": L})


class Diffs(dict):
    """name -> (max absolute, max relative) difference seen."""

    def add(self, name: str, a, b) -> None:
        a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
        d = (a - b).abs()
        old = self.get(name, (0.0, 0.0))
        self[name] = (max(old[0], float(d.max())), max(old[1], float((d / b.abs().clamp(min=1)).max())))


def check_gae(core, g: torch.Generator, dt: torch.dtype, out: Diffs) -> None:
    for B, T in SHAPES:
        for gamma, lam in [(1.0, 1.0), (0.99, 0.95), (0.9, 0.5)]:
            for interior in (False, True):
                mask = ragged_mask(B, T, g)
                if interior and T > 2:  # an observation token inside a response (verl skips it)
                    mask[:, 1] = 0
                    mask[0, :2] = 1  # keep >= 2 tokens
                mask = mask.to(dt)
                rewards, values = torch.randn(B, T, generator=g).to(dt), torch.randn(B, T, generator=g).to(dt)
                a, r = rl_adv.gae(rewards, values, mask, gamma, lam)
                va, vr = core.compute_gae_advantage_return(rewards, values, mask, gamma, lam)
                on = mask > 0
                out.add("gae advantages", a[on], va[on])
                out.add("gae returns", r[on], vr[on])


def check_value_loss(core, g: torch.Generator, dt: torch.dtype, out: Diffs) -> None:
    for B, T in SHAPES:
        for mode in MODES:
            for share in (False, True):
                for clip in (0.2, 0.5):
                    mask = ragged_mask(B, T, g).to(dt)
                    old = torch.randn(B, T, generator=g).to(dt)
                    v = old + 0.4 * torch.randn(B, T, generator=g).to(dt)  # the clip binds on some tokens, not all
                    ret = torch.randn(B, T, generator=g).to(dt)
                    ours_kw, verl_kw = counts(mask, share)
                    loss, frac = rl_loss.value_loss(v, old, ret, mask, clip, mode, **ours_kw)
                    vloss, vfrac = core.compute_value_loss(v, ret, old, mask, clip, loss_agg_mode=mode, **verl_kw)
                    out.add("value_loss", loss, vloss)
                    out.add("value_loss clip_fraction", frac, vfrac)


def actor_config(low: float, high: float, verl_kw: dict):
    from verl.workers.config import FSDPActorConfig

    return FSDPActorConfig(strategy="fsdp", clip_ratio_low=low, clip_ratio_high=high, rollout_n=1,
                           ppo_micro_batch_size_per_gpu=1, global_batch_info=dict(verl_kw))


def check_policy(core, g: torch.Generator, dt: torch.dtype, out: Diffs, name: str) -> None:
    """GSPO or CISPO: loss, d loss / d logp, clip fraction, ppo_kl."""
    low, high = (3e-4, 4e-4) if name == "gspo" else (10.0, 0.2)  # the papers' / verl examples' settings
    for B, T in SHAPES:
        for mode in MODES:
            for share in (False, True):
                for with_is in (False, True):
                    mask = ragged_mask(B, T, g).to(dt)
                    old = (-torch.rand(B, T, generator=g) * 3).to(dt)
                    # per-row drift scales: some sequence ratios inside the tiny GSPO range, some outside
                    scale = torch.tensor([[1e-5, 1e-3, 0.3][b % 3] for b in range(B)]).unsqueeze(1)  # [B,1]
                    base = old + (scale * torch.randn(B, T, generator=g)).to(dt)
                    adv = torch.randn(B, generator=g).to(dt)
                    w = (torch.rand(B, T, generator=g) * 2).to(dt) if with_is else None
                    ours_kw, verl_kw = counts(mask, share)
                    lp1 = base.clone().requires_grad_(True)
                    lp2 = base.clone().requires_grad_(True)
                    if name == "gspo":
                        loss, m = rl_loss.gspo_policy_loss(lp1, old, adv, mask, low, high, mode, weights=w, **ours_kw)
                        vfn = core.compute_policy_loss_gspo
                    else:
                        loss, m = rl_loss.cispo_policy_loss(lp1, old, adv, mask, high, mode, weights=w, **ours_kw)
                        vfn = core.compute_policy_loss_cispo
                    vloss, vm = vfn(old, lp2, adv.unsqueeze(1).expand(B, T), mask, loss_agg_mode=mode,
                                    config=actor_config(low, high, verl_kw), rollout_is_weights=w)
                    loss.backward()
                    vloss.backward()
                    out.add(f"{name} loss", loss.detach(), vloss.detach())
                    out.add(f"{name} grad", lp1.grad, lp2.grad)
                    out.add(f"{name} clip_frac", m["clip_frac"], vm["actor/pg_clipfrac"])
                    out.add(f"{name} ppo_kl", m["approx_kl"], vm["actor/ppo_kl"])


def run(dtype: torch.dtype, seed: int = 0) -> Diffs:
    """(max absolute, max relative) difference per compared quantity, tensors in `dtype`."""
    from verl.trainer.ppo import core_algos as core

    g = torch.Generator().manual_seed(seed)
    out = Diffs()
    check_gae(core, g, dtype, out)
    check_value_loss(core, g, dtype, out)
    check_policy(core, g, dtype, out, "gspo")
    check_policy(core, g, dtype, out, "cispo")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-6)
    args = p.parse_args()
    import verl

    import rlvr

    print(f"rlvr from {Path(rlvr.__file__).parent}, verl {verl.__version__}, torch {torch.__version__}")
    f64, f32 = run(torch.float64, args.seed), run(torch.float32, args.seed)
    width = max(map(len, f64))
    print(f"{'':<{width}}  {'f64 abs':>9}  {'f32 abs':>9}  {'f32 rel':>9}")
    for k in f64:
        print(f"{k:<{width}}  {f64[k][0]:9.2e}  {f32[k][0]:9.2e}  {f32[k][1]:9.2e}")
    bad = [k for k in f64 if not f64[k][0] <= args.tol]
    if bad:
        print(f"float64 above tol {args.tol}: {', '.join(bad)}")
        sys.exit(1)
    print(f"float64: all within {args.tol}")


if __name__ == "__main__":
    main()
