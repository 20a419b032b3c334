"""Benchmark registry: one YAML spec per benchmark in data/benchmarks/, read into a BenchmarkSpec.

A spec names where the problems come from (a Hugging Face `hub` id with `config` and `split`, a
local `path`, or the `toy` task) and how a row maps to a problem and its gold answer. The built-in
specs are the six benchmarks 1-shot RLVR reports (SIX_BENCHMARKS) plus `toy`, the CPU demo's
held-out split. A user adds a benchmark by writing a YAML file with the same keys and passing its
path wherever a benchmark name is accepted; no code changes.

Gold answers are read as the reference evaluation reads them (Qwen2.5-Math's `parse_ground_truth`,
recipes-reference §A.7): MATH500/AIME/AMC the `answer` field, Minerva the last `\\boxed{}` of
`solution`, OlympiadBench `final_answer[0]` without its `$`. AIME's zero-padded "025" and AMC's
float 27.0 are kept as given: the verifier compares them as numbers.

Multiple-choice benchmarks (ARC, GPQA) set `choices_field` (the options in one field) or
`incorrect_fields` (the correct answer and the distractors in separate fields). Their problem text is
the question with the options lettered A, B, ... in a CHOICE_FORMATS layout, and their gold is
rlvr.verify.multiple_choice.choice_gold(letter, options): the letter and the shown options, graded
by the `multiple_choice` verifier policy. `shuffle_choices` permutes each question's options in a
fixed order derived from the question alone (sha256 of its id, or of its text without an id), so
every run, rank and machine shows the same letters, and no question's order depends on another.

This module imports only pydantic and yaml (and `datasets` lazily, for hub sources).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from rlvr.data.config import ToyData
from rlvr.data.sources import DataError, get_field, read_local
from rlvr.eval.scores import SIX_BENCHMARKS
from rlvr.eval.templates import CHOICE_FORMATS
from rlvr.schema import ConfigError, Strict, format_validation_error, read_yaml_mapping
from rlvr.verify.multiple_choice import LETTERS, choice_gold
from rlvr.verify.policy import POLICIES

__all__ = [
    "SIX_BENCHMARKS",
    "BenchmarkSpec",
    "Problem",
    "benchmark_names",
    "choices_notes",
    "load_benchmark",
    "load_problems",
    "read_gold",
    "shuffled_order",
]

SPEC_DIR = Path(__file__).resolve().parents[2] / "data" / "benchmarks"


class BenchmarkSpec(Strict):
    """Where a benchmark's problems come from and how a row maps to (problem, gold)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    """Used in cache paths and reports."""
    hub: str | None = None
    """Hugging Face dataset id; used only when neither `toy` nor `path` is set."""
    config: str | list[str] | None = None
    """Hub config name; a list reads each config in order and concatenates them (AIME2025-I, -II)."""
    split: str = "test"
    path: str | None = None
    """Local JSONL/JSON/parquet file (relative to the current directory); wins over `hub`."""
    toy: ToyData | None = None
    """The toy arithmetic task (rlvr.data.toy); wins over `path` and `hub`."""
    problem_field: str = "problem"
    """Dotted path of the problem text in a row (as in rlvr.data.sources: `a.b.0.c`)."""
    answer_field: str = "answer"
    answer_format: Literal["plain", "last_boxed", "list_first"] = "plain"
    """plain: str(value). last_boxed: the last brace-matched \\boxed{} of that field (Minerva:
    answer_field=solution). list_first: the field is a list (or its Python/JSON text); gold = its
    first element with surrounding $ stripped (OlympiadBench)."""
    id_field: str | None = None
    """A stable problem id in the row, if the source has one; otherwise the row index."""
    choices_field: str | None = None
    """Multiple choice: the field holding the options, a list of texts or a mapping with `text` and
    `label` lists (ARC's `choices`). The answer field then holds the correct option's label (ARC's
    answerKey, "C" or "3") or its 0-based index. Options are lettered A, B, ... in this order."""
    incorrect_fields: list[str] = Field(default_factory=list)
    """Multiple choice with one field per option (GPQA): the answer field is the correct option's
    text, these fields the other options' texts; options = [answer, *incorrect] before shuffling."""
    shuffle_choices: bool = False
    """Permute each question's options in a fixed per-question order: by sha256(key, option index),
    key = the id field's value, else the problem text (GPQA: the correct option is always first)."""
    choices_format: str = "answer_choices"
    """How the lettered options are written into the problem: a rlvr.eval.templates.CHOICE_FORMATS
    name (answer_choices: Qwen2.5-Math eval's one line; simple_evals: simple-evals' query)."""
    hub_fields: dict[str, str | list[str] | None] = Field(default_factory=dict)
    """Field mapping used only when reading from the hub, where the hub copy's column names differ
    from the local file's: {problem_field: question, id_field: null, ...}."""
    verifier_policy: str | None = None
    """A rlvr.verify POLICIES name for this benchmark (Minerva: minerva); None = the sweep's own."""
    expected_rows: int | None = Field(None, ge=1)
    """Rows the source should hold; a mismatch (with no `limit`) prints a warning."""
    limit: int | None = Field(None, ge=1)
    """Use only the first N problems (smoke runs)."""
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> BenchmarkSpec:
        problems = []
        if self.verifier_policy is not None and self.verifier_policy not in POLICIES:
            problems.append(
                f"verifier_policy: unknown policy {self.verifier_policy!r}; "
                f"choose one of {', '.join(sorted(POLICIES))}"
            )
        allowed = ("problem_field", "answer_field", "id_field", "answer_format", "choices_field", "incorrect_fields")
        bad = sorted(set(self.hub_fields) - set(allowed))
        if bad:
            problems.append(f"hub_fields: unknown key(s) {bad}; allowed: {', '.join(allowed)}")
        if self.choices_field and self.incorrect_fields:
            problems.append(
                "choices_field / incorrect_fields: set one: choices_field for options in one field (ARC), "
                "incorrect_fields for one field per distractor (GPQA)"
            )
        if self.choices_format not in CHOICE_FORMATS:
            problems.append(
                f"choices_format: unknown format {self.choices_format!r}; known: {', '.join(CHOICE_FORMATS)}"
            )
        if self.multiple_choice():
            if self.answer_format != "plain":
                problems.append("answer_format: multiple-choice golds are read as plain labels; remove it")
            if self.verifier_policy != "multiple_choice":
                problems.append(
                    "verifier_policy: a multiple-choice benchmark's gold is a letter with its options; "
                    "set verifier_policy: multiple_choice"
                )
        elif self.shuffle_choices:
            problems.append("shuffle_choices: needs choices_field or incorrect_fields (the options)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def multiple_choice(self) -> bool:
        return bool(self.choices_field or self.incorrect_fields)

    def choices_note(self) -> str | None:
        """One sentence for reports on how this benchmark's options are shown, or None."""
        if not self.multiple_choice():
            return None
        order = (
            "shuffled per question in a fixed order (sha256 of the "
            + (f"`{self.id_field}` field" if self.id_field else "problem text")
            + " and the option index; other harnesses' shuffles give other letters)"
            if self.shuffle_choices
            else "in the source's order"
        )
        return (
            f"{self.name}: multiple choice, options lettered A, B, ... {order}, written into the prompt "
            f"as `{self.choices_format}`; graded by letter (`{self.verifier_policy}`)."
        )

    def source(self) -> str:
        """Which source load_problems reads: 'toy', 'path', 'hub' or 'none'."""
        if self.toy is not None:
            return "toy"
        if self.path is not None:
            return "path"
        return "hub" if self.hub is not None else "none"

    def source_problem(self) -> str | None:
        """Why this spec cannot be loaded as it stands (no source at all), or None."""
        if self.source() != "none":
            return None
        return (
            f"benchmarks.{self.name}.path: benchmark '{self.name}' has no hub copy to default to "
            f"(its spec's description says why); pass `path` to a local JSONL/JSON/parquet copy, "
            f"e.g. --set benchmarks.{self.name}.path=FILE.jsonl"
        )


@dataclass(frozen=True)
class Problem:
    index: int
    """Position in the benchmark (0-based), the key of cache rows."""
    id: str
    problem: str
    gold: str


# --------------------------------------------------------------------------------------------------
# specs


def benchmark_names() -> list[str]:
    """The built-in benchmarks: the spec files in data/benchmarks/."""
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml"))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: nested mappings (toy, hub_fields) are updated key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _find_spec(name_or_file: str) -> Path | None:
    if name_or_file in benchmark_names():
        return SPEC_DIR / f"{name_or_file}.yaml"
    path = Path(name_or_file)
    return path if path.suffix in (".yaml", ".yml") and path.is_file() else None


def load_benchmark(
    name_or_file: str, overrides: dict[str, Any] | None = None, *, require_source: bool = True
) -> BenchmarkSpec:
    """A built-in benchmark by name (data/benchmarks/<name>.yaml) or a user's spec file by path,
    with `overrides` (any spec keys, e.g. {"path": ..., "limit": 20}) merged in.

    Raises ConfigError listing every problem: an unknown name (naming the known ones), a missing
    file, unknown keys, bad values, and (with require_source) a spec left with no source to read.
    """
    found = _find_spec(name_or_file)
    if found is None:
        looks_like_file = name_or_file.endswith((".yaml", ".yml")) or "/" in name_or_file
        what = (
            f"benchmark spec file not found: {name_or_file}"
            if looks_like_file
            else (
                f"unknown benchmark '{name_or_file}'; built-in: {', '.join(benchmark_names())} "
                "(or give the path of your own spec YAML)"
            )
        )
        raise ConfigError([what], "benchmarks")
    data = read_yaml_mapping(found, "a benchmark spec must be a YAML mapping (name, hub or path, fields)",
                             empty_ok=True)
    data.setdefault("name", found.stem)
    data = _merge(data, overrides or {})
    try:
        spec = BenchmarkSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [p.removeprefix("recipe: ") for p in format_validation_error(exc, data)], found
        ) from None
    if require_source and spec.source_problem():
        raise ConfigError([spec.source_problem()], found)
    return spec


