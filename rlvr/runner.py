"""Run a recipe: resolve the run directory, write config.yaml, run each stage in order, keep
summary.json current, print the result table. Resume skips finished stages and restarts the
running one from its newest checkpoint."""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from rlvr import preempt
from rlvr.config import Recipe, dump_recipe
from rlvr.rundir import RunDir, now_stamp, write_atomic
from rlvr.stages import STAGES
from rlvr.stages.context import StageContext
from rlvr.tracking import Tracker, quiet_libraries
from rlvr.world import World


class RunError(Exception):
    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def resolve_run_dir(recipe: Recipe, run_dir: Path | None, resume: bool) -> Path:
    if run_dir is not None:
        return Path(run_dir)
    pattern = recipe.run_dir
    if resume:
        if "{time}" not in pattern:
            return Path(pattern.format(name=recipe.name, time=""))
        parent = Path(pattern.format(name=recipe.name, time="X")).parent
        prefix = Path(pattern.format(name=recipe.name, time="")).name
        runs = sorted(p for p in parent.glob(prefix + "*") if (p / "summary.json").is_file())
        if not runs:
            raise RunError(f"--resume: no earlier run of '{recipe.name}' under {parent}/ ; pass --run-dir")
        return runs[-1]
    return Path(pattern.format(name=recipe.name, time=now_stamp()))


def _done(run: RunDir, stage: Any) -> bool:
    """A stage's output exists: final/ for a training stage, scores.json for an eval stage."""
    if stage.type == "eval":
        return (run.stage(stage.name) / "eval" / "scores.json").is_file()
    return run.final(stage.name).is_dir()


