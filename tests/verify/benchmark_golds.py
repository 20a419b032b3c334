"""Gold answers of the six shared benchmark files, and spellings derived from them.

Golds are read by the benchmark registry (rlvr/eval/benchmarks.py): Minerva's is the last
``\\boxed{}`` of the reference solution, OlympiadBench's ``final_answer[0]`` without ``$``, AMC23's
a float as written (27.0).
"""

from __future__ import annotations

import re
from pathlib import Path

from rlvr.eval.benchmarks import SIX_BENCHMARKS, load_benchmark, load_problems

# benchmark -> its file under the shared data folder; golds are read by the benchmark registry
# (data/benchmarks/<name>.yaml), the same code that scores evaluations
SHARED_FILES = {
    "math500": "math500/test.jsonl",
    "aime24": "aime24/test.jsonl",
    "aime25": "aime25/test.jsonl",
    "amc23": "amc23/test.jsonl",
    "minerva": "minerva_math/test.jsonl",
    "olympiadbench": "olympiadbench/test.jsonl",
}
assert tuple(SHARED_FILES) == SIX_BENCHMARKS


def shared_spec(root: Path, name: str):
    """The registry's spec for `name`, pointed at its shared-data file."""
    return load_benchmark(name, {"path": str(root / SHARED_FILES[name])})


def load_golds(root: Path, name: str) -> list[str]:
    return [p.gold for p in load_problems(shared_spec(root, name))]


def grading_policy(root: Path, name: str) -> str:
    """The verifier policy the benchmark's spec names (docs/verifier.md), else the default."""
    return shared_spec(root, name).verifier_policy or "math"


def equivalent_spellings(gold: str) -> list[str]:
    """Complete model outputs that state the gold in a few equivalent ways."""
    bare = _MATH_DOLLAR.sub("", gold).strip()
    outs = [
        f"\\boxed{{{gold}}}",
        f"We check every case.\n\nTherefore, the final answer is $\\boxed{{{bare}}}$.",
        f"<think>Working it out.</think>\nThe final answer is $\\boxed{{ {bare} }}$",
    ]
    if "$" not in bare:  # an inline-math statement cannot carry a literal $ inside
        outs.append(f"The final answer is ${bare}$. I hope it is correct.")
    if "\\frac" in bare:
        outs.append("\\boxed{" + bare.replace("\\frac", "\\dfrac") + "}")
    if re.fullmatch(r"-?\d+(\.0+)?", bare):
        value = int(float(bare))
        outs.append(f"\\boxed{{{value}}}")
        outs.append(f"\\boxed{{{value}.0}}")
    return outs


def perturbed(gold: str) -> str:
    """The gold with its last digit changed (or a wrong word), boxed: must be rejected."""
    bare = _MATH_DOLLAR.sub("", gold)
    digits = [m.start() for m in re.finditer(r"\d", bare)]
    if digits:
        k = digits[-1]
        wrong = bare[:k] + ("8" if bare[k] == "9" else str(int(bare[k]) + 1)) + bare[k + 1 :]
    else:
        wrong = bare + "+1"
    return "The final answer is $\\boxed{" + wrong + "}$."


_MATH_DOLLAR = re.compile(r"(?<!\\)\$")
