"""``rlvr verify --in IN.jsonl --out OUT.jsonl [--workers N] [--timeout S] [--policy NAME]``.

Each input row has ``prediction`` and ``gold`` (optional ``id``, ``truncated``, ``correct``, and
``benchmark``: math500, aime24, aime25, amc23, minerva_math or olympiadbench, which selects the
per-benchmark rules of ``--policy qwen_math_eval``; another name is a malformed row); each
output row is the input row plus ``score``, ``answer``, ``reason``, ``seconds``. A malformed row
(not UTF-8, bad or too deeply nested JSON, not an object, missing or non-string fields) is
reported on stderr with its line number and skipped; the rest are still judged and written. The
last line on stdout is a summary: items, items/s, timeouts and, when ``correct`` labels are
present, accuracy, false positives and negatives.

``--out`` is written to a temporary file beside it and renamed over it only when every row is
written, so an interrupted or failed run leaves the previous ``--out`` as it was.

Exit codes: 0 all rows judged; 1 some rows were malformed (the others were written); 2 bad
arguments (unknown policy, unreadable input, ``--out`` unwritable or the input file itself);
130 / 143 interrupted by SIGINT / SIGTERM (``--out`` untouched).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from rlvr.verify.paper_rules import BENCHMARKS

EXIT_OK, EXIT_MALFORMED, EXIT_USAGE = 0, 1, 2
BATCH = 1024


def _read_rows(path) -> tuple[list[tuple[int, dict]], list[str]]:
    """Rows that parse, with their line numbers, and one ``PATH:LINE: problem`` per row that does not.

    Lines are decoded one by one, so one bad byte or one pathological line costs that row only.
    """
    rows, errors = [], []
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(handle, 1):
            problem, row = _parse_line(raw)
            if problem is None:
                problem = _row_problem(row)
            if problem:
                errors.append(f"{path}:{lineno}: {problem}")
            elif row is not None:
                rows.append((lineno, row))
    return rows, errors


def _parse_line(raw: bytes) -> tuple[str | None, object]:
    """(problem, None) or (None, the parsed value); (None, None) for a blank line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return (
            f"not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); re-encode the file as UTF-8",
            None,
        )
    if not line.strip():
        return None, None
    try:
        return None, json.loads(line)
    except RecursionError:
        return "JSON nested too deeply to read", None
    except ValueError as err:  # JSONDecodeError, or an integer past Python's digit limit
        return f"not valid JSON ({getattr(err, 'msg', err)})", None


def _row_problem(row: object) -> str | None:
    if row is None:
        return None
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
    """One line: items, items/s, timeouts and, with labels, accuracy / FP / FN."""
    n = len(results)
    timeouts = sum(r.reason == "timeout" for r in results)
    text = f"items={n} items_per_s={n / seconds if seconds > 0 else 0.0:.1f} timeouts={timeouts}"
    labelled = [(r, c) for r, c in zip(results, labels, strict=True) if c is not None]
    if labelled:
        right = sum((r.score == 1.0) == c for r, c in labelled)
        fp = sum(r.score == 1.0 and not c for r, c in labelled)
        fn = sum(r.score != 1.0 and c for r, c in labelled)
        text += f" labelled={len(labelled)} accuracy={right / len(labelled):.4f} false_positives={fp} false_negatives={fn}"
    return text


def _settings_problems(err) -> list[str]:
    """pydantic's errors as ``--flag: message`` lines (no error codes or URLs)."""
    out = []
    for e in err.errors():
        flag = "--" + str(e["loc"][0]) if e.get("loc") else "settings"
        msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
        out.append(f"rlvr verify: {flag}: {msg}")
    return out


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _open_temp(out: Path):
    """A new file beside ``out`` (same filesystem, so the final rename is atomic)."""
    tmp = out.parent / f".{out.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    return tmp, os.fdopen(fd, "w", encoding="utf-8")


class _Terminated(BaseException):
    """SIGTERM arrived: unwind (workers stopped, temporary file removed) and exit 143. A
    BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way swallows it."""


def _on_sigterm(signum, frame):
    raise _Terminated


def run(args) -> int:
    """Entry point called by ``rlvr verify`` with the parsed argparse Namespace."""
    from pydantic import ValidationError

    from rlvr.verify import Verifier, VerifierConfig

    settings = {"workers": args.workers, "timeout": args.timeout, "policy": args.policy}
    try:
        config = VerifierConfig(**{k: v for k, v in settings.items() if v is not None})
    except ValidationError as err:
        print("\n".join(_settings_problems(err)), file=sys.stderr)
        return EXIT_USAGE
    inp, out = Path(args.inp), Path(args.out)
    if out.is_dir():
        print(
            f"rlvr verify: --out {out} is a folder; give a file path such as {out / 'verdicts.jsonl'}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if _same_file(inp, out):
        print(
            f"rlvr verify: --out {out} is the input file; write the results to another path", file=sys.stderr
        )
        return EXIT_USAGE
    try:
        rows, errors = _read_rows(inp)
    except OSError as err:
        print(f"rlvr verify: cannot read --in {inp}: {err.strerror or err}", file=sys.stderr)
        return EXIT_USAGE
    for message in errors:
        print(message, file=sys.stderr)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    tmp = handle = None
    try:
        try:
            tmp, handle = _open_temp(out)
        except OSError as err:
            print(
                f"rlvr verify: cannot write --out {out}: {err.strerror or err}; check that its folder "
                "exists and is writable",
                file=sys.stderr,
            )
            return EXIT_USAGE
        results, elapsed = _judge(Verifier(config), rows, handle)
        handle.close()
        try:
            os.replace(tmp, out)
        except OSError as err:
            print(f"rlvr verify: cannot replace --out {out}: {err.strerror or err}", file=sys.stderr)
            return EXIT_USAGE
    except (_Terminated, KeyboardInterrupt) as stop:
        what, code = ("stopped by SIGTERM", 143) if isinstance(stop, _Terminated) else ("interrupted", 130)
        print(f"rlvr verify: {what}; {out} left as it was", file=sys.stderr)
        return code
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        if handle is not None:
            handle.close()
            tmp.unlink(missing_ok=True)
    labels = [row.get("correct") for _, row in rows]
    line = summary_line(results, labels, elapsed)
    if errors:
        line += f" malformed_rows={len(errors)}"
    print(line)
    return EXIT_MALFORMED if errors else EXIT_OK


def _judge(verifier, rows: list[tuple[int, dict]], handle) -> tuple[list, float]:
    """Judge the rows in batches, writing each output row to ``handle``; (results, seconds)."""
    start = time.perf_counter()
    results = []
    with verifier:
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
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            results.extend(verdicts)
        handle.flush()
        os.fsync(handle.fileno())
    return results, time.perf_counter() - start
