"""Scores from graded samples: avg@k, unbiased pass@k, maj@k, and a standard error over problems.

Pure python (no numpy), so reports and the CLI can import it for free.

- avg@k: per problem the fraction of its samples judged correct, averaged over problems. With k=1
  and greedy decoding this is plain accuracy; 1-shot RLVR's "avg@8" is this with k=8 at T=0.6.
- pass@k: the unbiased estimator of Chen et al. 2021 (Codex, eq. 1) from n >= k samples of which c
  are correct, 1 - C(n-c, k) / C(n, k), averaged over problems.
- maj@k: majority vote over the extracted answers of a problem's first k samples (samples with no
  answer do not vote; answers are compared as strings with whitespace removed, so two spellings of
  one value are two candidates); a tie goes to the answer given first. The vote is correct when the
  sample holding the voted answer was judged correct. No answer at all counts as wrong.
- stderr: the standard error of avg@k over problems, sample std (n-1) / sqrt(#problems), treating
  the problems as a sample; ci95 = avg@k +- 1.96 stderr (normal approximation), clipped to [0, 1].
  0 for a single problem.
"""

from __future__ import annotations

import math
from collections import defaultdict

SIX_BENCHMARKS = ("math500", "aime24", "aime25", "amc23", "minerva", "olympiadbench")
"""The six benchmarks whose unweighted mean is 1-shot RLVR's "Avg." column."""

Z95 = 1.959963984540054


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k).

    Computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i), the numerically stable form of Chen et al.

    >>> pass_at_k(4, 1, 2)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
    0.5
    """
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def majority_correct(samples: list[dict]) -> bool:
    """maj vote over samples (in sample order) of {"answer", "correct"}; see the module docstring."""
    votes: dict[str, int] = {}
    first: dict[str, dict] = {}
    for s in samples:
        answer = s.get("answer")
        if answer is None:
            continue
        key = "".join(str(answer).split())
        votes[key] = votes.get(key, 0) + 1
        first.setdefault(key, s)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(key for key in first if votes[key] == top)  # dict order = first appearance
    return bool(first[winner]["correct"])


def score_records(records: list[dict], k: int) -> dict:
    """Scores of one (checkpoint, benchmark, setting, seed) from its cache rows.

    records: {"index", "sample", "correct": bool, "answer": str | None}, any order. Every problem
    needs at least k samples (ValueError naming the first that has fewer; a duplicate
    (index, sample) is a ValueError too). With more than k samples, avg@k and pass@k use all of
    them and maj@k the first k.

    Returns {"n_problems", "k", "avg@k", "pass@k", "maj@k", "stderr", "ci95_low", "ci95_high"}.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    by_problem: dict[int, dict[int, dict]] = defaultdict(dict)
    for r in records:
        samples = by_problem[r["index"]]
        if r["sample"] in samples:
            raise ValueError(f"duplicate record for problem {r['index']} sample {r['sample']}")
        samples[r["sample"]] = r
    if not by_problem:
        raise ValueError("no records to score")
    avg, passk, maj = [], [], []
    for index in sorted(by_problem):
        samples = [by_problem[index][s] for s in sorted(by_problem[index])]
        n, c = len(samples), sum(bool(s["correct"]) for s in samples)
        if n < k:
            raise ValueError(
                f"problem {index} has {n} sample(s), fewer than k={k}: generations are incomplete"
            )
        avg.append(c / n)
        passk.append(pass_at_k(n, c, k))
        maj.append(1.0 if majority_correct(samples[:k]) else 0.0)
    mean = sum(avg) / len(avg)
    se = stderr(avg)
    return {
        "n_problems": len(avg),
        "k": k,
        "avg@k": mean,
        "pass@k": sum(passk) / len(passk),
        "maj@k": sum(maj) / len(maj),
        "stderr": se,
        "ci95_low": max(0.0, mean - Z95 * se),
        "ci95_high": min(1.0, mean + Z95 * se),
    }


def stderr(values: list[float]) -> float:
    """Standard error of the mean: sample std (n-1 denominator) / sqrt(n); 0 for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return math.sqrt(var / n)


def benchmark_average(
    scores: dict[str, float | None], names: tuple[str, ...] = SIX_BENCHMARKS
) -> float | None:
    """Unweighted mean of the named benchmarks' scores (1-shot RLVR's "Avg."); None unless all are present.

    >>> benchmark_average({"a": 0.5, "b": 0.25}, names=("a", "b"))
    0.375
    """
    values = [scores.get(name) for name in names]
    if not names or any(v is None for v in values):
        return None
    return sum(values) / len(values)
