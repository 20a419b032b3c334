"""Policy-gradient loss pieces: aggregation, PPO clipped loss (and GSPO, CISPO), the critic's clipped value
loss, KL estimators, entropy.

Shapes: B responses, T response tokens (right-padded), V vocabulary. `mask[B,T]` is 1 on response
tokens that carry loss. Log-probs are of the sampled tokens under temperature-scaled logits.

Aggregation over a global batch split into micro-batches and ranks: pass the *global* counts
(`n_tokens`, `n_seqs`) of the optimizer step; each micro-batch then returns its share of the global
aggregate, and the shares add up to exactly the value on the unsplit batch (tests check this). The
RL stage computes these counts with an all-reduce before the micro-batches run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


# ------------------------------------------------------------------------------------ aggregation
def _token_mean(values: Tensor, mask: Tensor, n_tokens: float | None, n_seqs: float | None, norm_len: float | None) -> Tensor:
    """sum_{b,t} v*m / (number of loss tokens in the global batch). DAPO's token-level loss; verl default."""
    denom = n_tokens if n_tokens is not None else mask.sum().clamp(min=1)
    return (values * mask).sum() / denom


def _seq_mean_token_sum(values: Tensor, mask: Tensor, n_tokens: float | None, n_seqs: float | None, norm_len: float | None) -> Tensor:
    """mean over sequences of (sum over its tokens)."""
    denom = n_seqs if n_seqs is not None else max(values.shape[0], 1)
    return (values * mask).sum() / denom


