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

An imperfect teacher (`teacher_error`, train split only): that fraction of the rows get a worked
solution from a teacher that forgets carries (addition: writes the column's last digit, never carries;
its final answer, e.g. 47 + 38 = 75, is wrong whenever a carry occurs; other operations are solved
correctly). The row's `answer` stays the true one, so a verifier judges against the truth. This is the
Phi-4-Mini-Reasoning setting in miniature: distilled chain-of-thought data with mistakes, which
imitation copies and verifier-judged preference data (rollout DPO) or RL can remove.
"""

from __future__ import annotations

import functools
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


def solve_add_forgetting_carries(a: int, b: int) -> list[str]:
    """The buggy teacher's addition: each column's sum is right, but only its last digit is written and
    the carry is dropped (no `carry 1`, nothing added to the next column, no final carry digit)."""
    da, db = _digits(a), _digits(b)
    lines = []
    for i in range(max(len(da), len(db))):
        x, y = (da[i] if i < len(da) else 0), (db[i] if i < len(db) else 0)
        lines.append(f"{_place(i).capitalize()}: {x} + {y} = {x + y}. Write {(x + y) % 10}.")
    return lines


def add_forgetting_carries(a: int, b: int) -> int:
    da, db = _digits(a), _digits(b)
    n = max(len(da), len(db))
    return sum((((da[i] if i < len(da) else 0) + (db[i] if i < len(db) else 0)) % 10) * 10**i for i in range(n))


# op -> (value, worked solution) of the buggy teacher (teacher_error); ops without a bug are solved right
BUGGY_OPS: dict[str, tuple[Callable[[int, int], int], Callable[[int, int], list[str]]]] = {
    "+": (add_forgetting_carries, solve_add_forgetting_carries),
}

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


def make_problem(level: int, a: int, b: int, buggy: bool = False) -> dict[str, object]:
    """A problem with its worked solution; `buggy`: the solution (and the answer it ends with) come from
    the carry-forgetting teacher, while the row's `answer` stays the true one."""
    op = LEVELS[level][0]
    answer = OPS[op][0](a, b)
    value_fn, solve_fn = BUGGY_OPS.get(op, OPS[op]) if buggy else OPS[op]
    written = value_fn(a, b)
    steps = solve_fn(a, b)
    prompt = f"What is {a} {op} {b}? {INSTRUCTION}"
    response = "\n".join([f"We compute {a} {op} {b} digit by digit.", *steps, f"So {a} {op} {b} = {written}.",
                          f"The answer is \\boxed{{{written}}}."])
    return {"prompt": prompt, "response": response, "answer": str(answer), "level": level}


@functools.cache
def split_size(level: int, split: str) -> int:
    """How many distinct problems of `level` the split holds (level 1's test split: 9). Enumerates the
    level: instant up to level 3 and 5, a few seconds for 4 and 6 (over 50,000 problems in each split)."""
    op, (alo, ahi), (blo, bhi) = LEVELS[level]
    pairs = {(max(a, b), min(a, b)) if op == "-" else (a, b) for a in range(alo, ahi + 1) for b in range(blo, bhi + 1)}
    return sum(is_test_problem(level, a, op, b) == (split == "test") for a, b in pairs)


def _capacity(level: int, split: str, n: int) -> int:
    """split_size, without enumerating a large level when n cannot reach its (> 50,000) problems."""
    _, (alo, ahi), (blo, bhi) = LEVELS[level]
    return split_size(level, split) if (ahi - alo + 1) * (bhi - blo + 1) <= 10_000 or n > 50_000 else 50_000


def check_teacher_error(split: str, teacher_error: float) -> None:
    """teacher_error is a fraction, and only the train split may have an imperfect teacher."""
    if not 0.0 <= teacher_error <= 1.0:
        raise ValueError(f"toy teacher_error must be in [0, 1], got {teacher_error}")
    if teacher_error and split == "test":
        raise ValueError("toy teacher_error applies to the train split only: held-out problems keep correct solutions")


def toy_rows(split: str, n: int, levels: list[int] | tuple[int, ...], seed: int = 0, *,
             distinct: bool = False, teacher_error: float = 0.0) -> list[dict[str, object]]:
    """n problems of the given split, levels drawn uniformly, deterministic in (split, n, levels, seed).

    Problems repeat when drawn twice (level 1 has only 100, 9 of them in the test split), unless
    `distinct`: then every problem appears once, and a level whose split is used up stops being drawn
    (so the level mix leans to the larger levels); asking for more than the levels hold is an error.
    `teacher_error`: the fraction of rows (exactly round(teacher_error * n), chosen by the seed) whose
    solution comes from the carry-forgetting teacher (make_problem); the problems themselves are the
    same as with teacher_error 0. Train split only: held-out problems are never corrupted."""
    if split not in ("train", "test"):
        raise ValueError(f"toy split must be 'train' or 'test', got {split!r}")
    check_teacher_error(split, teacher_error)
    levels, open_levels = list(levels), list(dict.fromkeys(levels))
    capacity = {lv: _capacity(lv, split, n) for lv in open_levels} if distinct else {}
    if distinct and n > sum(capacity.values()):
        raise ValueError(f"toy: {n} distinct {split} problems asked of levels {open_levels}, which hold only "
                         f"{sum(capacity.values())}")
    rng = random.Random(f"toy|{split}|{seed}")
    want_test = split == "test"
    problems: list[tuple[int, int, int]] = []
    seen: set[tuple[int, int, int]] = set()
    per_level = dict.fromkeys(open_levels, 0)
    while len(problems) < n:
        level = rng.choice(open_levels if distinct else levels)
        op, (alo, ahi), (blo, bhi) = LEVELS[level]
        a, b = rng.randint(alo, ahi), rng.randint(blo, bhi)
        if op == "-" and a < b:
            a, b = b, a
        if is_test_problem(level, a, op, b) != want_test or (distinct and (level, a, b) in seen):
            continue
        problems.append((level, a, b))
        if distinct:
            seen.add((level, a, b))
            per_level[level] += 1
            if per_level[level] == capacity[level]:
                open_levels.remove(level)
    buggy = set(random.Random(f"toy|{split}|{seed}|teacher").sample(range(n), round(teacher_error * n)))
    return [make_problem(level, a, b, buggy=i in buggy) for i, (level, a, b) in enumerate(problems)]


def toy_document(row: dict[str, object]) -> str:
    """A plain-text worked example, the unit of mid-training data."""
    return f"Problem: {row['prompt']}\nSolution: {row['response']}"
