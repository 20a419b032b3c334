"""The generation cache of a sweep: one JSONL file per (checkpoint, benchmark, setting, seed).

    OUT/generations/<checkpoint_slug>/<benchmark>/<setting.key(seed)>.jsonl
        one JSON object per (problem, sample): index, id, sample, prompt, completion, finish_reason,
        num_tokens, gold, answer, correct, reason (answer/correct/reason: the primary grader's Result),
        and with several graders verdicts: {policy: {answer, correct, reason}}
    OUT/generations/<checkpoint_slug>/<benchmark>/<setting.key(seed)>.meta.json
        checkpoint, benchmark (spec dump), setting, seed, verifier (the config that judged the rows' own
        fields), graders (policy -> the config of that policy's verdicts), complete, seconds, tokens,
        and `rejudged` when the rows were re-judged under another grader

Rows are appended one chunk at a time and fsync'ed, so a killed sweep loses at most the chunk it was
generating; a line torn by the kill is cut off when the file is next read. Nothing here imports
torch: `rlvr eval --score-only` reads and re-judges caches without it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rlvr.rundir import write_atomic
from rlvr.schema import UserError
from rlvr.verify.config import VerifierConfig

VERDICT_FIELDS = ("policy", "require_box", "numeric", "interval_relations")
"""The verifier settings that decide a verdict. Others (workers, cache size) never change one, so
changing them does not re-judge a cache."""


def verdict_config(config: VerifierConfig | dict[str, Any] | None) -> dict[str, Any] | None:
    if config is None:
        return None
    data = config.model_dump(mode="json") if isinstance(config, VerifierConfig) else config
    return {k: data.get(k) for k in VERDICT_FIELDS}


ROW_TYPES: dict[str, type | tuple[type, ...]] = {"index": int, "sample": int, "completion": str,
                                                 "correct": (bool, type(None))}
"""The fields a cached row must hold, with their types: a row that is not valid JSON or holds, say,
`"correct": "maybe"` would otherwise change a score silently (a bool-like string counts as correct)."""


class CacheCorrupt(UserError):
    """A cache line that is not a row this module wrote (edited by hand, damaged on disk)."""


def check_row(row: Any, where: str) -> dict[str, Any]:
    """`row` if it is a cache row; else CacheCorrupt naming `where` (file:line) and the fix."""
    fix = "delete that line (or the file) and run the sweep again: missing rows are regenerated"
    if not isinstance(row, dict):
        raise CacheCorrupt(f"{where}: a cache row must be a JSON object, got {type(row).__name__}; {fix}")
    for field, kind in ROW_TYPES.items():
        if field in row and not isinstance(row[field], kind) or field not in row and field != "correct":
            got = repr(row[field]) if field in row else "nothing"
            raise CacheCorrupt(f"{where}: field '{field}' must be {getattr(kind, '__name__', 'true/false/null')}, "
                               f"got {got}; {fix}")
        if kind is int and isinstance(row[field], bool):
            raise CacheCorrupt(f"{where}: field '{field}' must be an integer, got {row[field]!r}; {fix}")
    return row


class CacheFile:
    """One cache file and its sidecar. Only rank 0 writes."""

    def __init__(self, out: Path, checkpoint_slug: str, benchmark: str, key: str):
        self.path = Path(out) / "generations" / checkpoint_slug / benchmark / f"{key}.jsonl"
        self.meta_path = self.path.with_name(f"{key}.meta.json")

    def __repr__(self) -> str:
        return str(self.path)

    def read(self) -> list[dict[str, Any]]:
        """The cached rows. A torn last line (the process was killed mid-write) is cut off the file."""
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(end)
        rows = []
        # split on "\n" only: str.splitlines() also splits inside a completion at U+2028, U+0085, ... (written raw)
        for n, line in enumerate(data[:end].decode(errors="replace").split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as err:
                raise CacheCorrupt(f"{self.path}:{n}: not a JSON row ({getattr(err, 'msg', 'nested too deeply')}); "
                                   "delete that line (or the file) and run the sweep again: missing rows are "
                                   "regenerated") from None
            rows.append(check_row(row, f"{self.path}:{n}"))
        return rows

    def append(self, rows: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())

    def rewrite(self, rows: list[dict[str, Any]]) -> None:
        write_atomic(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def read_meta(self) -> dict[str, Any] | None:
        if not self.meta_path.is_file():
            return None
        try:
            return json.loads(self.meta_path.read_text())
        except json.JSONDecodeError as err:
            raise CacheCorrupt(f"{self.meta_path}: not valid JSON ({err.msg}); delete it and run the sweep again "
                               "(its rows are re-judged, not regenerated)") from None

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.meta_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.meta_path, json.dumps(meta, indent=2) + "\n")