# --------------------------------------------------------------------------------------------------
# problems


def load_problems(spec: BenchmarkSpec) -> list[Problem]:
    """The benchmark's problems in source order (the first `limit` of them).

    Raises ConfigError when the spec has no source, and rlvr.data.sources.DataError naming the
    file, row and field when a row lacks a mapped field or its gold cannot be read.
    """
    if spec.source() == "toy":
        rows = spec.toy.rows()  # the toy spec sets distinct: a repeated problem would shrink the stderr
        problems = [Problem(i, str(i), str(r["prompt"]), str(r["answer"])) for i, r in enumerate(rows)]
        return problems[: spec.limit] if spec.limit else problems
    if spec.source() == "none":
        raise ConfigError([spec.source_problem()], spec.name)
    if spec.source() == "path":
        raw, where, fields = read_local(Path(spec.path)), spec.path, _fields(spec, hub=False)
    else:
        raw, where, fields = _read_hub(spec), f"hub:{spec.hub}[{spec.split}]", _fields(spec, hub=True)
    if spec.expected_rows is not None and len(raw) != spec.expected_rows and spec.limit is None:
        print(
            f"warning: benchmark {spec.name}: {where} has {len(raw)} rows, expected {spec.expected_rows}",
            file=sys.stderr,
        )
    if spec.limit:
        raw = raw[: spec.limit]
    out = []
    for i, row in enumerate(raw):
        try:
            out.append(_problem(i, row, fields))
        except (KeyError, ValueError) as err:
            keys = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
            raise DataError(
                f"{where}: row {i}: {err.args[0] if err.args else err}; the row has keys: {keys}. "
                f"Map the right fields in the spec (problem_field, answer_field, answer_format)."
            ) from None
    return out


