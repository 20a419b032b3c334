"""The `rlvr` command line.

Parsing and recipe validation happen here, before torch, DeepSpeed or vLLM are imported, so
`rlvr --help` and config errors answer in well under a second. Heavy modules are imported only
inside the verb that needs them.

Exit codes: 0 success, 1 runtime failure, 2 bad input (config errors, missing files, a run directory
locked by another run, a recipe that differs from the run's config.yaml), 75 `rlvr run` checkpointed
and stopped for preemption (CHECKPOINT_REQUEST, SIGUSR1, SIGTERM), 130 `rlvr run` interrupted by Ctrl-C
(checkpointed at a step boundary, or stopped at once on a second Ctrl-C); 75 and 130 continue with
`rlvr run ... --resume`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value by dotted path, e.g. --set stages.sft.optim.lr=2e-5 "
        "(list items by index or stage name; VALUE is parsed as YAML); repeatable",
    )


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a recipe's stages in order",
        description="Run every stage of RECIPE in order, writing the run directory "
        "(config.yaml, metrics.jsonl, stages/<name>/..., summary.json).",
    )
    p.add_argument("recipe", type=Path, help="recipe YAML file")
    _add_overrides(p)
    p.add_argument("--run-dir", type=Path, help="run directory (default: the recipe's run_dir)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue a run: finished stages are skipped, the running one restarts from its last "
        "checkpoint (without --run-dir: the newest run of this recipe)",
    )
    p.add_argument("--from-stage", metavar="NAME",
                   help="re-run stage NAME and every later stage from their inputs, reusing earlier stages' "
                   "outputs; the re-run stages' old outputs and records move to RUN_DIR/superseded/<time>/")
    p.add_argument("--accept-changes", action="store_true",
                   help="with --resume: continue unfinished stages with settings that differ from the run's "
                   "config.yaml (the old one is kept under RUN_DIR/superseded/, the change noted in summary.json)")


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check recipes without running them")
    p.add_argument("recipes", type=Path, nargs="+", help="recipe YAML files")
    _add_overrides(p)


def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="judge predictions against gold answers with the shared math verifier",
        description="Read JSONL rows with `prediction` and `gold` (optional `id`, `correct`), "
        "write them back with `score`, `answer`, `reason`, `seconds`.",
    )
    p.add_argument("--in", dest="inp", type=Path, required=True, help="input JSONL")
    p.add_argument("--out", type=Path, required=True, help="output JSONL")
    p.add_argument("--workers", type=int, default=None, help="symbolic-fallback worker processes")
    p.add_argument("--timeout", type=float, default=None, help="hard per-item CPU-time limit of the symbolic fallback, seconds")
    p.add_argument("--policy", default=None, help="grading policy name (see docs/verifier.md)")


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="report.md, scores.csv and plots for a run or eval directory",
        description="Write DIR/report.md (checkpoints x benchmarks with the grader, template and sampling "
        "of every column), DIR/scores.csv and DIR/plots/*.png. DIR is an eval output directory "
        "(scores.json, from `rlvr eval`) or a run directory (summary.json, metrics.jsonl, eval stages).",
    )
    p.add_argument("directory", type=Path, metavar="RUN_OR_EVAL_DIR", help="run directory or eval output directory")
    p.add_argument("--smooth", type=float, default=None, metavar="W",
                   help="EMA weight in [0, 1) for training curves; 0 = raw (default: 0.8 for stages "
                   "that logged 50 steps or more, else raw)")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluation sweeps over MATH500/AIME/AMC/Minerva/OlympiadBench",
        description="Evaluate the checkpoints of SPEC on its benchmarks (docs/evaluation.md): generations "
        "are cached per checkpoint, benchmark, setting and seed under OUT/generations/, so a rerun "
        "generates only what is missing and another grader re-judges without generating; then "
        "OUT/scores.json and the report.",
    )
    p.add_argument("spec", type=Path, help="eval spec YAML (e.g. evals/one_shot_rlvr.yaml)")
    _add_overrides(p)
    only = p.add_mutually_exclusive_group()
    only.add_argument("--checkpoint-index", type=int, metavar="I",
                      help="generate only checkpoint I's caches (0-based, in spec order; a SLURM array task); "
                      "writes no scores")
    only.add_argument("--score-only", action="store_true",
                      help="generate nothing: score every cache, write scores.json and the report; "
                      "fails listing the caches that are missing")
    only.add_argument("--list-checkpoints", action="store_true",
                      help="print the resolved checkpoints (index, label, cache files still missing, path) "
                      "and exit; loads no model and writes nothing (slurm/eval.sh sizes its array with it)")


def _add_plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="per-stage, per-GPU memory estimate of a recipe (docs/memory.md)",
        description="Print, per stage and per GPU, the planned memory of RECIPE: weights, gradients, "
        "optimizer states, activations, logits, reference model and vLLM's share, and whether it fits. "
        "Exit 0: every stage fits; 1: a stage does not (a WARNING names it and the knobs to turn); "
        "2: bad input. Loads no model and imports no torch.",
    )
    p.add_argument("recipe", type=Path, help="recipe YAML file")
    _add_overrides(p)
    p.add_argument("--gpus", type=int, default=8, metavar="N", help="world size: GPUs over all nodes (default 8)")
    p.add_argument("--gpu-memory", default="80GiB", metavar="SIZE",
                   help="memory per GPU (default 80GiB): a number with GiB, GB or G (all 2**30 bytes: an '80GB' "
                   "H100 has 80 GiB), MiB/MB/M or TiB/TB/T; a bare number is GiB")


def _add_select(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "select",
        help="rank a pool's examples by historical accuracy variance and write 1-shot datasets (1-shot RLVR §2)",
        description="Score each example of POOL by the variance of its per-epoch training accuracy "
        "(Wang et al. 2025, eq. 2), read from SOURCE: a run directory (its RL stage's examples.jsonl), an "
        "examples.jsonl, or an accuracy JSON in the released acc_step_500.json format. Writes "
        "OUT/ranking.jsonl (best first; ties keep SOURCE's order) and OUT/pi_<r>.jsonl for r = 1..K, the "
        "example repeated to fill a batch. docs/algorithms.md, 'Selecting the example'.",
    )
    p.add_argument("source", type=Path, metavar="SOURCE", help="run directory, examples.jsonl or accuracy .json")
    p.add_argument("--data", type=Path, required=True, metavar="POOL",
                   help="the pool the accuracies were measured on (.jsonl/.json/.parquet; problem/answer or verl fields)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument("--method", default="variance", choices=["variance", "std"],
                   help="score: population variance (the paper's eq. 2, default) or its square root (the released code)")
    p.add_argument("--top", type=int, default=1, metavar="K", help="write pi_1..pi_K (default 1; 0: ranking only)")
    p.add_argument("--repeat", type=int, default=128, metavar="N",
                   help="rows per pi file, each its own group (default 128, the released pi1_r128)")
    p.add_argument("--stage", metavar="NAME", help="the RL stage to read when a run has several")
    p.add_argument("--preset", choices=["problem_solution", "verl"],
                   help="POOL's fields (default: problem/answer, else verl's prompt.0.content/reward_model.ground_truth)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlvr",
        description="Reasoning-RL post-training for small language models: "
        "mid-training, SFT, rollout DPO and RLVR recipes on DeepSpeed + vLLM.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    _add_run(sub)
    _add_validate(sub)
    _add_verify(sub)
    _add_eval(sub)
    _add_report(sub)
    _add_plan(sub)
    _add_select(sub)
    return parser


def _cmd_validate(args: argparse.Namespace) -> int:
    from rlvr.config import ConfigError, load_recipe, missing_inputs

    status = EXIT_OK
    for path in args.recipes:
        try:
            recipe = load_recipe(path, args.overrides)
            missing = missing_inputs(recipe)
            if missing:
                raise ConfigError(missing, path)
        except ConfigError as err:
            print(err.render(), file=sys.stderr)
            status = EXIT_USAGE
            continue
        kinds = ", ".join(f"{s.name}:{s.type}" for s in recipe.stages)
        print(f"{path}: ok ({recipe.name}; stages {kinds})")
    return status


def _cmd_run(args: argparse.Namespace) -> int:
    from rlvr.config import ConfigError, load_recipe, missing_inputs

    try:
        recipe = load_recipe(args.recipe, args.overrides)
        missing = missing_inputs(recipe)
        if missing:
            raise ConfigError(missing, args.recipe)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_USAGE
    try:
        from rlvr.runner import RunError, run_recipe  # heavy imports start here

        try:
            run_recipe(recipe, run_dir=args.run_dir, resume=args.resume, from_stage=args.from_stage,
                       accept_changes=args.accept_changes)
            code = EXIT_OK
        except RunError as err:
            print(f"rlvr run: {err}", file=sys.stderr)
            code = err.exit_code
    except KeyboardInterrupt:  # Ctrl-C outside a stage's steps (start-up, between checks): nothing to save
        from rlvr.preempt import EXIT_INTERRUPTED

        print("rlvr run: interrupted (Ctrl-C)", file=sys.stderr)
        code = EXIT_INTERRUPTED
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun, leave without interpreter teardown: DeepSpeed ZeRO-3 can abort in its
        # destructors after all work is done (environment.md §2), turning a finished run into rc 1.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _cmd_plan(args: argparse.Namespace) -> int:
    from rlvr.config import ConfigError, load_recipe
    from rlvr.plan import PlanError, format_plan, parse_memory, plan_recipe

    try:
        gpu_memory = parse_memory(args.gpu_memory)
        if args.gpus < 1:
            raise PlanError(f"--gpus must be >= 1, got {args.gpus}")
        recipe = load_recipe(args.recipe, args.overrides)
        plans = plan_recipe(recipe, args.gpus, gpu_memory)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_USAGE
    except PlanError as err:
        print(f"rlvr plan: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(format_plan(plans, f"rlvr plan {args.recipe} ({recipe.name})"))
    return EXIT_OK if all(p.fits for p in plans) else EXIT_FAIL


def _cmd_verify(args: argparse.Namespace) -> int:
    from rlvr.verify.cli import run as verify_run

    return verify_run(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from rlvr.eval.report import ReportError, write_report

    try:
        path = write_report(args.directory, smooth=args.smooth)
    except ReportError as err:
        print(f"rlvr report: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(path)
    return EXIT_OK


def _cmd_eval(args: argparse.Namespace) -> int:
    from rlvr.config import ConfigError
    from rlvr.eval.spec import load_spec, resolve_sweep

    try:
        sweep = resolve_sweep(load_spec(args.spec, args.overrides), args.spec)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_USAGE
    from rlvr.data.sources import DataError
    from rlvr.eval.sweep import SweepError, list_checkpoints, run_sweep
    from rlvr.schema import UserError

    if args.list_checkpoints:
        try:
            print(list_checkpoints(sweep))
        except DataError as err:
            print(f"rlvr eval: {err}", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK
    from rlvr.world import World

    world = World.from_env()
    world.init()
    try:
        run_sweep(sweep, world, checkpoint_index=args.checkpoint_index, score_only=args.score_only)
        code = EXIT_OK
    except (SweepError, UserError) as err:
        print(f"rlvr eval: {err}", file=sys.stderr)
        code = EXIT_USAGE if isinstance(err, UserError) else EXIT_FAIL
    if world.distributed:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # as in `run`: skip interpreter teardown under torchrun
    return code


def _cmd_select(args: argparse.Namespace) -> int:
    from rlvr.select import SelectError, select, summary

    try:
        sel = select(args.source, args.data, args.out, method=args.method, top=args.top, repeat=args.repeat,
                     stage=args.stage, preset=args.preset)
    except SelectError as err:
        print(f"rlvr select: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(summary(sel, args.top, args.method, args.out))
    return EXIT_OK


COMMANDS = {
    "run": _cmd_run,
    "validate": _cmd_validate,
    "verify": _cmd_verify,
    "eval": _cmd_eval,
    "report": _cmd_report,
    "plan": _cmd_plan,
    "select": _cmd_select,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from rlvr import __version__

        print(f"rlvr {__version__}")
        return EXIT_OK
    if args.verb is None:
        parser.print_help()
        return EXIT_USAGE
    return COMMANDS[args.verb](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
