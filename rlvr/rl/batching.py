"""Token-budget micro-batches (verl's dynamic batch size): instead of a fixed number of sequences per
forward/backward, length-sorted sequences are packed into a micro-batch until its cost — the token
positions its forward processes, padding included — would exceed a budget. Short sequences then share a
micro-batch and long ones get few, so memory per micro-batch stays near the budget whatever the lengths.

The split never changes the update: every loss is normalised by the whole step's global counts, so the
micro-batches' gradients add up to the same total however the step is cut (tests/test_invariance.py).
The number of micro-batches varies by step and rank; callers take the maximum over ranks and pad with
empty micro-batches, since every rank must run the same number of forwards and backwards (ZeRO-3's
parameter gathers are collective)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def padded_positions(lengths: Sequence[int]) -> int:
    """Positions of one right-padded micro-batch: rows x longest row."""
    return len(lengths) * max(lengths, default=0)


def pack_by_budget(items: Sequence[T], budget: int, cost: Callable[[list[T]], int]) -> list[list[T]]:
    """Consecutive runs of `items` (sort them by length first) as micro-batches with cost(part) <= budget,
    greedily: an item joins the current micro-batch unless that would exceed the budget. An item whose
    own cost exceeds the budget gets a micro-batch of its own (the config validators refuse budgets
    below one maximal sequence, so that only happens when asked for). Returns non-empty lists, in order."""
    if budget < 1:
        raise ValueError(f"budget must be >= 1 token, got {budget}")
    parts: list[list[T]] = []
    for item in items:
        if parts and cost(parts[-1] + [item]) <= budget:
            parts[-1].append(item)
        else:
            parts.append([item])
    return parts


def pad_parts(parts: list[list[T]], count: int) -> list[list[T]]:
    """`parts` followed by empty micro-batches up to `count` (the maximum over ranks)."""
    if len(parts) > count:
        raise ValueError(f"{len(parts)} micro-batches > count {count}")
    return parts + [[] for _ in range(count - len(parts))]
