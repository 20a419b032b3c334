"""Outcome rewards from a rollout's judgement, one function per `reward.kind`, in an explicit registry
the RL stage looks up (`REWARDS[cfg.reward.kind]`), as rl/advantages.py's `ESTIMATORS`.

Each returns whether the rollout earns `reward.correct` (else `reward.incorrect`). The kinds besides
`correctness` are 1-shot RLVR's controls (Wang et al. 2025, arXiv 2504.20571):

    correctness      the verifier's verdict against the data's answer (the main runs)
    format           an answer can be extracted, right or wrong, and the response was not cut off
                     (P1 §3.4 / App. C.2.3, the "format reward" baseline of Tables 4 and A-2)
    random           a Bernoulli(p) draw, whatever the response (a reward that carries no signal)
    incorrect_label  the verifier's verdict against `reward.label` instead of the data's answer
                     (P1 Table 5 rows 11-13: labels 12.7, 4 and 9292725 for pi_1, whose label is 12.8)

The random draw is a pure function of (seed, step, round, rank, rollout): reruns and resumed runs draw
the same rewards, and no RNG state is shared with sampling or training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Judged:
    """What a reward may read about one rollout."""

    correct: bool  # the verifier's verdict against the gold it was given (reward.label for incorrect_label)
    answered: bool  # a final answer could be extracted
    truncated: bool  # cut at max_response_tokens
    u: float  # a uniform draw in [0, 1) (reward_draw)


def correctness(j: Judged, p: float) -> bool:
    return j.correct


def format_reward(j: Judged, p: float) -> bool:
    return j.answered and not j.truncated


def random_reward(j: Judged, p: float) -> bool:
    return j.u < p


def incorrect_label(j: Judged, p: float) -> bool:
    return j.correct  # judged against reward.label by the caller


REWARDS: dict[str, Callable[[Judged, float], bool]] = {
    "correctness": correctness,
    "format": format_reward,
    "random": random_reward,
    "incorrect_label": incorrect_label,
}


def reward_draw(seed: int, step: int, round_: int, rank: int, index: int) -> float:
    """A uniform number in [0, 1) for rollout `index` of `rank` in generation round `round_` of `step`."""
    digest = hashlib.blake2b(f"reward|{seed}|{step}|{round_}|{rank}|{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64
