"""``rlvr verify --in IN.jsonl --out OUT.jsonl [--workers N] [--timeout S] [--policy NAME]``.

Each input row has ``prediction`` and ``gold`` (optional ``id``, ``truncated``, ``correct``, and
``benchmark``: math500, aime24, aime25, amc23, minerva_math or olympiadbench, which selects the
per-benchmark rules of ``--policy qwen_math_eval``; another name is a malformed row); each
output row is the input row plus ``score``, ``answer``, ``reason``, ``seconds``. A malformed row
(bad JSON, not an object, missing or non-string fields) is reported on stderr with its line
number and skipped; the rest are still judged and written. The last line on stdout is a summary:
items, items/s and, when ``correct`` labels are present, accuracy, false positives and negatives.

Exit codes: 0 all rows judged; 1 some rows were malformed (the others were written); 2 bad
arguments (unknown policy, unreadable input).
"""

from __future__ import annotations

import json
import sys
import time

from rlvr.verify.paper_rules import BENCHMARKS

EXIT_OK, EXIT_MALFORMED, EXIT_USAGE = 0, 1, 2
BATCH = 1024


def _read_rows(path) -> tuple[list[tuple[int, dict]], list[str]]:
    rows, errors = [], []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                errors.append(f"{path}:{lineno}: not valid JSON ({err.msg})")
                continue
            problem = _row_problem(row)
            if problem:
                errors.append(f"{path}:{lineno}: {problem}")
                continue
            rows.append((lineno, row))
    return rows, errors


def _row_problem(row: object) -> str | None:
    if not isinstance(row, dict):
        return "row is not a JSON object"
    for field in ("prediction", "gold"):
        if field not in row:
            return f"missing field {field!r}"
    if not isinstance(row["prediction"], str):
        return "field 'prediction' must be a string"
    if isinstance(row["gold"], (int, float)) and not isinstance(row["gold"], bool):
        row["gold"] = repr(row["gold"])
    if not isinstance(row["gold"], str):
        return "field 'gold' must be a string or a number"
    if "correct" in row and not isinstance(row["correct"], bool):
        return "field 'correct' must be true or false"
    if row.get("benchmark") is not None and row["benchmark"] not in BENCHMARKS:
        return f"unknown benchmark {row['benchmark']!r}; use one of {', '.join(BENCHMARKS)}"
    return None


def summary_line(results: list, labels: list, seconds: float) -> str:
    """One line: items, items/s and, with labels, accuracy / FP / FN."""
    n = len(results)
    text = f"items={n} items_per_s={n / seconds if seconds > 0 else 0.0:.1f}"
    labelled = [(r, c) for r, c in zip(results, labels, strict=True) if c is not None]
    if labelled:
        right = sum((r.score == 1.0) == c for r, c in labelled)
        fp = sum(r.score == 1.0 and not c for r, c in labelled)
        fn = sum(r.score != 1.0 and c for r, c in labelled)
        text += f" labelled={len(labelled)} accuracy={right / len(labelled):.4f} false_positives={fp} false_negatives={fn}"
    return text


def run(args) -> int:
    """Entry point called by ``rlvr verify`` with the parsed argparse Namespace."""
    from pydantic import ValidationError

    from rlvr.verify import Verifier, VerifierConfig

    settings = {"workers": args.workers, "timeout": args.timeout, "policy": args.policy}
    try:
        config = VerifierConfig(**{k: v for k, v in settings.items() if v is not None})
    except ValidationError as err:
        print(f"rlvr verify: bad settings: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        rows, errors = _read_rows(args.inp)
    except OSError as err:
        print(f"rlvr verify: cannot read {args.inp}: {err}", file=sys.stderr)
        return EXIT_USAGE
    for message in errors:
        print(message, file=sys.stderr)
    start = time.perf_counter()
    results = []
    with Verifier(config) as verifier, open(args.out, "w", encoding="utf-8") as out:
        for lo in range(0, len(rows), BATCH):
            chunk = [row for _, row in rows[lo : lo + BATCH]]
            verdicts = verifier.verify_batch(
                [r["prediction"] for r in chunk],
                [r["gold"] for r in chunk],
                truncated=[bool(r.get("truncated", False)) for r in chunk],
                benchmarks=[r.get("benchmark") for r in chunk],
            )
            for row, res in zip(chunk, verdicts, strict=True):
                row.update(
                    score=res.score, answer=res.answer, reason=res.reason, seconds=round(res.seconds, 6)
                )
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            results.extend(verdicts)
    elapsed = time.perf_counter() - start
    labels = [row.get("correct") for _, row in rows]
    line = summary_line(results, labels, elapsed)
    if errors:
        line += f" malformed_rows={len(errors)}"
    print(line)
    return EXIT_MALFORMED if errors else EXIT_OK
