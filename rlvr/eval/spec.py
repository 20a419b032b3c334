"""The eval SPEC file of `rlvr eval SPEC.yaml`: schema, loading with `--set`, and resolution into the
exact list of (checkpoint, benchmark, setting, seed) a sweep runs.

    name: one_shot_rlvr
    protocol: one_shot_rlvr               # rlvr.eval.protocols.PROTOCOLS
    checkpoints:                          # hub ids, HF directories, or run directories
      - Qwen/Qwen2.5-Math-1.5B
      - {path: runs/one_shot-20250101-000000, select: [base, steps, finals]}
    benchmarks: [math500, aime24]         # or {math500: {path: ..., limit: 50}}; or a spec file path
    settings: {max_tokens: 3072}          # EvalSetting overrides for every benchmark
    benchmark_settings: {aime24: {k: 16}}
    temperatures: [0.0, 0.6]              # optional sweep (replaces the protocol's temperature)
    seeds: [0]
    verifier: {policy: math}
    generation: {backend: vllm}
    out: runs/eval/{name}

Every key is checked (unknown keys are errors) and every problem is reported at once with its key path,
before torch or vLLM is imported. A run directory (it holds summary.json or config.yaml) expands to its
base model (step 0), each training stage's final/ and its exports/step-<N>/ (`export_every`), as chosen
by `select`. The resolved spec, every default filled in and every checkpoint listed, is written to
OUT/spec.yaml.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from rlvr.eval.options import EvalOptions, resolve_benchmarks
from rlvr.schema import ConfigError, Strict, apply_override, format_validation_error, read_yaml_mapping
from rlvr.verify.config import VerifierConfig
from rlvr.verify.graders import grader_config
from rlvr.verify.policy import POLICIES

SELECT = ("base", "finals", "steps")


class SpecError(ConfigError):
    """Every problem of an eval spec, as `key.path: message` lines."""

    def render(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} problem{'s' if n != 1 else ''} in the eval spec:"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class CheckpointSpec(Strict):
    """One entry of `checkpoints`: a Hugging Face directory, a hub id, or a run directory."""

    path: str = Field(min_length=1)
    label: str | None = Field(None, pattern=r"^[A-Za-z0-9_.@+=-]+$")
    """Name in caches and reports. Default: the directory name (a stage's final/: the stage name),
    or the hub id. For a run directory, a prefix: `<label>/<stage>@<step>`."""
    select: list[Literal["base", "finals", "steps"]] = Field(default_factory=lambda: list(SELECT), min_length=1)
    """Run directories only: the base model (step 0), each training stage's final/, and/or the step
    exports (stages/<name>/exports/step-<N>/, written with `export_every`)."""
    stages: list[str] | None = None
    """Run directories only: expand only these stages (default: every training stage)."""


class EvalSpec(EvalOptions):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    checkpoints: list[CheckpointSpec] = Field(min_length=1)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)
    """The grader (docs/verifier.md); a benchmark's own verifier_policy (Minerva) wins over `policy`."""
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    """Engine dtype when generation.dtype is auto."""
    out: str = "runs/eval/{name}"
    """Output directory; `{name}` is filled in."""


# --------------------------------------------------------------------------------------------------
# resolved sweep


@dataclass(frozen=True)
class Checkpoint:
    label: str
    path: str
    stage: str | None = None
    step: int | None = None

    @property
    def slug(self) -> str:
        """The label as a directory name."""
        return re.sub(r"[^A-Za-z0-9_.@+=-]", "_", self.label.replace("/", "__"))

    def dump(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sweep:
    """Everything a sweep runs, fully resolved: what generates, what judges, where it is written."""

    name: str
    protocol: str
    checkpoints: list[Checkpoint]
    benchmarks: dict[str, Any]  # name -> rlvr.eval.benchmarks.BenchmarkSpec
    settings: dict[str, list[tuple[Any, int]]]  # name -> [(EvalSetting, seed)] in order
    verifier: VerifierConfig
    generation: Any  # GenerationConfig
    dtype: str
    out: Path
    chunk_size: int = 256
    spec: dict[str, Any] = field(default_factory=dict)  # the validated spec, for OUT/spec.yaml
    graders: list[str] | None = None  # policies that each judge every completion; None: `verifier` alone

    def verifier_for(self, benchmark: str) -> VerifierConfig:
        """The primary grader of a benchmark (its verdicts are the cache rows' `correct`)."""
        return next(iter(self.graders_for(benchmark).values()))

    def graders_for(self, benchmark: str) -> dict[str, VerifierConfig]:
        """policy -> config of every grader of a benchmark, the primary first. A benchmark's own
        verifier_policy (Minerva: minerva) replaces rlvr's own policies; the paper policies keep
        themselves (they have per-benchmark rules). A multiple-choice benchmark's (ARC, GPQA) replaces
        every grader: its gold is a letter with its options, which no math grader can read."""
        own = self.benchmarks[benchmark].verifier_policy
        choice = own is not None and POLICIES[own].rules == "multiple_choice"
        out: dict[str, VerifierConfig] = {}
        for listed in self.graders or [self.verifier.policy]:
            policy = own if own is not None and (choice or POLICIES[listed].rules == "rlvr") else listed
            # the verifier's own policy, replaced by the benchmark's, keeps the verifier's overrides
            config = (self.verifier.model_copy(update={"policy": policy}) if listed == self.verifier.policy
                      else grader_config(self.verifier, policy))
            out.setdefault(policy, config)
        return out

    def resolved(self) -> dict[str, Any]:
        return {**self.spec, "checkpoints": [c.dump() for c in self.checkpoints],
                "benchmarks": {n: b.model_dump(mode="json") for n, b in self.benchmarks.items()},
                "runs": {n: [{"setting": s.model_dump(mode="json"), "seed": seed, "key": s.key(seed)}
                             for s, seed in runs] for n, runs in self.settings.items()},
                "out": str(self.out)}


# --------------------------------------------------------------------------------------------------
# loading


def _normalise(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> None:
    """Shorthands to their mapping form, so `--set` paths work: checkpoint strings -> {path}, a
    benchmark list -> {name: {}}, and no `benchmarks` -> the protocol's own list."""
    if isinstance(data.get("checkpoints"), list):
        data["checkpoints"] = [{"path": c} if isinstance(c, str) else c for c in data["checkpoints"]]
    if isinstance(data.get("benchmarks"), list) and all(isinstance(b, str) for b in data["benchmarks"]):
        data["benchmarks"] = {b: {} for b in data["benchmarks"]}
    elif data.get("benchmarks") is None:
        protocol = data.get("protocol")
        for o in overrides:
            if o.split("=", 1)[0].strip() == "protocol":
                protocol = o.split("=", 1)[1].strip()
        from rlvr.eval.protocols import PROTOCOLS

        if protocol in PROTOCOLS:
            data["benchmarks"] = {b: {} for b in PROTOCOLS[protocol]["benchmarks"]}


def _fix_loc(problem: str) -> str:
    # a validator's own `key: message` lines arrive as "recipe: key: message" / "benchmarks: math500.limit: ..."
    problem = problem.removeprefix("recipe: ")
    return re.sub(r"^benchmarks: ([A-Za-z0-9_-]+)\.", r"benchmarks.\1.", problem)


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> EvalSpec:
    """Read, override (`--set a.b=value`) and validate a SPEC; raises SpecError with every problem."""
    path = Path(path)
    data = read_yaml_mapping(path, "an eval spec must be a YAML mapping with name, checkpoints and benchmarks",
                             SpecError)
    _normalise(data, overrides)
    problems = []
    for assignment in overrides:
        try:
            apply_override(data, assignment)
        except ValueError as err:
            problems.append(str(err))
    if problems:
        raise SpecError(problems, path)
    try:
        return EvalSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError([_fix_loc(p) for p in format_validation_error(exc, data)], path) from None


def resolve_sweep(spec: EvalSpec, source: str | Path = "spec") -> Sweep:
    """Expand checkpoints, load benchmark specs and settings; raises SpecError with every problem.
    Reads only files (no torch, no vLLM)."""
    problems: list[str] = []
    checkpoints = []
    for i, entry in enumerate(spec.checkpoints):
        try:
            checkpoints += expand_checkpoint(entry)
        except ValueError as err:
            problems.append(f"checkpoints[{i}]: {err}")
    seen: dict[str, str] = {}
    for c in checkpoints:
        if c.slug in seen:
            problems.append(f"checkpoints: two checkpoints are both labelled '{c.label}' ({seen[c.slug]} and "
                            f"{c.path}); give one a `label`")
        seen.setdefault(c.slug, c.path)
    benchmarks, settings = resolve_benchmarks(spec, problems)
    longest = max((s.max_tokens for runs in settings.values() for s, _ in runs), default=0)
    if longest >= spec.generation.max_model_len:
        problems.append(f"generation.max_model_len: {spec.generation.max_model_len} leaves no room for the "
                        f"prompt with max_tokens {longest}; raise it (prompt + completion tokens)")
    if problems:
        raise SpecError(problems, source)
    return Sweep(name=spec.name, protocol=spec.protocol, checkpoints=checkpoints, benchmarks=benchmarks,
                 settings=settings, verifier=spec.verifier, generation=spec.generation, dtype=spec.dtype,
                 out=Path(spec.out.format(name=spec.name)), chunk_size=spec.chunk_size, spec=spec.model_dump(mode="json"),
                 graders=spec.graders)


# --------------------------------------------------------------------------------------------------
# checkpoints


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "summary.json").is_file() or (path / "config.yaml").is_file()) \
        and not (path / "config.json").is_file()


def expand_checkpoint(entry: CheckpointSpec) -> list[Checkpoint]:
    """A run directory's checkpoints in training order, or the one model an entry names."""
    path = Path(entry.path)
    if is_run_dir(path):
        return run_dir_checkpoints(path, entry.select, entry.stages, entry.label)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} is a directory but neither a Hugging Face checkpoint (no config.json) "
                             "nor a run directory (no summary.json / config.yaml)")
        label = entry.label or (path.parent.name if path.name == "final" else path.name)
        return [Checkpoint(label=label, path=str(path))]
    if path.exists() or entry.path.startswith((".", "/", "~")) or entry.path.count("/") > 1:
        raise ValueError(f"{entry.path}: not found (expected a local directory or a hub id like org/name)")
    return [Checkpoint(label=entry.label or entry.path, path=entry.path)]


