"""Direct preference optimisation losses, one pure function per variant in an explicit dict.

Inputs are summed response log-probs per pair, each [B]: the policy's and the frozen reference's, for
the chosen (y_w) and rejected (y_l) responses. With the implicit reward
    r(y) = beta * (log pi(y|x) - log pi_ref(y|x)),   margin h = r(y_w) - r(y_l),
the variants are
    sigmoid (Rafailov et al. 2023):  -log sigmoid(h)
    cdpo    (conservative DPO / label smoothing eps, Mitchell 2023):
                                     -(1 - eps) log sigmoid(h) - eps log sigmoid(-h)
    ipo     (Azar et al. 2023):      (h / beta - 1 / (2 beta))^2,  i.e. (log-ratio margin - 1/(2 beta))^2
Each returns the per-pair loss [B]; the stage averages over the global batch of pairs.

`nll_coef` > 0 adds the chosen response's length-normalised NLL, alpha * (-log pi(y_w|x) / |y_w|)
(Iterative RPO, Pang et al. 2024, built for verifier-judged reasoning pairs): plain DPO lowers the
likelihood of the chosen responses too ("likelihood displacement"), which can make generations worse
even as the preference margin grows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def implicit_rewards(pol_w: Tensor, pol_l: Tensor, ref_w: Tensor, ref_l: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """(r(y_w), r(y_l)), each [B]: beta * (log pi - log pi_ref)."""
    return beta * (pol_w - ref_w), beta * (pol_l - ref_l)


def sigmoid_dpo(pol_w: Tensor, pol_l: Tensor, ref_w: Tensor, ref_l: Tensor, beta: float, eps: float = 0.0) -> Tensor:
    rw, rl = implicit_rewards(pol_w, pol_l, ref_w, ref_l, beta)
    return -F.logsigmoid(rw - rl)


def cdpo(pol_w: Tensor, pol_l: Tensor, ref_w: Tensor, ref_l: Tensor, beta: float, eps: float = 0.0) -> Tensor:
    rw, rl = implicit_rewards(pol_w, pol_l, ref_w, ref_l, beta)
    h = rw - rl
    return -(1 - eps) * F.logsigmoid(h) - eps * F.logsigmoid(-h)


def ipo(pol_w: Tensor, pol_l: Tensor, ref_w: Tensor, ref_l: Tensor, beta: float, eps: float = 0.0) -> Tensor:
    log_ratio_margin = (pol_w - ref_w) - (pol_l - ref_l)
    return (log_ratio_margin - 1 / (2 * beta)) ** 2


DPO_LOSSES: dict[str, Callable[..., Tensor]] = {"sigmoid": sigmoid_dpo, "cdpo": cdpo, "ipo": ipo}


def dpo_loss(kind: str, pol_w: Tensor, pol_l: Tensor, ref_w: Tensor, ref_l: Tensor, beta: float,
             label_smoothing: float = 0.0, *, nll_coef: float = 0.0,
             chosen_tokens: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-pair losses [B] and detached metrics: chosen/rejected implicit rewards, margin, and the
    accuracy of the implicit reward (margin > 0). With nll_coef > 0, `chosen_tokens` [B] (response
    lengths) normalises the added chosen NLL."""
    if kind not in DPO_LOSSES:
        raise ValueError(f"unknown DPO loss {kind!r}; choose one of {sorted(DPO_LOSSES)}")
    losses = DPO_LOSSES[kind](pol_w, pol_l, ref_w, ref_l, beta, label_smoothing)
    if nll_coef:
        if chosen_tokens is None:
            raise ValueError("nll_coef > 0 needs chosen_tokens (the chosen responses' lengths)")
        losses = losses + nll_coef * (-pol_w / chosen_tokens.clamp(min=1))
    with torch.no_grad():
        rw, rl = implicit_rewards(pol_w, pol_l, ref_w, ref_l, beta)
        metrics = {"reward_chosen": rw, "reward_rejected": rl, "margin": rw - rl, "accuracy": (rw > rl).float()}
    return losses, metrics