def _fields(spec: BenchmarkSpec, hub: bool) -> dict[str, Any]:
    fields = {
        "problem_field": spec.problem_field,
        "answer_field": spec.answer_field,
        "answer_format": spec.answer_format,
        "id_field": spec.id_field,
        "choices_field": spec.choices_field,
        "incorrect_fields": spec.incorrect_fields,
        "shuffle_choices": spec.shuffle_choices,
        "choices_format": spec.choices_format,
    }
    return {**fields, **spec.hub_fields} if hub else fields


def _field(row: Any, dotted: str) -> Any:
    try:
        return get_field(row, dotted)
    except KeyError as err:
        raise KeyError(f"field '{dotted}' is missing at '{err.args[0]}'") from None


def _problem(i: int, row: Any, fields: dict[str, Any]) -> Problem:
    pid = str(_field(row, fields["id_field"])) if fields["id_field"] else str(i)
    question = str(_field(row, fields["problem_field"]))
    if fields["choices_field"] or fields["incorrect_fields"]:
        options, correct = _options(row, fields)
        if fields["shuffle_choices"]:
            key = pid if fields["id_field"] else question
            order = shuffled_order(key, len(options))
            options, correct = [options[j] for j in order], order.index(correct)
        if len(options) > len(LETTERS):
            raise ValueError(f"{len(options)} options; at most {len(LETTERS)} can be lettered")
        text = CHOICE_FORMATS[fields["choices_format"]](question, options)
        return Problem(i, pid, text, choice_gold(LETTERS[correct], options))
    gold = read_gold(_field(row, fields["answer_field"]), fields["answer_format"])
    return Problem(i, pid, question, gold)