def _entry(summary: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((s for s in summary["stages"] if s["name"] == name), None)


def _plan(recipe: Recipe, run: RunDir, resume: bool, from_stage: str | None) -> tuple[dict[str, Any], set[str]]:
    """The summary to continue from and the names of stages to skip."""
    summary = run.read_summary()
    started = [s for s in summary["stages"] if s.get("status") != "pending"]
    if started and not (resume or from_stage):
        raise RunError(f"{run.root} already holds a run; pass --resume to continue it, or --run-dir for a new one")
    names = [s.name for s in recipe.stages]
    if from_stage is not None and from_stage not in names:
        raise RunError(f"--from-stage {from_stage}: no such stage (stages: {', '.join(names)})")
    skip: set[str] = set()
    for stage in recipe.stages:
        if from_stage is not None and names.index(stage.name) < names.index(from_stage):
            if not _done(run, stage) and stage.type != "eval":  # later stages never need an eval's output
                raise RunError(f"--from-stage {from_stage}: earlier stage '{stage.name}' has no output at "
                               f"{run.final(stage.name)}; run it first")
            skip.add(stage.name)
        elif resume and (e := _entry(summary, stage.name)) and e.get("status") == "done" \
                and _done(run, stage) and from_stage is None:
            skip.add(stage.name)
    fresh = {"stages": []}
    for stage in recipe.stages:
        old = _entry(summary, stage.name)
        fresh["stages"].append(old if (old and stage.name in skip) else
                               {"name": stage.name, "type": stage.type, "status": "pending", "steps": 0,
                                "metrics": {}, "output": None})
    return fresh, skip


def _input_model(recipe: Recipe, run: RunDir, index: int) -> str:
    stage = recipe.stages[index]
    base = str(run.base_model) if recipe.model.tiny is not None else recipe.model.name
    if stage.init == "base" or (stage.init == "previous" and index == 0):
        return base
    names = [s.name for s in recipe.stages]
    if stage.init == "previous" or stage.init in names:
        j = index - 1 if stage.init == "previous" else names.index(stage.init)
        # an eval stage makes no model: it hands on the model it evaluated
        return _input_model(recipe, run, j) if recipe.stages[j].type == "eval" else str(run.final(names[j]))
    return stage.init  # a path or hub id


def _needs_base_model(recipe: Recipe, run: RunDir) -> bool:
    """Some stage (an eval stage included) starts from the recipe's tiny model: `init: base`, or
    `previous`/a stage name that leads back to it. Stages that all start from paths never read it."""
    base = str(run.base_model)
    return recipe.model.tiny is not None and any(
        _input_model(recipe, run, i) == base for i in range(len(recipe.stages)))


def _prepare_base_model(recipe: Recipe, run: RunDir, world: World) -> None:
    """Build the tiny model into RUN/base_model once (rank 0), only when a stage reads it (~9 s on CPU)."""
    if not _needs_base_model(recipe, run):
        return
    if world.is_main and not (run.base_model / "config.json").is_file():
        from rlvr.models.tiny import build_tiny

        tmp = run.base_model.with_name("base_model.tmp")
        build_tiny(recipe.model.tiny, tmp)
        tmp.rename(run.base_model)
    world.barrier()


def run_recipe(recipe: Recipe, run_dir: Path | None = None, resume: bool = False,
               from_stage: str | None = None) -> RunDir:
    quiet_libraries()
    world = World.from_env()
    world.init()
    root = resolve_run_dir(recipe, run_dir, resume) if world.is_main else None
    run = RunDir(Path(world.broadcast_object(str(root) if root else None)))
    plan = None
    if world.is_main:
        run.root.mkdir(parents=True, exist_ok=True)
        try:
            plan = _plan(recipe, run, resume, from_stage)
        except RunError as err:
            plan = err
    plan = world.broadcast_object(plan)
    if isinstance(plan, RunError):
        raise plan
    summary, skip = plan
    if world.is_main:
        write_atomic(run.config, dump_recipe(recipe))
        run.write_summary(summary)
        preempt.clear(run.root)
    preempt.install_signal_handler()
    _prepare_base_model(recipe, run, world)
    tracker = Tracker(run.metrics, recipe.tracking, is_main=world.is_main, run_name=run.root.name,
                      config=recipe.model_dump(mode="json"), run_dir=run.root)
    world.print0(f"rlvr: run {recipe.name} -> {run.root} ({world.world_size} rank{'s' if world.world_size > 1 else ''})")
    try:
        for i, stage in enumerate(recipe.stages):
            entry = summary["stages"][i]
            if stage.name in skip:
                world.print0(f"[{stage.name}] skipped: already done ({entry.get('output')})")
                continue
            _run_stage(recipe, run, world, tracker, i, entry, summary, resume=resume or from_stage is not None)
    finally:
        tracker.close()
    world.print0(format_table(summary))
    world.print0(f"run directory: {run.root}")
    if world.is_main:
        _write_report(run)
    world.shutdown()
    return run


def _write_report(run: RunDir) -> None:
    """The run's report.md, scores.csv and plots (what `rlvr report RUN_DIR` writes). A report that
    cannot be drawn is reported, not raised: the run itself has finished and is on disk."""
    from rlvr.eval.report import ReportError, write_report

    try:
        print(f"report: {write_report(run.root)} (plots in {run.root / 'plots'})", flush=True)
    except (ReportError, OSError, ValueError) as err:
        print(f"report: not written ({err}); retry with `rlvr report {run.root}`", flush=True)


def _run_stage(recipe: Recipe, run: RunDir, world: World, tracker: Tracker, i: int, entry: dict[str, Any],
               summary: dict[str, Any], resume: bool) -> None:
    stage = recipe.stages[i]
    ctx = StageContext(recipe=recipe, cfg=stage, index=i, world=world, run=run,
                       input_model=_input_model(recipe, run, i), tracker=tracker, resume=resume)
    entry["status"] = "running"
    if world.is_main:
        run.stage(stage.name).mkdir(parents=True, exist_ok=True)
        run.write_summary(summary)
    world.print0(f"[{stage.name}] start: {stage.type} from {ctx.input_model}")
    t0 = time.time()
    try:
        result = importlib.import_module(STAGES[stage.type]).main(ctx)
    except preempt.Preempted as stop:
        entry["status"] = "preempted"
        if world.is_main:
            run.write_summary(summary)
        raise RunError(str(stop), exit_code=preempt.EXIT_PREEMPTED) from None
    except BaseException:
        entry["status"] = "failed"
        if world.is_main:
            run.write_summary(summary)
        raise
    entry.update(status="done", steps=result.steps, metrics=result.metrics, output=result.output)
    entry["metrics"]["seconds"] = round(time.time() - t0, 1)
    if world.is_main:
        run.write_summary(summary)
    world.print0(f"[{stage.name}] done in {time.time() - t0:.1f}s: {result.steps} steps -> {result.output}")


def format_table(summary: dict[str, Any]) -> str:
    rows = [("stage", "type", "status", "steps", "accuracy", "loss", "seconds")]
    for s in summary["stages"]:
        m = s.get("metrics") or {}
        acc = m.get("accuracy")
        loss = m.get("loss_last")
        rows.append((s["name"], s["type"], s["status"], str(s.get("steps", "")),
                     f"{acc:.3f}" if isinstance(acc, float) else "-",
                     f"{loss:.4f}" if isinstance(loss, float) else "-", str(m.get("seconds", "-"))))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows)
