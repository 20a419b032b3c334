"""DPO variants against hand-derived values (arithmetic in the docstrings)."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.rl.dpo import DPO_LOSSES, dpo_loss

# one pair: policy log-probs chosen -10, rejected -12; reference -11 and -11; beta 0.1
PW, PL, RW, RL = (torch.tensor([x]) for x in (-10.0, -12.0, -11.0, -11.0))


def test_sigmoid_dpo():
    """r_w = 0.1 * (-10 + 11) = 0.1; r_l = 0.1 * (-12 + 11) = -0.1; margin 0.2;
    loss = -log sigmoid(0.2) = log(1 + e^-0.2) = 0.598139."""
    loss, m = dpo_loss("sigmoid", PW, PL, RW, RL, beta=0.1)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-0.2)), abs=1e-6)
    assert loss.item() == pytest.approx(0.598139, abs=1e-6)
    assert m["reward_chosen"].item() == pytest.approx(0.1) and m["reward_rejected"].item() == pytest.approx(-0.1)
    assert m["margin"].item() == pytest.approx(0.2) and m["accuracy"].item() == 1.0


def test_cdpo_label_smoothing():
    """eps 0.1: 0.9 * 0.598139 + 0.1 * (-log sigmoid(-0.2) = log(1 + e^0.2) = 0.798139) = 0.618139."""
    loss, _ = dpo_loss("cdpo", PW, PL, RW, RL, beta=0.1, label_smoothing=0.1)
    assert loss.item() == pytest.approx(0.9 * 0.598139 + 0.1 * 0.798139, abs=1e-5)
    same, _ = dpo_loss("cdpo", PW, PL, RW, RL, beta=0.1, label_smoothing=0.0)
    assert same.item() == pytest.approx(dpo_loss("sigmoid", PW, PL, RW, RL, beta=0.1)[0].item())


def test_ipo():
    """log-ratio margin (-10 + 11) - (-12 + 11) = 2; 1 / (2 beta) = 5; loss = (2 - 5)^2 = 9."""
    loss, _ = dpo_loss("ipo", PW, PL, RW, RL, beta=0.1)
    assert loss.item() == pytest.approx(9.0)


def test_gradient_pushes_chosen_up_and_rejected_down():
    for kind in DPO_LOSSES:
        pw, pl = PW.clone().requires_grad_(), PL.clone().requires_grad_()
        loss, _ = dpo_loss(kind, pw, pl, RW, RL, beta=0.1, label_smoothing=0.1)
        loss.sum().backward()
        assert pw.grad.item() < 0 < pl.grad.item(), kind  # descending the loss raises chosen, lowers rejected


def test_at_reference_sigmoid_loss_is_log2():
    loss, m = dpo_loss("sigmoid", RW, RL, RW, RL, beta=0.5)
    assert loss.item() == pytest.approx(math.log(2)) and m["accuracy"].item() == 0.0


def test_rpo_adds_the_chosen_per_token_nll():
    """nll_coef 0.5, chosen log-prob -10 over 4 tokens: 0.598139 + 0.5 * 10 / 4 = 1.848139."""
    loss, _ = dpo_loss("sigmoid", PW, PL, RW, RL, beta=0.1, nll_coef=0.5, chosen_tokens=torch.tensor([4.0]))
    assert loss.item() == pytest.approx(0.598139 + 1.25, abs=1e-5)
    with pytest.raises(ValueError, match="chosen_tokens"):
        dpo_loss("sigmoid", PW, PL, RW, RL, beta=0.1, nll_coef=0.5)
