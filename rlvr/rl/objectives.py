"""Whole RL objectives: one micro-batch's inputs in, (loss, metrics) out, in an explicit registry the RL
stage looks up (`OBJECTIVES[cfg.objective]`), as rl/dpo.py's `DPO_LOSSES` is for DPO.

Shapes: B responses, T response tokens (right-padded). Every term is aggregated with the mode `loss_agg`
and the *global* counts of the optimizer step (`n_tokens`, `n_seqs`, `norm_len`), so a micro-batch
returns its share of the step's loss and the shares add up to the unsplit batch's (rl/losses.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rlvr.rl.losses import aggregate, cispo_policy_loss, gspo_policy_loss, kl, policy_loss, tis_weights


@dataclass
class ObjectiveInputs:
    """One micro-batch of the RL update."""

    logp: Tensor  # [B,T] trainer log-probs of the sampled tokens (with a graph)
    old_logp: Tensor  # [B,T] the behaviour policy's (no graph): the trainer's before the update
    advantages: Tensor  # [B]
    mask: Tensor  # [B,T] 1 on tokens that carry loss
    entropy: Tensor  # [B,T] entropy of the scaled distribution (a graph only when it is trained on)
    ref_logp: Tensor | None  # [B,T] the reference model's, when the KL term is on
    rollout_logp: Tensor | None  # [B,T] the engine's, for truncated importance sampling
    n_tokens: float  # loss tokens in the whole optimizer step (all micro-batches, all ranks)
    n_seqs: float  # loss sequences in the whole step
    norm_len: float  # Dr. GRPO's constant length (max_response_tokens)


@dataclass(frozen=True)
class ObjectiveConfig:
    """The hyperparameters an objective reads (from the RL stage's config)."""

    clip_low: float  # grpo's PPO clip
    clip_high: float
    loss_agg: str
    entropy_coef: float
    kl_coef: float
    kl_kind: str
    kl_in_loss: bool  # kl.placement == "loss"; with "reward" the KL is only measured here
    tis_cap: float | None
    # defaults as the RL stage's (rlvr/config.py: gspo_clip_low, gspo_clip_high, cispo_clip_high)
    gspo_clip_low: float = 3e-4
    gspo_clip_high: float = 4e-4
    cispo_clip_high: float = 0.2
    pg_coef: float = 1.0  # the policy term's weight; 0: entropy (and KL) alone


def _counts(x: ObjectiveInputs) -> dict[str, float]:
    return {"n_tokens": x.n_tokens, "n_seqs": x.n_seqs, "norm_len": x.norm_len}


def _tis(x: ObjectiveInputs, c: ObjectiveConfig) -> Tensor | None:
    """Truncated-IS weights [B,T] when tis_cap is set, else None."""
    return tis_weights(x.old_logp, x.rollout_logp, c.tis_cap) if c.tis_cap is not None else None


def _with_kl_and_entropy(pg: Tensor, pg_metrics: dict[str, Tensor], x: ObjectiveInputs,
                         c: ObjectiveConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """pg_coef * pg + kl_coef * agg(KL) (when kl_coef > 0 and kl_in_loss) - entropy_coef * agg(H): the
    terms every objective adds to its policy term, aggregated like it. Returns (loss, metrics; pg_loss is
    the policy term before pg_coef)."""
    counts = _counts(x)
    loss = pg if c.pg_coef == 1 else c.pg_coef * pg
    h = aggregate(x.entropy, x.mask, c.loss_agg, **counts)
    if c.entropy_coef:
        loss = loss - c.entropy_coef * h
    k = torch.zeros((), device=x.logp.device)
    if c.kl_coef > 0:
        k = aggregate(kl(x.logp, x.ref_logp, c.kl_kind), x.mask, c.loss_agg, **counts)
        if c.kl_in_loss:
            loss = loss + c.kl_coef * k
    return loss, {"pg_loss": pg, "entropy": h, "kl": k, **pg_metrics}


def grpo_objective(x: ObjectiveInputs, c: ObjectiveConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """The GRPO family's loss (GRPO, DAPO, Dr. GRPO, 1-shot RLVR; the advantage estimator is chosen
    before, rl/advantages.py):

        w    = min(exp(old_logp - rollout_logp), tis_cap)                  truncated IS (when tis_cap)
        loss = agg(w * max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high)))  PPO clip, r = exp(logp - old_logp)
               + kl_coef * agg(KL(logp, ref_logp))                          when kl_coef > 0 and kl_in_loss
               - entropy_coef * agg(H)                                      entropy_coef > 0 raises entropy

    Returns (loss, metrics): pg_loss, entropy and kl (aggregated; kl 0 when off), clip_frac and approx_kl
    (token means over the micro-batch), ratio_max."""
    pg, m = policy_loss(x.logp, x.old_logp, x.advantages, x.mask, c.clip_low, c.clip_high, c.loss_agg,
                        weights=_tis(x, c), **_counts(x))
    return _with_kl_and_entropy(pg, m, x, c)


def gspo_objective(x: ObjectiveInputs, c: ObjectiveConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """GSPO (Zheng et al. 2025): grpo_objective with the token ratio r replaced by the response's
    sequence ratio s_i = exp(mean_t (logp - old_logp)), clipped at [1 - gspo_clip_low, 1 + gspo_clip_high]
    (rl.losses.gspo_policy_loss), truncated IS, KL and entropy as grpo_objective. The paper aggregates
    per sequence: loss_agg seq-mean-token-mean. Same metrics (ratio_max: the largest s_i)."""
    pg, m = gspo_policy_loss(x.logp, x.old_logp, x.advantages, x.mask, c.gspo_clip_low, c.gspo_clip_high,
                             c.loss_agg, weights=_tis(x, c), **_counts(x))
    return _with_kl_and_entropy(pg, m, x, c)


def cispo_objective(x: ObjectiveInputs, c: ObjectiveConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """CISPO (MiniMax-M1, 2025): -sg[min(r, 1 + cispo_clip_high)] * A * logp per token, no lower bound
    (rl.losses.cispo_policy_loss), truncated IS, KL and entropy as grpo_objective. The paper aggregates
    with token-mean. Same metrics (clip_frac: tokens whose IS weight was capped)."""
    pg, m = cispo_policy_loss(x.logp, x.old_logp, x.advantages, x.mask, c.cispo_clip_high, c.loss_agg,
                              weights=_tis(x, c), **_counts(x))
    return _with_kl_and_entropy(pg, m, x, c)


OBJECTIVES: dict[str, Callable[[ObjectiveInputs, ObjectiveConfig], tuple[Tensor, dict[str, Tensor]]]] = {
    "grpo": grpo_objective,
    "gspo": gspo_objective,
    "cispo": cispo_objective,
}
