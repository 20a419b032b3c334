"""The toy task: multi-digit arithmetic with step-by-step worked solutions ending in \\boxed{answer}.

Deterministic from a seed. Train and test are disjoint by construction: a problem belongs to the
test split iff a stable hash of (level, a, op, b) falls in a fixed 1-in-8 bucket, so no held-out
problem can ever appear in training data, whatever seeds or sizes are used.

Levels (a tiny model learns the low ones quickly; the high ones leave room for RL):
  1  one-digit addition                      3 + 8
  2  two-digit addition with carries         47 + 38
  3  two-digit subtraction with borrows      52 - 38
  4  three-digit addition                    475 + 386
  5  two-digit times one-digit               47 * 6
  6  three-digit subtraction                 702 - 358
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

INSTRUCTION = "Think step by step and put the final answer in \\boxed{}."


def _digits(n: int) -> list[int]:
    return [int(c) for c in reversed(str(n))]  # ones first


def _place(i: int) -> str:
    return ["ones", "tens", "hundreds", "thousands"][i]


def solve_add(a: int, b: int) -> list[str]:
    da, db = _digits(a), _digits(b)
    lines, carry = [], 0
    for i in range(max(len(da), len(db))):
        x, y = (da[i] if i < len(da) else 0), (db[i] if i < len(db) else 0)
        s = x + y + carry
        terms = f"{x} + {y}" + (f" + {carry}" if carry else "")
        carry_note = f" Write {s % 10}, carry 1." if s >= 10 else f" Write {s}."
        lines.append(f"{_place(i).capitalize()}: {terms} = {s}.{carry_note}")
        carry = s // 10
    if carry:
        lines.append(f"{_place(max(len(da), len(db))).capitalize()}: write the carry 1.")
    return lines


def solve_sub(a: int, b: int) -> list[str]:
    da, db = _digits(a), _digits(b)
    lines, borrow = [], 0
    for i in range(len(da)):
        x, y = da[i] - borrow, (db[i] if i < len(db) else 0)
        top = f"{da[i]} - {borrow}" if borrow else f"{da[i]}"
        if x < y:
            lines.append(f"{_place(i).capitalize()}: {top} is less than {y}, borrow: {x + 10} - {y} = {x + 10 - y}.")
            borrow = 1
        else:
            lines.append(f"{_place(i).capitalize()}: {top} - {y} = {x - y}.")
            borrow = 0
    return lines


def solve_mul(a: int, b: int) -> list[str]:
    lines, carry = [], 0
    da = _digits(a)
    for i, x in enumerate(da):
        p = x * b + carry
        terms = f"{x} * {b}" + (f" + {carry}" if carry else "")
        last = i == len(da) - 1
        note = f" Write {p}." if last else (f" Write {p % 10}, carry {p // 10}." if p >= 10 else f" Write {p}.")
        lines.append(f"{_place(i).capitalize()}: {terms} = {p}.{note}")
        carry = p // 10
    return lines


OPS: dict[str, tuple[Callable[[int, int], int], Callable[[int, int], list[str]]]] = {
    "+": (lambda a, b: a + b, solve_add),
    "-": (lambda a, b: a - b, solve_sub),
    "*": (lambda a, b: a * b, solve_mul),
}

# level -> (op, range of a, range of b); subtraction keeps a >= b
LEVELS: dict[int, tuple[str, tuple[int, int], tuple[int, int]]] = {
    1: ("+", (0, 9), (0, 9)),
    2: ("+", (10, 99), (10, 99)),
    3: ("-", (10, 99), (10, 99)),
    4: ("+", (100, 999), (100, 999)),
    5: ("*", (10, 99), (2, 9)),
    6: ("-", (100, 999), (100, 999)),
}


def is_test_problem(level: int, a: int, op: str, b: int) -> bool:
    h = hashlib.sha256(f"{level}|{a}{op}{b}".encode()).digest()
    return h[0] % 8 == 0


def make_problem(level: int, a: int, b: int) -> dict[str, object]:
    op = LEVELS[level][0]
    value_fn, solve_fn = OPS[op]
    answer = value_fn(a, b)
    steps = solve_fn(a, b)
    prompt = f"What is {a} {op} {b}? {INSTRUCTION}"
    response = "\n".join([f"We compute {a} {op} {b} digit by digit.", *steps, f"So {a} {op} {b} = {answer}.",
                          f"The answer is \\boxed{{{answer}}}."])
    return {"prompt": prompt, "response": response, "answer": str(answer), "level": level}


def toy_rows(split: str, n: int, levels: list[int] | tuple[int, ...], seed: int = 0) -> list[dict[str, object]]:
    """n problems of the given split, levels drawn uniformly, deterministic in (split, n, levels, seed).
    Problems may repeat within a split only when a level has fewer distinct problems than asked for."""
    if split not in ("train", "test"):
        raise ValueError(f"toy split must be 'train' or 'test', got {split!r}")
    rng = random.Random(f"toy|{split}|{seed}")
    want_test = split == "test"
    rows: list[dict[str, object]] = []
    while len(rows) < n:
        level = rng.choice(list(levels))
        op, (alo, ahi), (blo, bhi) = LEVELS[level]
        a, b = rng.randint(alo, ahi), rng.randint(blo, bhi)
        if op == "-" and a < b:
            a, b = b, a
        if is_test_problem(level, a, op, b) == want_test:
            rows.append(make_problem(level, a, b))
    return rows


def toy_document(row: dict[str, object]) -> str:
    """A plain-text worked example, the unit of mid-training data."""
    return f"Problem: {row['prompt']}\nSolution: {row['response']}"
