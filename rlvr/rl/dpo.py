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
             label_smoothing: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-pair losses [B] and detached metrics: chosen/rejected implicit rewards, margin, and the
    accuracy of the implicit reward (margin > 0)."""
    if kind not in DPO_LOSSES:
        raise ValueError(f"unknown DPO loss {kind!r}; choose one of {sorted(DPO_LOSSES)}")
    losses = DPO_LOSSES[kind](pol_w, pol_l, ref_w, ref_l, beta, label_smoothing)
    with torch.no_grad():
        rw, rl = implicit_rewards(pol_w, pol_l, ref_w, ref_l, beta)
        metrics = {"reward_chosen": rw, "reward_rejected": rl, "margin": rw - rl, "accuracy": (rw > rl).float()}
    return losses, metrics
