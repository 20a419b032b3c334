"""Run a recipe: resolve and lock the run directory, check the recipe against its config.yaml, run
each stage in order, keep summary.json current, print the result table.

The records stay true to the weights on disk: --resume skips finished stages and continues the
running one from its newest checkpoint, refusing settings that differ from config.yaml (unless
--accept-changes, for unfinished stages only); --from-stage NAME re-runs NAME and every later stage
from step 0, moving their old outputs and records to RUN_DIR/superseded/<time>/. Nothing in the run
directory changes until the first stage starts."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlvr import preempt
from rlvr.config import Recipe, dump_recipe
from rlvr.rundir import LockHeld, RunDir, describe_holder, now_stamp, release_lock, take_lock, write_atomic
from rlvr.schema import UserError
from rlvr.stages import STAGES
from rlvr.stages.context import StageContext
from rlvr.tracking import Tracker, quiet_libraries
from rlvr.world import World


class RunError(Exception):
    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def resolve_run_dir(recipe: Recipe, run_dir: Path | None, existing: bool) -> Path:
    """--run-dir, or the recipe's run_dir pattern: a new directory, or with `existing` (--resume,
    --from-stage) the newest run of the recipe."""
    if run_dir is not None:
        return Path(run_dir)
    pattern = recipe.run_dir
    if existing:
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
    """A stage's output exists: final/ for a training stage, scores.json for an eval stage, sft.jsonl for a
    distill stage."""
    if stage.type == "eval":
        return (run.stage(stage.name) / "eval" / "scores.json").is_file()
    if stage.type == "distill":
        return (run.stage(stage.name) / "sft.jsonl").is_file()
    return run.final(stage.name).is_dir()


def _entry(summary: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((s for s in summary["stages"] if s["name"] == name), None)


# Settings that do not change a stage's outputs: they may differ from config.yaml on --resume.
FREE_KEYS = {"name", "run_dir", "tracking"}
FREE_STAGE_KEYS = {"save_every", "keep_checkpoints", "export_every"}


def _short(value: Any) -> str:
    text = "(absent)" if value is _ABSENT else json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= 60 else text[:57] + "..."


_ABSENT = object()


def _diff(old: Any, new: Any, path: str) -> list[str]:
    """`path: old -> new` for every leaf that differs (dicts walked key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for k in {**old, **new}
                for line in _diff(old.get(k, _ABSENT), new.get(k, _ABSENT), f"{path}.{k}" if path else k)]
    return [] if old == new else [f"{path}: {_short(old)} -> {_short(new)}"]


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str | None, list[str]]:
    """The differences between two resolved recipes (config.yaml's and this one's), by the stage they
    belong to (None: the recipe-wide sections, which every stage uses), each as a dotted `--set` path
    with its old and new value. Settings in FREE_KEYS / FREE_STAGE_KEYS are left out."""
    out: dict[str | None, list[str]] = {}
    rest = lambda d: {k: v for k, v in d.items() if k not in FREE_KEYS | {"stages"}}  # noqa: E731
    if lines := _diff(rest(old), rest(new), ""):
        out[None] = lines
    old_stages, new_stages = ({s["name"]: s for s in r.get("stages", [])} for r in (old, new))
    if list(old_stages) != [n for n in new_stages if n in old_stages]:
        out.setdefault(None, []).append(f"stages (order): {list(old_stages)} -> {list(new_stages)}")
    for name in {**old_stages, **new_stages}:
        a, b = (({k: v for k, v in s.items() if k not in FREE_STAGE_KEYS} if s else _ABSENT)
                for s in (old_stages.get(name), new_stages.get(name)))
        if lines := _diff(a, b, f"stages.{name}"):
            out.setdefault(name if name in new_stages else None, []).extend(lines)
    return out


@dataclass
class Plan:
    """What this invocation does to the run directory."""

    summary: dict[str, Any]  # as on disk; a stage's entry is replaced when that stage starts
    skip: set[str]           # finished stages whose outputs are reused
    rerun: set[str]          # --from-stage: these start at step 0, their old outputs moved aside first
    changes: list[str]       # accepted differences from config.yaml (recorded in summary.json)
    stamp: str               # names RUN_DIR/superseded/<stamp>/


