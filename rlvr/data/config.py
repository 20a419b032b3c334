"""Schemas of a stage's `data` section: where rows come from and how their fields map onto the
canonical ones. Cheap to import (pydantic and the stdlib-only toy task), so recipes validate fast."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from rlvr.data.toy import check_teacher_error, toy_rows
from rlvr.schema import Strict


class ToyData(Strict):
    """The synthetic arithmetic task (rlvr/data/toy.py)."""

    split: Literal["train", "test"] = "train"
    n: int = Field(2000, ge=1)
    levels: list[Annotated[int, Field(ge=1, le=6)]] = Field(default_factory=lambda: [1, 2, 3, 4])
    seed: int = 0
    distinct: bool = False
    """Every problem at most once (a level whose split is used up stops being drawn); benchmarks set it."""
    teacher_error: float = Field(0.0, ge=0, le=1)
    """Fraction of rows whose worked solution (and the answer it ends with) comes from a teacher that
    forgets carries; the row's `answer` stays true. Train split only (rlvr/data/toy.py)."""

    @model_validator(mode="after")
    def _clean_test(self) -> ToyData:
        check_teacher_error(self.split, self.teacher_error)
        return self

    def rows(self) -> list[dict[str, object]]:
        return toy_rows(self.split, self.n, self.levels, self.seed, distinct=self.distinct,
                        teacher_error=self.teacher_error)


FIELD_PRESETS: dict[str, dict[str, str]] = {
    # canonical field -> dotted source path (integers index lists)
    "problem_solution": {"prompt": "problem", "response": "solution", "answer": "answer"},
    "messages": {"messages": "messages"},
    "verl": {"prompt": "prompt.0.content", "answer": "reward_model.ground_truth"},
    "text": {"text": "text"},
    "sharegpt": {"messages": "conversations"},  # [{from: human|gpt|user|assistant|system, value}]
}
CANONICAL_FIELDS = ("prompt", "response", "answer", "messages", "text")


class DataConfig(Strict):
    """Where a stage's rows come from: exactly one of `toy`, `rows` (written in the recipe), `path`
    (local JSONL/JSON/parquet), `hub` (a Hugging Face dataset id), `spec` (a dataset spec YAML in
    data/ holding these same keys) or `from_stage` (a file an earlier distill stage of the run wrote)."""

    toy: ToyData | None = None
    rows: list[dict[str, Any]] | None = Field(None, min_length=1)
    """Rows written in the recipe itself (e.g. 1-shot RLVR's single example), mapped like file rows."""
    path: str | None = None
    hub: str | None = None
    spec: str | None = None
    from_stage: str | None = None
    """The name of an earlier `distill` stage of the recipe: read its RUN_DIR/stages/<name>/<part>.jsonl. Its
    rows hold problem, solution and answer (the default `problem_solution` preset), and `problem` is the
    prompt the teacher saw (prompt_suffix included)."""
    part: Literal["sft", "rollouts"] | None = None
    """With from_stage: sft (the verifier-correct responses kept by the stage's `keep` and `selection`;
    the default) or rollouts (every sample, correct or not)."""
    config: str | None = None
    """Hub dataset config name."""
    split: str = "train"
    preset: Literal["problem_solution", "messages", "verl", "text", "sharegpt"] = "problem_solution"
    """Field mapping preset (FIELD_PRESETS); `fields` entries override it."""
    fields: dict[str, str] = Field(default_factory=dict)
    """canonical field (prompt, response, answer, messages, text) -> dotted source path, e.g.
    {answer: reward_model.ground_truth, prompt: prompt.0.content}."""
    limit: int | None = Field(None, ge=1)
    """Use only the first N rows."""

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        given = [k for k in ("toy", "rows", "path", "hub", "spec", "from_stage") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one data source of toy, rows, path, hub, spec, from_stage (got {given or 'none'})")
        if self.part is not None and self.from_stage is None:
            raise ValueError("`part` selects a file of a distill stage: give it with from_stage")
        bad = sorted(set(self.fields) - set(CANONICAL_FIELDS))
        if bad:
            raise ValueError(f"unknown canonical field(s) {bad} in `fields`; allowed: {list(CANONICAL_FIELDS)}")
        return self

    def mapping(self) -> dict[str, str]:
        return {**FIELD_PRESETS[self.preset], **self.fields}
