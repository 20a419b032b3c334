"""Gold answers of the six shared benchmark files, and spellings derived from them.

Minerva has no answer field: its gold is the last ``\\boxed{}`` of the reference solution.
OlympiadBench stores ``final_answer`` as a list of one ``$``-wrapped string; AMC23 stores floats.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rlvr.verify.extract import find_boxes

# dataset -> (file, how to read the gold, grading policy documented for it in docs/verifier.md)
DATASETS = {
    "math500": ("math500/test.jsonl", lambda row: row["answer"], "math"),
    "aime24": ("aime24/test.jsonl", lambda row: row["answer"], "math"),
    "aime25": ("aime25/test.jsonl", lambda row: row["answer"], "math"),
    "amc23": ("amc23/test.jsonl", lambda row: row["answer"], "math"),
    "minerva": ("minerva_math/test.jsonl", lambda row: _last_box(row["solution"]), "minerva"),
    "olympiadbench": ("olympiadbench/test.jsonl", lambda row: row["final_answer"][0], "math"),
}


def _last_box(solution: str) -> str:
    spans, _ = find_boxes(solution)
    return spans[-1][2].strip()


def load_golds(root: Path, name: str) -> list[str]:
    path, read, _ = DATASETS[name]
    golds = []
    with open(root / path, encoding="utf-8") as handle:
        for line in handle:
            gold = read(json.loads(line))
            golds.append(repr(gold) if isinstance(gold, float) else str(gold))
    return golds


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