def _plan(recipe: Recipe, run: RunDir, resume: bool, from_stage: str | None, accept_changes: bool) -> Plan:
    summary = run.read_summary()
    started = [s for s in summary["stages"] if s.get("status") != "pending"]
    if started and not (resume or from_stage):
        raise RunError(f"{run.root} already holds a run; pass --resume to continue it, or --run-dir for a new one")
    names = [s.name for s in recipe.stages]
    if from_stage is not None and from_stage not in names:
        raise RunError(f"--from-stage {from_stage}: no such stage (stages: {', '.join(names)})")
    skip: set[str] = set()
    rerun: set[str] = set()
    for stage in recipe.stages:
        if from_stage is not None and names.index(stage.name) < names.index(from_stage):
            if not _done(run, stage) and stage.type != "eval":  # later stages never need an eval's output
                raise RunError(f"--from-stage {from_stage}: earlier stage '{stage.name}' has no output at "
                               f"{run.final(stage.name)}; run it first")
            skip.add(stage.name)
        elif from_stage is not None:
            rerun.add(stage.name)
        elif resume and (e := _entry(summary, stage.name)) and e.get("status") == "done" and _done(run, stage):
            skip.add(stage.name)
    changes = _check_changes(recipe, run, skip, rerun, accept_changes)
    entries = [_entry(summary, s.name) or {"name": s.name, "type": s.type, "status": "pending", "steps": 0,
                                           "metrics": {}, "output": None} for s in recipe.stages]
    return Plan({**summary, "stages": entries}, skip, rerun, changes, now_stamp())


def _check_changes(recipe: Recipe, run: RunDir, skip: set[str], rerun: set[str], accept: bool) -> list[str]:
    """Refuse settings that differ from config.yaml where they would make it lie: in a stage whose
    outputs are reused (any recipe-wide setting then too), or, without --accept-changes, in a stage
    that continues from its checkpoints. Re-run stages may change freely. Returns what is accepted."""
    if not run.config.is_file():
        return []
    changes = config_changes(yaml.safe_load(run.config.read_text()) or {}, yaml.safe_load(dump_recipe(recipe)))
    names = [s.name for s in recipe.stages]
    refused, unaccepted, accepted, first = [], [], [], None
    for owner, lines in changes.items():
        affected = {owner} if owner else set(names)  # a recipe-wide setting is every stage's
        if affected & skip:
            refused += lines
            first = min([first or names[-1], owner or names[0]], key=names.index)
        elif affected <= rerun or accept:
            accepted += lines
        else:
            unaccepted += lines
    if refused:
        raise RunError(f"the recipe differs from {run.config} where finished stages' outputs would be reused:\n  "
                       + "\n  ".join(refused) + f"\nre-run from the first changed stage (--from-stage {first}), "
                       "drop the changes, or start a new run (--run-dir)")
    if unaccepted:
        raise RunError(f"the recipe differs from {run.config} for stage(s) that would continue from their "
                       "checkpoints:\n  " + "\n  ".join(unaccepted) +
                       "\npass --accept-changes to continue with the new settings (both are recorded), "
                       "or drop the changes")
    return accepted


def _input_model(recipe: Recipe, run: RunDir, index: int) -> str:
    stage = recipe.stages[index]
    base = str(run.base_model) if recipe.model.tiny is not None else recipe.model.name
    if stage.init == "base" or (stage.init == "previous" and index == 0):
        return base
    names = [s.name for s in recipe.stages]
    if stage.init == "previous" or stage.init in names:
        return _handed_on(recipe, run, index - 1 if stage.init == "previous" else names.index(stage.init))
    return stage.init  # a path or hub id


