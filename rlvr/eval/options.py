"""What an evaluation runs (protocol, benchmarks, settings, temperatures, seeds), as the schema shared
by eval SPEC files (rlvr/eval/spec.py), `eval` stages and an rlvr stage's `validation`, and how it
resolves into benchmark specs and sampling settings. Reads YAML only: no torch, no vLLM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from rlvr.eval.benchmarks import benchmark_names, load_benchmark
from rlvr.eval.protocols import PROTOCOLS, protocol_settings
from rlvr.eval.templates import TEMPLATES
from rlvr.generate.config import GenerationConfig
from rlvr.schema import ConfigError, Strict


class SettingOverrides(Strict):
    """Fields of a protocol's sampling setting (rlvr.eval.protocols.EvalSetting) to override."""

    template: str | None = None
    """A prompt template name (rlvr.eval.templates.TEMPLATES)."""
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    k: int | None = Field(None, ge=1)
    """Samples per problem (avg@k, pass@k, maj@k)."""
    max_tokens: int | None = Field(None, ge=1)

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str | None) -> str | None:
        if value is not None and value not in TEMPLATES:
            raise ValueError(f"unknown template '{value}'; choose one of {', '.join(TEMPLATES)}")
        return value


class EvalOptions(Strict):
    """What an evaluation runs: a protocol's settings on some benchmarks, optionally swept over
    temperatures and seeds. Shared by eval SPEC files (rlvr/eval/spec.py) and `eval` stages."""

    protocol: str = "toy"
    """A protocol name (rlvr.eval.protocols.PROTOCOLS): one_shot_rlvr, phi4_mini_reasoning, r1_distill, toy."""
    benchmarks: list[str] | dict[str, dict[str, Any] | None] | None = None
    """Benchmark names or spec-file paths; as a mapping, each with overrides of its spec keys, e.g.
    {math500: {path: ../shared/data/math500/test.jsonl, limit: 50}}. None: the protocol's own list."""
    settings: SettingOverrides = Field(default_factory=SettingOverrides)
    """Overrides of the protocol's setting for every benchmark."""
    benchmark_settings: dict[str, SettingOverrides] = Field(default_factory=dict)
    """Per benchmark name: overrides applied after `settings`."""
    temperatures: list[Annotated[float, Field(ge=0)]] | None = Field(None, min_length=1)
    """Sweep: evaluate every benchmark at each of these temperatures (replacing the protocol's)."""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    """Sampling seeds; each sampled setting runs once per seed (greedy settings use only the first)."""
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    graders: list[str] | None = Field(None, min_length=1)
    """Verifier policies that each judge every completion, e.g. [qwen_math_eval, math]: scores get one
    column per grader and a count of the completions they disagree on (docs/evaluation.md). The first
    is the primary (the stage's `accuracy`, the progress line). Each takes the `verifier`'s settings
    with its own policy; a benchmark's own verifier_policy (Minerva) replaces rlvr's policies, not the
    paper policies, which have per-benchmark rules. Adding one re-judges the cache, never regenerates.
    None: the `verifier` alone."""
    chunk_size: int = Field(256, ge=1)
    """(problem, sample) pairs generated per chunk; each chunk is appended to the cache at once, so a
    killed sweep loses at most one chunk."""

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        if value not in PROTOCOLS:
            raise ValueError(f"unknown protocol '{value}'; choose one of {', '.join(PROTOCOLS)}")
        return value

    @field_validator("graders")
    @classmethod
    def _known_graders(cls, value: list[str] | None) -> list[str] | None:
        from rlvr.verify.policy import POLICIES

        bad = [g for g in value or [] if g not in POLICIES]
        if bad:
            raise ValueError(f"unknown verifier policy {', '.join(map(repr, bad))}; choose from "
                             f"{', '.join(sorted(POLICIES))} (docs/verifier.md describes each)")
        if value and len(set(value)) < len(value):
            raise ValueError(f"a grader is listed twice in {value}")
        return value

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, value: list[str] | dict[str, Any] | None) -> list[str] | dict[str, Any] | None:
        known = benchmark_names()
        bad = [b for b in (value or []) if b not in known and not Path(b).is_file()]
        if bad:
            raise ValueError(f"unknown benchmark(s) {', '.join(bad)}; built-in: {', '.join(known)} "
                             "(or the path of your own benchmark spec YAML)")
        problems = []
        for name, over in (value.items() if isinstance(value, dict) else ()):
            try:
                load_benchmark(name, over or {})  # reads YAML only: bad overrides fail here, not mid-run
            except ConfigError as err:
                problems += [p.removeprefix("benchmarks.") if p.startswith(f"benchmarks.{name}.") else f"{name}.{p}"
                             for p in err.problems]
        if problems:
            raise ValueError("\n".join(problems))
        return value

    def benchmark_overrides(self) -> dict[str, dict[str, Any]]:
        """name or spec file -> spec-key overrides (the protocol's list when `benchmarks` is None)."""
        if self.benchmarks is None:
            return {name: {} for name in PROTOCOLS[self.protocol]["benchmarks"]}
        if isinstance(self.benchmarks, list):
            return {name: {} for name in self.benchmarks}
        return {name: dict(over or {}) for name, over in self.benchmarks.items()}


