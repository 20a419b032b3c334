"""Per-example training accuracy, one line per RL step: stages/<name>/examples.jsonl.

    {"step": 12, "examples": {"124": [7, 8], "31": [0, 8], ...}}

`step` is the optimizer step the line belongs to (1-based, as in metrics.jsonl); `examples` maps each
example id the step sampled (rlvr.data.sources.example_id: the data's `id`/`index`/`extra_info.index`,
else the row's position in the source) to [correct, total] over all of that step's rollouts of it,
the rollouts dynamic sampling regenerated or dropped included. Correct is the verifier's verdict, not
the reward, so reward controls do not change it. Rows sharing an id (a 1-shot file's copies of one
example) add up. Keys keep the order in which the step sampled the examples (rank 0's prompts first),
so the file is a deterministic function of the run.

This is the history 1-shot RLVR ranks examples by (rlvr.select): with the usual order (every example
once per epoch) an example's lines are its per-epoch accuracies.

Only rank 0 writes; one line per step, appended and flushed. On resume at step s the lines of steps
after s (a lost trajectory) and a torn last line are dropped by rewriting the file (temp + rename)
before the first new step, as the stage's validations after s are deleted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path


def count_examples(pairs: Iterable[tuple[int | str, bool]]) -> dict[str, list[int]]:
    """{id: [correct, total]} from (example id, correct) per rollout; ids as JSON keys (str), first-seen order."""
    counts: dict[str, list[int]] = {}
    for example, correct in pairs:
        c = counts.setdefault(str(example), [0, 0])
        c[0] += int(bool(correct))
        c[1] += 1
    return counts


def merge_counts(parts: Iterable[dict[str, list[int]]]) -> dict[str, list[int]]:
    """Sum per-rank counts (in rank order, so the key order is the step's sampling order)."""
    merged: dict[str, list[int]] = {}
    for part in parts:
        for key, (correct, total) in part.items():
            c = merged.setdefault(key, [0, 0])
            c[0] += correct
            c[1] += total
    return merged


def read_lines(path: Path) -> list[dict]:
    """The file's complete lines, in order; a torn (unparsable) last line is skipped."""
    if not path.is_file():
        return []
    out = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines) - 1:
                break  # a crash while appending: the step it belonged to is redone after resume
            raise ValueError(f"{path}:{n + 1}: not valid JSON") from None
    return out


class ExampleLog:
    """stages/<name>/examples.jsonl for a stage starting (or resuming) at optimizer step `start`."""

    def __init__(self, path: Path, start: int, enabled: bool):
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = [line for line in read_lines(path) if int(line["step"]) <= start]
        if path.is_file() or kept:
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_text("".join(json.dumps(line) + "\n" for line in kept))
            os.replace(tmp, path)

    def append(self, step: int, parts: list[dict[str, list[int]]]) -> None:
        """One line for optimizer step `step` from every rank's count_examples (world.all_gather_object)."""
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, "examples": merge_counts(parts)}) + "\n")