def _handed_on(recipe: Recipe, run: RunDir, j: int) -> str:
    """The model stage j hands on: a training stage's final/; an eval stage makes no model and hands on the
    one it evaluated; a distill stage makes data, not a model, and hands on the model before it (its own
    input model is the teacher)."""
    kind = recipe.stages[j].type
    if kind == "eval":
        return _input_model(recipe, run, j)
    if kind == "distill":
        return (str(run.base_model) if recipe.model.tiny is not None else recipe.model.name) if j == 0 \
            else _handed_on(recipe, run, j - 1)
    return str(run.final(recipe.stages[j].name))


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
               from_stage: str | None = None, accept_changes: bool = False) -> RunDir:
    quiet_libraries()
    world = World.from_env()
    world.init()
    opened: tuple[RunDir, Plan] | RunError | None = None
    if world.is_main:
        try:
            opened = _open_run(recipe, run_dir, resume, from_stage, accept_changes)
        except RunError as err:
            opened = err
    opened = world.broadcast_object(opened)
    if isinstance(opened, RunError):
        raise opened
    run, plan = opened
    previous_handlers = preempt.install_signal_handler()
    try:
        if world.is_main:
            if not run.summary.is_file():
                run.write_summary(plan.summary)
            preempt.clear(run.root)
        _prepare_base_model(recipe, run, world)
        tracker = Tracker(run.metrics, recipe.tracking, is_main=world.is_main, run_name=run.root.name,
                          config=recipe.model_dump(mode="json"), run_dir=run.root)
        world.print0(f"rlvr: run {recipe.name} -> {run.root} ({world.world_size} rank{'s' if world.world_size > 1 else ''})")
        try:
            last = None
            for i, stage in enumerate(recipe.stages):
                entry = plan.summary["stages"][i]
                if stage.name in plan.skip:
                    world.print0(f"[{stage.name}] skipped: already done ({entry.get('output')})")
                    continue
                if reason := preempt.requested(run.root, world):  # asked between stages: stop before this one
                    before = _entry(plan.summary, last) if last else {"steps": 0, "output": str(run.root)}
                    preempt.acknowledge(run.root, last or "", before["steps"], Path(before["output"]), world)
                    raise RunError(f"stopped before stage {stage.name} because {preempt.WHY[reason]}; "
                                   "continue with `rlvr run ... --resume`", exit_code=preempt.EXIT_CODES[reason])
                _run_stage(recipe, run, world, tracker, i, plan, starts_run=last is None)
                last = stage.name
        finally:
            tracker.close()
    finally:
        preempt.restore_signal_handlers(previous_handlers)
        if world.is_main:
            release_lock(run.lock)
    world.print0(format_table(plan.summary))
    world.print0(f"run directory: {run.root}")
    if world.is_main:
        _write_report(run)
    world.shutdown()
    return run


def _open_run(recipe: Recipe, run_dir: Path | None, resume: bool, from_stage: str | None,
              accept_changes: bool) -> tuple[RunDir, Plan]:
    """Rank 0: the run directory, locked for this process, and the plan (RunError: nothing changed)."""
    run = RunDir(resolve_run_dir(recipe, run_dir, existing=resume or from_stage is not None))
    if run.root.exists() and not run.root.is_dir():
        raise RunError(f"--run-dir {run.root} is a file; pass a directory")
    run.root.mkdir(parents=True, exist_ok=True)
    try:
        stale = take_lock(run.lock)
    except LockHeld as err:
        raise RunError(str(err)) from None
    if stale is not None:
        print(f"rlvr: cleared a stale lock {run.lock} ({describe_holder(stale)}; that process is gone)", flush=True)
    try:
        return run, _plan(recipe, run, resume, from_stage, accept_changes)
    except BaseException:
        release_lock(run.lock)
        raise