def _seq_mean_token_mean(values: Tensor, mask: Tensor, n_tokens: float | None, n_seqs: float | None, norm_len: float | None) -> Tensor:
    """mean over sequences of (mean over its tokens). The original GRPO objective."""
    per_seq = (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    denom = n_seqs if n_seqs is not None else max(values.shape[0], 1)
    return per_seq.sum() / denom


def _seq_mean_token_sum_norm(values: Tensor, mask: Tensor, n_tokens: float | None, n_seqs: float | None, norm_len: float | None) -> Tensor:
    """mean over sequences of (sum over its tokens) / L, with L a constant (the maximum response
    length): Dr. GRPO's length-unbiased normaliser. L defaults to the tensor's T."""
    denom_seq = n_seqs if n_seqs is not None else max(values.shape[0], 1)
    L = norm_len if norm_len is not None else values.shape[-1]
    return (values * mask).sum() / (denom_seq * L)


AGGREGATIONS: dict[str, Callable[..., Tensor]] = {
    "token-mean": _token_mean,
    "seq-mean-token-sum": _seq_mean_token_sum,
    "seq-mean-token-mean": _seq_mean_token_mean,
    "seq-mean-token-sum-norm": _seq_mean_token_sum_norm,
}


def aggregate(values: Tensor, mask: Tensor, mode: str, *, n_tokens: float | None = None,
              n_seqs: float | None = None, norm_len: float | None = None) -> Tensor:
    """values[B,T], mask[B,T] -> scalar, in verl's loss_agg_mode meanings (see AGGREGATIONS).
    n_tokens / n_seqs: global counts of the optimizer step when this is one micro-batch of it."""
    if mode not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {mode!r}; choose one of {sorted(AGGREGATIONS)}")
    return AGGREGATIONS[mode](values, mask.to(values.dtype), n_tokens, n_seqs, norm_len)


# ------------------------------------------------------------------------------------ policy loss
def policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip_low: float,
                clip_high: float, mode: str, *, weights: Tensor | None = None, n_tokens: float | None = None,
                n_seqs: float | None = None, norm_len: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate (Schulman et al. 2017) with asymmetric clip-higher (DAPO, Yu et al. 2025):

        ratio = exp(logp - old_logp)
        L_tok = max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high))
        loss  = aggregate(weights * L_tok, mask, mode)

    logp, old_logp, mask: [B,T]; advantages: [B] (broadcast over tokens) or [B,T]; weights: optional
    [B,T] per-token factors (truncated importance sampling). Returns (loss, metrics) with
    `clip_frac` (fraction of loss tokens where the clipped branch is active) and `approx_kl`
    (token mean of old_logp - logp, verl's ppo_kl)."""
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    ratio = torch.exp(logp - old_logp)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    if weights is not None:
        per_token = per_token * weights
    loss = aggregate(per_token, mask, mode, n_tokens=n_tokens, n_seqs=n_seqs, norm_len=norm_len)
    m = mask.to(logp.dtype)
    count = m.sum().clamp(min=1)
    with torch.no_grad():
        metrics = {
            "clip_frac": ((clipped > unclipped).to(m.dtype) * m).sum() / count,
            "approx_kl": ((old_logp - logp) * m).sum() / count,
            "ratio_max": torch.where(m > 0, ratio, torch.zeros_like(ratio)).max(),
        }
    return loss, metrics


def gspo_policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip_low: float,
                     clip_high: float, mode: str, *, weights: Tensor | None = None, n_tokens: float | None = None,
                     n_seqs: float | None = None, norm_len: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """GSPO (Zheng et al. 2025, "Group Sequence Policy Optimization", eqs. 5-7 and 10): one importance
    ratio per response, the geometric mean of its token ratios, clipped at the sequence level:

        s_i    = exp( sum_t m (logp - old_logp) / |y_i| )                  |y_i| = sum_t m (at least 1)
        s_i,t  = sg[s_i] * exp(logp_t - sg[logp_t])                         value s_i, gradient s_i * grad logp_t
        L_tok  = max(-A s_i,t, -A clip(s_i,t, 1 - clip_low, 1 + clip_high))
        loss   = aggregate(weights * L_tok, mask, mode)

    With mode "seq-mean-token-mean" this is the paper's objective (1/G) sum_i min(s_i A_i, clip(s_i) A_i)
    and its gradient; other modes weight the same per-token terms differently (as verl's
    `compute_policy_loss_gspo`, which also clamps log s_i,t at 10). The paper's clip ranges are ~1e-4
    (3e-4 / 4e-4), since s_i is a per-token geometric mean. Shapes and metrics as `policy_loss`;
    ratio_max is the largest s_i."""
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    m = mask.to(logp.dtype)
    log_ratio = logp - old_logp  # [B,T]
    seq_log_ratio = (log_ratio * m).sum(-1) / m.sum(-1).clamp(min=1)  # [B], log s_i
    log_s = torch.clamp(logp - logp.detach() + seq_log_ratio.detach().unsqueeze(-1), max=10.0)  # [B,T]
    s = torch.exp(log_s)
    unclipped = -adv * s
    clipped = -adv * torch.clamp(s, 1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    if weights is not None:
        per_token = per_token * weights
    loss = aggregate(per_token, mask, mode, n_tokens=n_tokens, n_seqs=n_seqs, norm_len=norm_len)
    count = m.sum().clamp(min=1)
    with torch.no_grad():
        metrics = {
            "clip_frac": ((clipped > unclipped).to(m.dtype) * m).sum() / count,
            "approx_kl": ((old_logp - logp) * m).sum() / count,
            "ratio_max": torch.where(m > 0, s, torch.zeros_like(s)).max(),
        }
    return loss, metrics


def cispo_policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip_high: float,
                      mode: str, *, clip_low: float | None = None, weights: Tensor | None = None,
                      n_tokens: float | None = None, n_seqs: float | None = None,
                      norm_len: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """CISPO (MiniMax 2025, "MiniMax-M1", eqs. 4-5): clip the importance-sampling *weight* and stop its
    gradient, so every token keeps a REINFORCE gradient (PPO's clip zeroes the gradient of clipped tokens):

        r     = exp(clamp(logp - old_logp, -20, 20))
        w     = sg[clip(r, 1 - clip_low, 1 + clip_high)]        no lower bound when clip_low is None (the paper's)
        L_tok = -w * A * logp
        loss  = aggregate(weights * L_tok, mask, mode)

    The paper aggregates with token-mean. As verl's `compute_policy_loss_cispo` (verl's example sets
    clip_ratio_low=10, i.e. no lower bound). The loss value is -w A logp, not near 0 at r = 1 as PPO's
    is; only its gradient compares. Shapes as `policy_loss`; clip_frac is the fraction of loss tokens
    whose weight was clipped (r != w), ratio_max the largest r."""
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    m = mask.to(logp.dtype)
    ratio = torch.exp(torch.clamp(logp - old_logp, min=-20.0, max=20.0))
    low = None if clip_low is None else 1.0 - clip_low
    w = torch.clamp(ratio, min=low, max=1.0 + clip_high).detach()
    per_token = -w * adv * logp
    if weights is not None:
        per_token = per_token * weights
    loss = aggregate(per_token, mask, mode, n_tokens=n_tokens, n_seqs=n_seqs, norm_len=norm_len)
    count = m.sum().clamp(min=1)
    with torch.no_grad():
        metrics = {
            "clip_frac": ((ratio != w).to(m.dtype) * m).sum() / count,
            "approx_kl": ((old_logp - logp) * m).sum() / count,
            "ratio_max": torch.where(m > 0, ratio, torch.zeros_like(ratio)).max(),
        }
    return loss, metrics


# ------------------------------------------------------------------------------------ value loss
def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip: float, mode: str, *,
               n_tokens: float | None = None, n_seqs: float | None = None,
               norm_len: float | None = None) -> tuple[Tensor, Tensor]:
    """Clipped value loss of PPO's critic (the PPO2 baselines / TRL / verl `compute_value_loss` form):

        V_clip = clip(values, old_values - clip, old_values + clip)
        L_tok  = max((values - returns)^2, (V_clip - returns)^2)
        loss   = 0.5 * aggregate(L_tok, mask, mode)

    values: [B,T] the value model's current predictions (with a graph); old_values: [B,T] its
    predictions when the rollouts were scored (no graph); returns: [B,T] the targets (rl.advantages.gae);
    mask [B,T]. n_tokens / n_seqs / norm_len: the step's global counts, as `aggregate`. Returns (loss,
    clip_fraction), the fraction of loss tokens where the clipped error is the larger (no gradient)."""
    v_clip = torch.clamp(values, old_values - clip, old_values + clip)
    unclipped = (values - returns) ** 2
    clipped = (v_clip - returns) ** 2
    loss = 0.5 * aggregate(torch.maximum(unclipped, clipped), mask, mode, n_tokens=n_tokens, n_seqs=n_seqs,
                           norm_len=norm_len)
    m = mask.to(values.dtype)
    with torch.no_grad():
        frac = ((clipped > unclipped).to(m.dtype) * m).sum() / m.sum().clamp(min=1)
    return loss, frac


def tis_weights(old_logp: Tensor, rollout_logp: Tensor, cap: float) -> Tensor:
    """Truncated importance sampling between the trainer's and the rollout engine's log-probs of the
    same tokens (Yao et al. 2025, "Your efficient RL framework secretly brings you off-policy RL
    training"): w = min(exp(old_logp - rollout_logp), cap), no gradient. [B,T] -> [B,T]."""
    return torch.exp(old_logp - rollout_logp).clamp(max=cap).detach()


# ------------------------------------------------------------------------------------ KL
def _k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    return logp - ref_logp


def _k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    return 0.5 * (logp - ref_logp) ** 2


def _k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    # verl's low_var_kl: d = ref - logp; exp(d) - d - 1, clamped to [-10, 10]
    d = ref_logp - logp
    return torch.clamp(torch.exp(d) - d - 1, min=-10.0, max=10.0)


KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"k1": _k1, "k2": _k2, "k3": _k3}


