"""Advantage estimators for outcome rewards (one scalar reward per response), and GAE.

Every outcome estimator has the signature `(rewards: Tensor[B], group: Tensor[B] of int ids) -> Tensor[B]`,
where responses with the same group id were sampled from the same prompt. They are pure functions
registered in one explicit dict, ESTIMATORS. The RL stage gathers rewards and group ids from every
rank first, so group (and batch) statistics are always over the whole group wherever its members
were generated.

GAE (`gae`, below) is not in ESTIMATORS: it needs a value model's per-token values and token-level
rewards, not (rewards, group), so it is a separate public function with its own signature.

Conventions follow verl (`verl/trainer/ppo/core_algos.py`), which 1-shot RLVR used:
a group of one response gets mean 0 and std 1 (its advantage is its reward), and std is unbiased.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

EPS = 1e-6


def _group_index(group: Tensor) -> tuple[Tensor, Tensor]:
    """(inverse [B], counts [G]) mapping each element to its group's position."""
    _, inverse, counts = torch.unique(group, return_inverse=True, return_counts=True)
    return inverse, counts


def group_mean_std(rewards: Tensor, group: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-element group mean, unbiased group std and group size, each [B]. Singleton groups get
    mean 0, std 1 (verl's convention)."""
    r = rewards.double()
    inverse, counts = _group_index(group)
    n = counts.double()
    sums = torch.zeros_like(n).index_add_(0, inverse, r)
    mean = sums / n
    sq = torch.zeros_like(n).index_add_(0, inverse, (r - mean[inverse]) ** 2)
    std = torch.sqrt(sq / (n - 1).clamp(min=1))
    single = counts == 1
    mean = torch.where(single, torch.zeros_like(mean), mean)
    std = torch.where(single, torch.ones_like(std), std)
    return mean[inverse], std[inverse], counts[inverse]


def grpo(rewards: Tensor, group: Tensor) -> Tensor:
    """GRPO (Shao et al. 2024, DeepSeekMath eq. 3): A_i = (r_i - mean_g) / (std_g + 1e-6),
    std unbiased (torch.std), as in verl and 1-shot RLVR. An all-equal group gives 0."""
    mean, std, _ = group_mean_std(rewards, group)
    return ((rewards.double() - mean) / (std + EPS)).to(rewards.dtype)


def dr_grpo(rewards: Tensor, group: Tensor) -> Tensor:
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training"): A_i = r_i - mean_g, no std
    division (which over-weights near-uniform groups). Pair it with loss_agg seq-mean-token-sum-norm."""
    mean, _, _ = group_mean_std(rewards, group)
    return (rewards.double() - mean).to(rewards.dtype)


def rloo(rewards: Tensor, group: Tensor) -> Tensor:
    """RLOO (Ahmadian et al. 2024): A_i = r_i - mean_{j != i} r_j = n/(n-1) * (r_i - mean_g).
    Singleton groups keep their reward (verl)."""
    mean, _, n = group_mean_std(rewards, group)
    n = n.double()
    scale = torch.where(n > 1, n / (n - 1).clamp(min=1), torch.ones_like(n))
    return (scale * (rewards.double() - mean)).to(rewards.dtype)


def reinforce_pp_baseline(rewards: Tensor, group: Tensor) -> Tensor:
    """REINFORCE++-baseline (Hu et al. 2025): subtract the group mean, then whiten over the whole
    batch with the unbiased variance: (x - mean_B) / sqrt(var_B + 1e-8), as verl's masked_whiten.
    verl whitens the reward broadcast over response tokens, which weights each response by its
    length; this sequence-level version equals it when all responses have the same length."""
    mean, _, _ = group_mean_std(rewards, group)
    x = rewards.double() - mean
    if x.numel() < 2:
        return torch.zeros_like(rewards)
    return ((x - x.mean()) * torch.rsqrt(x.var(unbiased=True) + 1e-8)).to(rewards.dtype)


ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "grpo": grpo,
    "dr_grpo": dr_grpo,
    "rloo": rloo,
    "reinforce_pp_baseline": reinforce_pp_baseline,
}


# ------------------------------------------------------------------------------------ GAE (needs a critic)
def masked_whiten(x: Tensor, mask: Tensor) -> Tensor:
    """(x - mean) / sqrt(var + 1e-8), mean and unbiased variance over the positions where mask is 1
    (verl's `masked_whiten`, shift_mean=True). x, mask: [B,T] -> [B,T]; positions outside the mask are
    transformed too (callers zero them). One masked position has no variance: it whitens to 0 (verl
    raises instead)."""
    m = mask.to(x.dtype)
    n = m.sum()
    mean = (x * m).sum() / n.clamp(min=1)
    var = (((x - mean) ** 2) * m).sum() / (n - 1).clamp(min=1)
    return (x - mean) * torch.rsqrt(var + 1e-8)


def whiten(x: Tensor, mask: Tensor, mean: float, var: float) -> Tensor:
    """(x - mean) / sqrt(var + 1e-8) where mask is 1, 0 elsewhere: `masked_whiten` with given statistics, so a
    batch split over ranks is whitened with the whole batch's mean and unbiased variance (gathered by the
    caller), as verl whitens the whole step's batch. x, mask: [B,T] -> [B,T]."""
    return torch.where(mask > 0, (x - mean) * torch.rsqrt(torch.tensor(var + 1e-8, dtype=x.dtype)), torch.zeros_like(x))


@torch.no_grad()
def gae(token_rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float,
        *, whiten: bool = True) -> tuple[Tensor, Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016, "High-Dimensional Continuous Control
    Using Generalized Advantage Estimation", eq. 16), over the response tokens of each row:

        delta_t = r_t + gamma * V_{t+1} - V_t            (V after the last response token = 0)
        A_t     = delta_t + gamma * lam * A_{t+1}         (A after the last response token = 0)
        R_t     = A_t + V_t                               the value model's regression target (returns)
        A       = masked_whiten(A, mask)                  when whiten (verl's default; batch statistics)

    token_rewards, values, mask: [B,T] (mask 1 on response tokens); returns (advantages [B,T],
    returns [B,T]), both 0 where mask is 0. No gradient. As verl's `compute_gae_advantage_return`
    (core_algos.py, 0.9.1), positions where mask is 0 are skipped, not ended at: t+1 above is the next
    position whose mask is 1, so right padding contributes nothing (its values and rewards may be
    anything) and an interior masked token (e.g. an observation) passes V and A through. Returns are
    computed before whitening. verl leaves whiten(0) and V_t at masked positions; rlvr zeroes them.

    Whitening uses the statistics of the tensors passed in: call it on the whole step's batch (as verl
    does), not per micro-batch, when the result must not depend on how the batch is split."""
    m = mask.to(values.dtype)
    B, T = values.shape
    next_value = torch.zeros(B, dtype=values.dtype, device=values.device)  # V_{t+1}, [B]
    next_adv = torch.zeros_like(next_value)  # A_{t+1}, [B]
    adv = torch.zeros_like(values)
    for t in reversed(range(T)):
        delta = token_rewards[:, t] + gamma * next_value - values[:, t]
        a = delta + gamma * lam * next_adv
        # a masked position keeps the carried V_{t+1} and A_{t+1} (verl: skip observation tokens)
        next_value = torch.where(m[:, t] > 0, values[:, t], next_value)
        next_adv = torch.where(m[:, t] > 0, a, next_adv)
        adv[:, t] = next_adv
    returns = torch.where(m > 0, adv + values, torch.zeros_like(adv))  # where, not *: padding may hold NaN
    if whiten:
        adv = masked_whiten(adv, m)
    return torch.where(m > 0, adv, torch.zeros_like(adv)), returns