def _begin_attempt(recipe: Recipe, run: RunDir, plan: Plan) -> None:
    """Rank 0, as the first stage this invocation runs starts (not before: a run that fails earlier
    changes nothing): move --from-stage's stages' old outputs, their metrics rows and the old summary
    and config to superseded/<stamp>/, note the accepted changes in summary.json, write config.yaml."""
    moved = run.superseded(plan.stamp)
    text = dump_recipe(recipe)
    if plan.rerun:
        moved.mkdir(parents=True, exist_ok=True)
        if run.summary.is_file():
            shutil.copy2(run.summary, moved / "summary.json")
        for name in sorted(plan.rerun):
            if run.stage(name).exists():
                (moved / "stages").mkdir(exist_ok=True)
                run.stage(name).rename(moved / "stages" / name)
        run.move_metric_rows(lambda row: row.get("stage") in plan.rerun, moved / "metrics.jsonl")
        for entry in plan.summary["stages"]:
            if entry["name"] in plan.rerun:
                entry.update(status="pending", steps=0, metrics={}, output=None)
    if run.config.is_file() and run.config.read_text() != text:
        moved.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run.config, moved / "config.yaml")
    write_atomic(run.config, text)
    if plan.rerun or plan.changes:
        rerun = [s.name for s in recipe.stages if s.name in plan.rerun]
        plan.summary.setdefault("changes", []).append(
            {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "rerun": rerun, "changed": plan.changes,
             "superseded": str(moved.relative_to(run.root)) if moved.exists() else None})
        print(f"rlvr: {'re-running ' + ', '.join(rerun) if rerun else 'continuing'}"
              f"{' with ' + str(len(plan.changes)) + ' changed setting(s)' if plan.changes else ''}"
              f"{'; earlier outputs and records moved to ' + str(moved) if moved.exists() else ''}", flush=True)


def _write_report(run: RunDir) -> None:
    """The run's report.md, scores.csv and plots (what `rlvr report RUN_DIR` writes). A report that
    cannot be drawn is reported, not raised: the run itself has finished and is on disk."""
    from rlvr.eval.report import ReportError, write_report

    try:
        print(f"report: {write_report(run.root)} (plots in {run.root / 'plots'})", flush=True)
    except (ReportError, OSError, ValueError) as err:
        print(f"report: not written ({err}); retry with `rlvr report {run.root}`", flush=True)


def _run_stage(recipe: Recipe, run: RunDir, world: World, tracker: Tracker, i: int, plan: Plan,
               starts_run: bool) -> None:
    stage = recipe.stages[i]
    entry = plan.summary["stages"][i]
    # continue from checkpoints only a stage that ran before and is not re-run from its inputs
    resume = stage.name not in plan.rerun and entry.get("status", "pending") != "pending"
    if world.is_main:
        if starts_run:
            _begin_attempt(recipe, run, plan)
        entry.clear()
        entry.update(name=stage.name, type=stage.type, status="running", steps=0, metrics={}, output=None)
        run.stage(stage.name).mkdir(parents=True, exist_ok=True)
        run.write_summary(plan.summary)
    world.barrier()
    ctx = StageContext(recipe=recipe, cfg=stage, index=i, world=world, run=run,
                       input_model=_input_model(recipe, run, i), tracker=tracker, resume=resume,
                       superseded=run.superseded(plan.stamp))
    world.print0(f"[{stage.name}] start: {stage.type} from {ctx.input_model}")
    t0 = time.time()
    try:
        result = importlib.import_module(STAGES[stage.type]).main(ctx)
    except preempt.Preempted as stop:
        _stopped(run, world, plan.summary, entry, stop.reason)
        raise RunError(str(stop), exit_code=preempt.EXIT_CODES[stop.reason]) from None
    except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: stopped at once, without a checkpoint
        reason = preempt.signalled() or preempt.INTERRUPTED
        _stopped(run, world, plan.summary, entry, reason)
        raise RunError(f"stage {stage.name}: stopped at once ({reason}); `rlvr run ... --resume` continues from "
                       "its newest checkpoint", exit_code=preempt.EXIT_CODES[reason]) from None
    except UserError as err:  # a mistake in the recipe's inputs: the message names it and the fix
        _stopped(run, world, plan.summary, entry, "failed")
        if os.environ.get("RLVR_DEBUG"):
            raise
        raise RunError(f"stage {stage.name}: {err}", exit_code=2) from None
    except BaseException:
        entry["status"] = "failed"
        if world.is_main:
            run.write_summary(plan.summary)
        raise
    entry.update(status="done", steps=result.steps, metrics=result.metrics, output=result.output)
    entry["metrics"]["seconds"] = round(time.time() - t0, 1)
    if world.is_main:
        run.write_summary(plan.summary)
    world.print0(f"[{stage.name}] done in {time.time() - t0:.1f}s: {result.steps} steps -> {result.output}")


def _stopped(run: RunDir, world: World, summary: dict[str, Any], entry: dict[str, Any], reason: str) -> None:
    entry["status"] = reason
    if world.is_main:
        run.write_summary(summary)


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
