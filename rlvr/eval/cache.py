"""The generation cache of a sweep: one JSONL file per (checkpoint, benchmark, setting, seed).

    OUT/generations/<checkpoint_slug>/<benchmark>/<setting.key(seed)>.jsonl
        one JSON object per (problem, sample): index, id, sample, prompt, completion, finish_reason,
        num_tokens, gold, answer, correct, reason (answer/correct/reason: the verifier's Result)
    OUT/generations/<checkpoint_slug>/<benchmark>/<setting.key(seed)>.meta.json
        checkpoint, benchmark (spec dump), setting, seed, verifier (the config that judged the rows),
        complete, seconds, tokens, and `rejudged` when the rows were re-judged under another grader

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
from rlvr.verify.config import VerifierConfig

VERDICT_FIELDS = ("policy", "require_box", "numeric", "interval_relations")
"""The verifier settings that decide a verdict. Others (workers, cache size) never change one, so
changing them does not re-judge a cache."""


def verdict_config(config: VerifierConfig | dict[str, Any] | None) -> dict[str, Any] | None:
    if config is None:
        return None
    data = config.model_dump(mode="json") if isinstance(config, VerifierConfig) else config
    return {k: data.get(k) for k in VERDICT_FIELDS}


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
        # split on "\n" only: str.splitlines() also splits inside a completion at U+2028, U+0085, ... (written raw)
        return [json.loads(line) for line in data[:end].decode().split("\n") if line.strip()]

    def append(self, rows: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())

    def rewrite(self, rows: list[dict[str, Any]]) -> None:
        write_atomic(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def read_meta(self) -> dict[str, Any] | None:
        return json.loads(self.meta_path.read_text()) if self.meta_path.is_file() else None

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.meta_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.meta_path, json.dumps(meta, indent=2) + "\n")
