"""The `eval` stage: evaluate the stage's input model with a protocol, inside a recipe.

It runs the same sweep as `rlvr eval` (rlvr/eval/sweep.py) on one checkpoint, the stage's input model
(`init: previous` = the latest training stage's output, or the recipe model), judged by the recipe's
`verifier` (or by each of its `graders`), and writes the same layout under RUN_DIR/stages/<name>/eval/
(generations/ cache, spec.yaml, scores.json, report). The stage trains nothing and produces no model:
the stage after it starts from the previous training stage's output. Its summary metrics are
`accuracy` (mean avg@k over its benchmarks) and each benchmark's avg@k, under the first grader; with
several `graders` also each other grader's (`<grader>/accuracy`) and `disagree`
(rlvr.eval.sweep.summary_metrics). The runner counts it done once scores.json exists, and a rerun
reuses its cache.

Launch: as part of `rlvr run RECIPE` (one process, or torchrun: the sweep shards across ranks).
"""

from __future__ import annotations

from pathlib import Path

from rlvr.eval.spec import Checkpoint, SpecError, Sweep, resolve_benchmarks
from rlvr.stages.context import StageContext, StageResult


def checkpoint_of(ctx: StageContext) -> Checkpoint:
    """The input model, labelled by the stage that made it (or `base`), at the run's global step
    (training steps of the stages up to it, as in a sweep over the run directory)."""
    stages, summary = ctx.recipe.stages, {s["name"]: s for s in ctx.run.read_summary()["stages"]}
    for i, s in enumerate(stages):
        if str(ctx.run.final(s.name)) == ctx.input_model:
            step = sum(int(summary.get(t.name, {}).get("steps") or 0) for t in stages[: i + 1])
            return Checkpoint(label=s.name, path=ctx.input_model, stage=s.name, step=step)
    if ctx.input_model in (str(ctx.run.base_model), ctx.recipe.model.name):
        return Checkpoint(label="base", path=ctx.input_model, step=0)
    return Checkpoint(label=Path(ctx.input_model).name, path=ctx.input_model)


def build_sweep(ctx: StageContext, checkpoint: Checkpoint) -> Sweep:
    cfg, problems = ctx.cfg, []
    benchmarks, settings = resolve_benchmarks(cfg, problems)
    if problems:
        raise SpecError([f"stages.{cfg.name}.{p}" for p in problems], "recipe")
    return Sweep(name=f"{ctx.recipe.name}.{cfg.name}", protocol=cfg.protocol, checkpoints=[checkpoint],
                 benchmarks=benchmarks, settings=settings, verifier=ctx.recipe.verifier, generation=cfg.generation,
                 dtype=ctx.recipe.model.dtype, out=ctx.run.stage(cfg.name) / "eval", chunk_size=cfg.chunk_size,
                 spec=cfg.model_dump(mode="json"), graders=cfg.graders)


def main(ctx: StageContext) -> StageResult:
    from rlvr.eval.sweep import run_sweep, stale_caches, summary_metrics

    checkpoint = checkpoint_of(ctx)
    sweep = build_sweep(ctx, checkpoint)
    if ctx.world.is_main and (stale := stale_caches(sweep.out, checkpoint)):
        # the stage before was rerun (--from-stage, or a run dir reused): its cached answers are not this model's
        print(f"[{ctx.name}] {len(stale) // 2} cached file(s) came from earlier weights of {checkpoint.path}: "
              "regenerating them", flush=True)
        for path in stale:
            path.unlink(missing_ok=True)
    ctx.world.barrier()
    scores = run_sweep(sweep, ctx.world)
    scores = ctx.world.broadcast_object(scores)
    metrics = summary_metrics(scores)
    ctx.tracker.log(ctx.name, 0, {f"eval/{k}": v for k, v in metrics.items()})
    return StageResult(steps=0, metrics=metrics, output=str(sweep.out))