class RlvrValidation(EvalOptions):
    """An rlvr stage's `validation`: every `every` optimizer steps (at step 0 with `at_start`, and at the
    last step) the policy is scored with the stage's own engine, already synced to the trainer's
    weights, through the same code as `rlvr eval` (rlvr.eval.sweep.evaluate_checkpoint), into
    stages/<name>/validation/step-<N>/. The other keys are an eval stage's (protocol, benchmarks,
    settings, ...); the recipe's `verifier` judges."""

    every: int = Field(ge=1)
    """Validate after every N optimizer steps (1-shot RLVR: 20, verl's test_freq)."""
    at_start: bool = True
    """Also validate the input model before the first step (verl's val_before_train)."""

    @model_validator(mode="after")
    def _resolve(self) -> RlvrValidation:
        problems: list[str] = []
        if "generation" in self.model_fields_set:
            problems.append("generation: validation generates with the stage's own engine (the stage's "
                            "`generation`); remove validation.generation")
        resolve_benchmarks(self, problems)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def resolve(self) -> tuple[dict[str, Any], dict[str, list[tuple[Any, int]]]]:
        """(benchmark specs, [(EvalSetting, seed)] per benchmark), as an eval stage resolves them (YAML
        only; the problems were reported when the recipe was loaded)."""
        return resolve_benchmarks(self, [])

    def max_tokens(self) -> int:
        return max(s.max_tokens for runs in self.resolve()[1].values() for s, _ in runs)


def resolve_benchmarks(opts: EvalOptions, problems: list[str]):
    """(name -> BenchmarkSpec, name -> [(EvalSetting, seed)]) for a spec or an eval stage; appends
    problems (key paths relative to `opts`) instead of raising."""
    benchmarks = {}
    for key, over in opts.benchmark_overrides().items():
        try:
            bench = load_benchmark(key, over)
        except ConfigError as err:
            problems += [f"benchmarks.{key}: {p}" for p in err.problems]
            continue
        if bench.name in benchmarks:
            problems.append(f"benchmarks.{key}: a second benchmark named '{bench.name}'")
        benchmarks[bench.name] = bench
    unknown = sorted(set(opts.benchmark_settings) - set(benchmarks))
    if unknown:
        problems.append(f"benchmark_settings: {', '.join(unknown)} not among the benchmarks "
                        f"({', '.join(benchmarks)})")
    settings: dict[str, list[tuple[Any, int]]] = {}
    common = opts.settings.model_dump(exclude_none=True)
    for name in benchmarks:
        own = opts.benchmark_settings.get(name)
        over = {**common, **(own.model_dump(exclude_none=True) if own else {})}
        runs = []
        for t in dict.fromkeys(opts.temperatures or [None]):  # greedy (T=0) draws one sample: k becomes 1
            swept = over if t is None else {**over, "temperature": float(t), **({"k": 1} if t == 0 else {})}
            try:
                s = protocol_settings(opts.protocol, [name], swept)[name]
            except ConfigError as err:
                problems += [f"benchmark_settings.{p}" for p in err.problems]
                break
            runs += [(s, seed) for seed in (opts.seeds if s.temperature > 0 else opts.seeds[:1])]
        settings[name] = runs
    return benchmarks, settings