def kl(logp: Tensor, ref_logp: Tensor, kind: str) -> Tensor:
    """Per-token estimate of KL(pi || pi_ref) from sampled-token log-probs (Schulman 2020,
    "Approximating KL divergence"): k1 = logp - ref, k2 = (logp - ref)^2 / 2,
    k3 = exp(ref - logp) - (ref - logp) - 1 clamped to +-10 (verl low_var_kl). [B,T] -> [B,T]."""
    if kind not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {kind!r}; choose one of {sorted(KL_ESTIMATORS)}")
    return KL_ESTIMATORS[kind](logp, ref_logp)


# ------------------------------------------------------------------------------------ entropy
def entropy(logits: Tensor) -> Tensor:
    """Full-vocabulary entropy per position, H = -sum_v p_v log p_v with log p = log_softmax(z), in
    fp32. (Equal to logsumexp(z) - sum p z, but without subtracting two large numbers, which loses
    digits when logits are large.) Pass temperature-scaled logits (z = logits / T) to get the
    sampling distribution's entropy. [B,T,V] -> [B,T]."""
    return entropy_of_logprobs(torch.log_softmax(logits.float(), dim=-1))


def entropy_of_logprobs(logp: Tensor) -> Tensor:
    """H = -sum_v p_v log p_v from full-vocabulary log-probabilities [B,T,V] -> [B,T]: lets the RL step
    take the token log-probs and the entropy from one log_softmax of the scaled logits."""
    return -(logp.exp() * logp).sum(-1)


def token_logprobs(logits: Tensor, tokens: Tensor, temperature: float = 1.0) -> Tensor:
    """log softmax(logits / T) of the given tokens, fp32. logits [B,T,V], tokens [B,T] -> [B,T]."""
    z = logits.float() / temperature
    return torch.gather(torch.log_softmax(z, dim=-1), -1, tokens.unsqueeze(-1)).squeeze(-1)