def _options(row: Any, fields: dict[str, Any]) -> tuple[list[str], int]:
    """A multiple-choice row's option texts in source order and the correct one's position."""
    answer = _field(row, fields["answer_field"])
    if fields["incorrect_fields"]:
        wrong = [_field(row, f) for f in fields["incorrect_fields"]]
        options = [str(o).strip() for o in [answer, *wrong]]
        if any(not o for o in options):
            raise ValueError("an option field is empty")
        return options, 0
    value = _field(row, fields["choices_field"])
    if isinstance(value, dict):
        texts, labels = value.get("text"), value.get("label")
        if not isinstance(texts, list) or not isinstance(labels, list) or len(texts) != len(labels):
            raise ValueError(f"field '{fields['choices_field']}' needs `text` and `label` lists of one length")
    elif isinstance(value, list):
        texts, labels = value, list(LETTERS[: len(value)])
    else:
        raise ValueError(f"field '{fields['choices_field']}' is neither a list of options nor {{text, label}}")
    labels = [str(x).strip() for x in labels]
    key = str(answer).strip()
    if key in labels:  # ARC's answerKey is a label: "C", or "3" in rows labelled 1-4
        correct = labels.index(key)
    elif isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(texts):
        correct = answer  # a 0-based index (MMLU-style rows)
    else:
        raise ValueError(f"answer {answer!r} is not one of the option labels {labels}")
    return [str(t).strip() for t in texts], correct


def shuffled_order(key: str, n: int) -> list[int]:
    """A fixed permutation of range(n) for one question: source positions in display order, sorted
    by sha256(key, position). It depends on nothing but the key (no RNG state, no Python version)."""
    def rank(j: int) -> str:
        return hashlib.sha256(f"{key}\x00{j}".encode()).hexdigest()

    return sorted(range(n), key=rank)


def read_gold(value: Any, answer_format: str) -> str:
    """The gold answer string from a row's answer field, by answer_format (see BenchmarkSpec).

    >>> read_gold("so $x = \\\\boxed{\\\\frac{1}{2}}$, and \\\\boxed{5}", "last_boxed")
    '5'
    >>> read_gold(["$x^2$"], "list_first")
    'x^2'
    >>> read_gold(27.0, "plain")
    '27.0'
    """
    if answer_format == "last_boxed":
        from rlvr.verify.extract import find_boxes

        spans, _ = find_boxes(str(value))
        if not spans:
            raise ValueError("answer_format last_boxed: no complete \\boxed{} in the answer field")
        return spans[-1][2].strip()
    if answer_format == "list_first":
        items = _as_list(value)
        if not items:
            raise ValueError("answer_format list_first: the answer field is an empty list")
        return str(items[0]).strip().strip("$").strip()
    if value is None:
        raise ValueError("the answer field is null")
    return str(value).strip()


def _as_list(value: Any) -> list[Any]:
    """A list, or the text of one (OlympiadBench copies store "['$x$']")."""
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str) and value.strip().startswith("["):
        import ast

        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            parsed = json.loads(value)
        if isinstance(parsed, list):
            return parsed
    raise ValueError(f"answer_format list_first: the answer field is not a list: {str(value)[:60]!r}")


def choices_notes(spec_file: Path) -> dict[str, str]:
    """{benchmark: sentence} for the multiple-choice benchmarks of a sweep's resolved spec.yaml
    (what reports state about option order and layout); {} when the file is absent or unreadable."""
    import yaml

    try:
        doc = yaml.safe_load(Path(spec_file).read_text())
        specs = (doc or {}).get("benchmarks") or {}
        return {
            name: note
            for name, data in specs.items()
            if (note := BenchmarkSpec.model_validate(data).choices_note()) is not None
        }
    except (OSError, yaml.YAMLError, ValidationError, AttributeError, TypeError):
        return {}


def _read_hub(spec: BenchmarkSpec) -> list[dict[str, Any]]:
    import datasets

    configs = spec.config if isinstance(spec.config, list) else [spec.config]
    rows: list[dict[str, Any]] = []
    for config in configs:
        rows.extend(datasets.load_dataset(spec.hub, config, split=spec.split))
    return rows