def run_dir_checkpoints(root: Path, select: list[str], stages: list[str] | None = None,
                        prefix: str | None = None) -> list[Checkpoint]:
    """base (step 0), then per training stage its step exports and its final/, labelled `<stage>@<N>`
    and `<stage>`; `step` is the global step (training steps of earlier stages + N)."""
    summary = json.loads((root / "summary.json").read_text()) if (root / "summary.json").is_file() else {}
    config = yaml.safe_load((root / "config.yaml").read_text()) if (root / "config.yaml").is_file() else {}
    entries = summary.get("stages") or [{"name": s.get("name"), "type": s.get("type"), "steps": 0}
                                        for s in (config or {}).get("stages", [])]
    names = [e["name"] for e in entries]
    missing = sorted(set(stages or []) - set(names))
    if missing:
        raise ValueError(f"{root}: no stage(s) {', '.join(missing)} (stages: {', '.join(names)})")
    name = lambda label: f"{prefix}/{label}" if prefix else label  # noqa: E731
    out: list[Checkpoint] = []
    if "base" in select:
        base = root / "base_model" if (root / "base_model" / "config.json").is_file() else \
            ((config or {}).get("model") or {}).get("name")
        if base is None:
            raise ValueError(f"{root}: no base model (neither base_model/ nor model.name in config.yaml)")
        out.append(Checkpoint(label=name("base"), path=str(base), stage=None, step=0))
    offset = 0
    for e in entries:
        if e.get("type") == "eval":
            continue  # an eval stage writes no model
        stage_dir = root / "stages" / e["name"]
        wanted = stages is None or e["name"] in stages
        if wanted and "steps" in select:
            for n, d in sorted((int(d.name.split("-")[1]), d) for d in (stage_dir / "exports").glob("step-*")
                               if d.name.split("-")[1].isdigit() and (d / "config.json").is_file()):
                out.append(Checkpoint(label=name(f"{e['name']}@{n}"), path=str(d), stage=e["name"], step=offset + n))
        steps = int(e.get("steps") or 0)
        if wanted and "finals" in select and (stage_dir / "final" / "config.json").is_file():
            out.append(Checkpoint(label=name(e["name"]), path=str(stage_dir / "final"), stage=e["name"],
                                  step=offset + steps))
        offset += steps
    if not out:
        raise ValueError(f"{root}: a run directory, but nothing to evaluate for select {select}"
                         + (f" and stages {stages}" if stages else "") + " (no finished stage yet?)")
    return out
