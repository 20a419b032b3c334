"""Rows for a stage: from the toy task, a local JSONL/JSON/parquet file, a Hugging Face hub dataset, or a
file an earlier distill stage of the run wrote (`from_stage`), mapped onto canonical fields (prompt, response, answer, messages, text) by a preset plus overrides.

A row that lacks a mapped field is an error naming the source, the row number and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlvr.data.config import DataConfig
from rlvr.rundir import RunDir
from rlvr.schema import UserError


class DataError(UserError, ValueError):
    """A data source that cannot be read as the recipe maps it (file, row and field named)."""


# canonical fields a causal-LM stage (midtrain, SFT) needs, by preset
LM_NEEDS = {"messages": ("messages",), "sharegpt": ("messages",), "text": ("text",)}
LM_DEFAULT_NEEDS = ("prompt", "response")


def get_field(row: Any, dotted: str) -> Any:
    """row['a']['b'][0]['c'] for 'a.b.0.c'; raises KeyError naming the missing part."""
    node = row
    for part in dotted.split("."):
        if isinstance(node, list | tuple) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif hasattr(node, "tolist") and part.isdigit():  # numpy arrays from parquet
            node = node.tolist()[int(part)]
        else:
            raise KeyError(part)
    if hasattr(node, "tolist"):
        node = node.tolist()
    return node


def read_local(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text().split("\n"), 1):  # not splitlines(): U+2028 may sit inside a string
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{n}: not valid JSON ({err.msg})") from None
        return rows
    if suffix == ".json":
        data = json.loads(path.read_text())
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of rows")
        return data
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise DataError(f"{path}: unsupported data file type {suffix!r} (use .jsonl, .json or .parquet)")


def _read_hub(cfg: DataConfig) -> list[dict[str, Any]]:
    import datasets

    ds = datasets.load_dataset(cfg.hub, cfg.config, split=cfg.split)
    return list(ds)


ID_FIELDS = ("id", "index", "extra_info.index")  # verl rows carry extra_info.index (DSR-sub's example index)


def example_id(row: Any, position: int) -> int | str:
    """A row's stable example id: its first int or str field of ID_FIELDS, else its 0-based position in
    the source. Rows sharing an id are one example (a 1-shot file's 128 copies of pi_1)."""
    for path in ID_FIELDS:
        try:
            value = get_field(row, path)
        except (KeyError, TypeError):
            continue
        if isinstance(value, int | str) and not isinstance(value, bool):
            return value
    return position


def stage_file(cfg: DataConfig, run: RunDir | None) -> Path:
    """The file a `from_stage` source reads: RUN_DIR/stages/<from_stage>/<part>.jsonl."""
    if run is None:
        raise DataError(f"data.from_stage '{cfg.from_stage}': this stage does not read run-directory sources; "
                        "give the distill stage's file as data.path")
    path = run.stage(cfg.from_stage) / f"{cfg.part or 'sft'}.jsonl"
    if not path.is_file():
        raise DataError(f"data.from_stage '{cfg.from_stage}': {path} not found; run stage '{cfg.from_stage}' "
                        "first (rlvr run --resume, or --from-stage it)")
    return path


def load_rows(cfg: DataConfig, *, needs: tuple[str, ...] | None = None, with_ids: bool = False,
              run: RunDir | None = None) -> list[dict[str, Any]]:
    """Canonical rows for a stage. Toy rows are generated; other sources are read and mapped.
    `needs`: the canonical fields the stage uses; a preset field outside it may be absent from the
    source. Fields mapped explicitly in `data.fields` are always required. `with_ids`: each row also
    gets `id` (example_id of the source row). `run`: the run directory a `from_stage` source reads."""
    if cfg.toy is not None:
        rows = cfg.toy.rows()
        rows = rows[: cfg.limit] if cfg.limit else rows
        return [{**r, "id": i} for i, r in enumerate(rows)] if with_ids else rows
    if cfg.rows is not None:
        raw, where = list(cfg.rows), "recipe rows"
    elif cfg.path is not None:
        path = Path(cfg.path)
        raw, where = read_local(path), str(path)
    elif cfg.hub is not None:
        raw, where = _read_hub(cfg), f"hub:{cfg.hub}[{cfg.split}]"
    elif cfg.from_stage is not None:
        path = stage_file(cfg, run)
        raw, where = read_local(path), str(path)
    else:
        raise DataError("data.spec must be expanded by the recipe loader before loading rows")
    if not raw:
        raise DataError(f"{where}: no rows (an empty file?); a stage needs at least one")
    if cfg.limit:
        raw = raw[: cfg.limit]
    required = set(cfg.fields) | (set(needs) if needs is not None else set(cfg.mapping()))
    rows = map_rows(raw, cfg.mapping(), where, required)
    return [{**r, "id": example_id(x, i)} for i, (r, x) in enumerate(zip(rows, raw, strict=True))] if with_ids else rows


def map_rows(raw: list[dict[str, Any]], mapping: dict[str, str], where: str,
             required: set[str] | None = None) -> list[dict[str, Any]]:
    required = set(mapping) if required is None else required
    out = []
    for i, row in enumerate(raw):
        mapped = {}
        for canonical, source in mapping.items():
            try:
                value = get_field(row, source)
            except KeyError as err:
                if canonical not in required:
                    continue
                keys = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
                raise DataError(
                    f"{where}: row {i}: field '{source}' (for {canonical}) is missing at '{err.args[0]}'; "
                    f"the row has keys: {keys}. Map the right field with data.fields.{canonical}=<path> "
                    f"or choose another data.preset."
                ) from None
            if canonical == "messages":
                mapped[canonical] = to_messages(value, where, i)
            else:
                mapped[canonical] = "" if value is None else str(value)
        out.append(mapped)
    return out


SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def to_messages(value: Any, where: str, i: int) -> list[dict[str, str]]:
    """Chat messages as [{role, content}], accepting ShareGPT's [{from, value}] too."""
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: row {i}: messages must be a non-empty list, got {type(value).__name__}")
    out = []
    for m in value:
        if isinstance(m, dict) and "role" in m and "content" in m:
            out.append({"role": str(m["role"]), "content": str(m["content"])})
        elif isinstance(m, dict) and m.get("from") in SHAREGPT_ROLES and "value" in m:
            out.append({"role": SHAREGPT_ROLES[m["from"]], "content": str(m["value"])})
        else:
            raise DataError(f"{where}: row {i}: a message needs role/content (or ShareGPT from/value), got {m!r:.80}")
    return out
