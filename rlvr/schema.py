"""The base of every configuration schema: strict models, one error type, error formatting, `--set`
overrides and the YAML-mapping reader shared by recipes, eval specs and benchmark specs.

A leaf module: it imports only pydantic and yaml, so every package can build its schemas on it
(`rlvr.config` for recipes, `rlvr.data.config`, `rlvr.eval.options`, `rlvr.eval.spec`, ...) without
an import cycle.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(Exception):
    """Every problem found in a recipe, each as `key.path: what is wrong (and how to fix it)`."""

    def __init__(self, problems: list[str], source: str | Path | None = None):
        self.problems = problems
        self.source = str(source) if source is not None else "recipe"
        super().__init__(self.render())

    def render(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} problem{'s' if n != 1 else ''} in the recipe:"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class UserError(Exception):
    """A mistake in the user's input found at run time (a missing model, an unreadable data row, a
    corrupt cache line): rlvr exits 2 with this message, naming the file, key or row and the fix, and no
    traceback (RLVR_DEBUG=1 shows it). A crash of rlvr itself is any other exception and keeps its
    traceback."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def read_yaml_mapping(path: str | Path, shape: str, error: type[ConfigError] = ConfigError,
                      empty_ok: bool = False) -> dict[str, Any]:
    """The YAML mapping in file `path`; raises `error` naming the file when it is missing, is not YAML
    or is not a mapping (`shape` says what the mapping should hold, e.g. "a recipe must be a YAML
    mapping with name, model and stages"). `empty_ok`: an empty file reads as {}."""
    path = Path(path)
    if not path.is_file():
        raise error([f"file not found: {path}"], path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise error([f"not valid YAML: {err}"], path) from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise error([shape], path)
    return data


# --------------------------------------------------------------------------------------------------
# error formatting

_MESSAGES = {
    "greater_than": "must be > {gt}, got {input!r}",
    "greater_than_equal": "must be >= {ge}, got {input!r}",
    "less_than": "must be < {lt}, got {input!r}",
    "less_than_equal": "must be <= {le}, got {input!r}",
    "extra_forbidden": "unknown key (check the spelling; see the schema in rlvr/config.py or the README)",
    "missing": "required key is missing",
    "literal_error": "must be one of {expected}, got {input!r}",
}


def _loc_str(loc: tuple[Any, ...], data: Any, root: str) -> str:
    """('stages', 2, 'sft', 'optim', 'lr') -> 'stages[2].optim.lr' (drops union tags)."""
    out, node = "", data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue  # the tag of a union discriminated by `type`
        if part.startswith("function-") or part in ("tagged-union",):
            continue
        out += f".{part}" if out else str(part)
        node = node.get(part) if isinstance(node, dict) else None
    return out or root


def _num(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _message(err: dict[str, Any], kind_name: str, kinds: tuple[str, ...]) -> str:
    kind = err["type"]
    ctx = {k: _num(v) for k, v in {**err.get("ctx", {}), "input": err.get("input")}.items()}
    if kind == "union_tag_invalid":
        expected = ", ".join(kinds) or str(ctx.get("expected_tags", "")).replace("'", "")
        return f"unknown {kind_name} '{ctx.get('tag')}'; expected one of {expected}"
    if kind == "union_tag_not_found":
        return f"needs a `type` (the {kind_name}: one of {', '.join(kinds)})" if kinds else "needs a `type`"
    if kind in _MESSAGES:
        try:
            return _MESSAGES[kind].format(**ctx)
        except (KeyError, IndexError):
            pass
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def format_validation_error(exc: ValidationError, data: Any, root: str = "recipe",
                            kind_name: str = "type", kinds: tuple[str, ...] = ()) -> list[str]:
    """One `key.path: message` line per problem of `exc` (raised validating `data`); a validator's
    message that already starts with a key path (`stages[2].x: ...`) keeps it. `kind_name` names what
    a union's `type` tag chooses (e.g. "stage type") and `kinds` its choices."""
    problems = []
    for err in exc.errors():
        where = _loc_str(tuple(err["loc"]), data, root)
        for line in _message(err, kind_name, kinds).split("\n"):
            if re.match(r"^stages\[\d+\]\.", line):
                problems.append(line)  # a model validator already named the key
            else:
                problems.append(f"{where}: {line}")
    return problems


# --------------------------------------------------------------------------------------------------
# --set overrides


def _parse_path(key: str) -> list[str]:
    # a.b[2].c -> ['a', 'b', '2', 'c']
    return [p for p in re.split(r"\.|\[|\]", key) if p != ""]


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` override in place. List items by index or by their `name`."""
    if "=" not in assignment:
        raise ValueError(f"--set {assignment!r}: expected KEY=VALUE")
    key, raw = assignment.split("=", 1)
    parts = _parse_path(key.strip())
    if not parts:
        raise ValueError(f"--set {assignment!r}: empty key")
    try:
        value = _parse_value(raw)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"--set {key.strip()}: value {raw!r} is not valid YAML ({problem}); quote a string value, "
                         f"e.g. --set '{key.strip()}=\"...\"'") from None
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            idx = _list_index(node, part, where)
            if last:
                node[idx] = value
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise ValueError(f"--set {key}: '{'.'.join(parts[:i])}' is a value, not a section")


def _parse_value(raw: str) -> Any:
    """YAML, except that numbers YAML 1.1 leaves as strings (2e-6, 1e5) become floats."""
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
        return float(value)
    return value


def _list_index(node: list[Any], part: str, where: str) -> int:
    if part.lstrip("-").isdigit():
        idx = int(part)
        if not -len(node) <= idx < len(node):
            raise ValueError(f"--set {where}: index {idx} out of range (list has {len(node)} items)")
        return idx
    names = [item.get("name") for item in node if isinstance(item, dict)]
    if part in names:
        return names.index(part)
    raise ValueError(f"--set {where}: no item named '{part}' (names: {', '.join(map(str, names))})")
