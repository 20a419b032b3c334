"""Evaluation protocols: named presets of (template, temperature, top_p, k, max_tokens) per benchmark.

A protocol is a plain dict entry in PROTOCOLS: a description, the defaults every benchmark gets,
and per-benchmark overrides. `protocol_settings` resolves it into one EvalSetting per benchmark, with
the user's overrides on top. Sources are recipes-reference.md §A.5, §A.7 (1-shot RLVR) and §B.6
(Phi-4-Mini-Reasoning, whose sampling settings are not published: the values there are CHOSEN).

A protocol's `benchmarks` are the ones it evaluates by default; its optional `extra` entries hold the
settings of benchmarks the paper also reports but outside its headline set (1-shot RLVR's ARC-Easy and
ARC-Challenge, Table 1, which are not in its 6-benchmark average): they are used when a sweep names
them, and never added to the default list.

k is the number of samples per problem: avg@k is their mean accuracy (1-shot RLVR's "avg@8" on
AIME/AMC is the 8x-repeated test file at T=0.6, i.e. k=8), pass@k and maj@k use the same samples.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, model_validator

from rlvr.eval.templates import TEMPLATES
from rlvr.schema import ConfigError, Strict, format_validation_error


class EvalSetting(Strict):
    """How one benchmark is sampled."""

    template: str
    """A rlvr.eval.templates.TEMPLATES name."""
    temperature: float = Field(0.0, ge=0)
    """0 = greedy."""
    top_p: float = Field(1.0, gt=0, le=1)
    k: int = Field(1, ge=1)
    """Samples per problem."""
    max_tokens: int = Field(3072, ge=1)
    """Maximum new tokens per sample."""

    @model_validator(mode="after")
    def _check(self) -> EvalSetting:
        problems = []
        if self.template not in TEMPLATES:
            problems.append(f"template: unknown template {self.template!r}; known: {', '.join(TEMPLATES)}")
        if self.temperature == 0 and self.k > 1:
            problems.append(
                f"k: {self.k} samples at temperature 0 repeats one greedy sample; set k=1 or a temperature > 0"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def key(self, seed: int) -> str:
        """A stable, filesystem-safe name for (setting, seed), e.g. qwen25_math_cot-T0.6-p1-k8-len3072-seed0."""
        return (
            f"{self.template}-T{_num(self.temperature)}-p{_num(self.top_p)}-k{self.k}"
            f"-len{self.max_tokens}-seed{seed}"
        )


def _num(x: float) -> str:
    return f"{x:g}"


SETTING_FIELDS = tuple(EvalSetting.model_fields)

PROTOCOLS: dict[str, dict[str, Any]] = {
    "one_shot_rlvr": {
        "description": (
            "1-shot RLVR's evaluation (Wang et al. 2025, §A.7): Qwen2.5-Math CoT template, 3072 new tokens, "
            "seed 0; greedy single sample on MATH500, Minerva and OlympiadBench; avg@8 at T=0.6, top_p 1 on "
            "AIME24, AIME25 and AMC23. Avg. = unweighted mean of the six."
        ),
        "defaults": {
            "template": "qwen25_math_cot",
            "temperature": 0.0,
            "top_p": 1.0,
            "k": 1,
            "max_tokens": 3072,
        },
        "benchmarks": {
            "math500": {},
            "aime24": {"temperature": 0.6, "k": 8},
            "aime25": {"temperature": 0.6, "k": 8},
            "amc23": {"temperature": 0.6, "k": 8},
            "minerva": {},
            "olympiadbench": {},
        },
        # Table 1's non-math columns. The released code has no ARC evaluation, so the sampling is
        # CHOSEN: the protocol's greedy default, as for MATH500 (the prompt layout: arc_*.yaml).
        "extra": {"arc_easy": {}, "arc_challenge": {}},
    },
    "phi4_mini_reasoning": {
        "description": (
            "Phi-4-Mini-Reasoning's benchmarks (AIME24, MATH500; pass@1). The paper's sampling settings were "
            "not found (§B.6), so these are CHOSEN: the model's own chat template; T=0.8, top_p 0.95, "
            "32768 new tokens from the model card's generation example; k=8 on AIME24 because its reported "
            "57.5% is not a multiple of 1/30, so it must average several samples (at least 4); k=1 on MATH500 "
            "(94.6% of 500 is a whole number of problems); GPQA Diamond k=8, CHOSEN: its 52.0% is 103 of "
            "198 so k=1 would fit, but one sample per question of 198 leaves a standard error near 3.5 "
            "points; options shuffled per question (gpqa_diamond.yaml)."
        ),
        "defaults": {"template": "chat", "temperature": 0.8, "top_p": 0.95, "k": 1, "max_tokens": 32768},
        "benchmarks": {
            "aime24": {"k": 8},
            "math500": {},
            "gpqa_diamond": {"k": 8},
        },
    },
    "r1_distill": {
        "description": (
            "1-shot RLVR's R1-Distill-Qwen evaluation with DeepScaleR's tooling (§A.7): <think> template with "
            "DeepScaleR's instruction, T=0.6, top_p 0.95, 32768 new tokens; avg@16 on MATH500, Minerva and "
            "OlympiadBench, avg@64 on AIME24, AIME25 and AMC23."
        ),
        "defaults": {"template": "r1_think", "temperature": 0.6, "top_p": 0.95, "k": 16, "max_tokens": 32768},
        "benchmarks": {
            "math500": {},
            "aime24": {"k": 64},
            "aime25": {"k": 64},
            "amc23": {"k": 64},
            "minerva": {},
            "olympiadbench": {},
        },
    },
    "toy": {
        "description": "The CPU demo: the toy task's held-out split, greedy, the model's chat template, 96 new tokens.",
        "defaults": {"template": "chat", "temperature": 0.0, "top_p": 1.0, "k": 1, "max_tokens": 96},
        "benchmarks": {"toy": {}},
    },
}


def protocol_settings(
    protocol: str, benchmarks: list[str] | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, EvalSetting]:
    """One EvalSetting per benchmark: the protocol's defaults, its per-benchmark entries, then `overrides`.

    benchmarks: None = the protocol's own list; a benchmark in neither its list nor its `extra`
    entries gets its defaults. overrides: EvalSetting fields applied to every benchmark ({"max_tokens": 1024}), and/or
    {bench_name: {field: value}} for one benchmark (applied last). Raises ConfigError listing every
    problem (unknown protocol, unknown field, invalid value).
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(
            [f"protocol: unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}"], "protocol"
        )
    preset = PROTOCOLS[protocol]
    overrides = dict(overrides or {})
    names = list(preset["benchmarks"]) if benchmarks is None else list(benchmarks)
    common = {k: v for k, v in overrides.items() if k in SETTING_FIELDS}
    per_bench = {k: v for k, v in overrides.items() if k not in SETTING_FIELDS}
    problems = []
    for key, value in per_bench.items():
        if not isinstance(value, dict):
            problems.append(
                f"{key}: unknown setting; settings are {', '.join(SETTING_FIELDS)} "
                f"(or a benchmark name mapping to them)"
            )
        elif key not in names:
            problems.append(f"{key}: overrides for a benchmark that is not evaluated ({', '.join(names)})")
    settings = {}
    for name in names:
        data = {
            **preset["defaults"],
            **preset["benchmarks"].get(name, preset.get("extra", {}).get(name, {})),
            **common,
            **per_bench.get(name, {}),
        }
        try:
            settings[name] = EvalSetting.model_validate(data)
        except ValidationError as exc:
            problems += [f"{name}.{p.removeprefix('recipe: ')}" for p in format_validation_error(exc, data)]
    if problems:
        raise ConfigError(problems, f"protocol {protocol}")
    return settings
