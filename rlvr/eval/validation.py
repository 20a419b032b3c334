"""In-training validation of an rlvr stage (`validation: {every: N, ...}`): the policy scored every N
optimizer steps (at step 0 with at_start, and at the last step) by the stage's own engine, already
synced to the trainer's weights (no second engine, no reload), through the sweep's own code:
rlvr.eval.sweep.evaluate_checkpoint (templates, problems, the recipe's verifier or the validation's
`graders`, cache, score_records).

Each validation is a sweep of one checkpoint, labelled `<stage>@<N>` at the run's global step as a
sweep over the run directory labels the export of that step, written to
stages/<name>/validation/step-<N>/ (generations/, spec.yaml, scores.json); validation/scores.json
merges every step (`rlvr report` reads it). Validations run before the step's checkpoint, so a resumed
run finds those up to its resume step done and does not repeat them; those after it belong to a lost
trajectory and are deleted.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from rlvr.eval.benchmarks import load_problems
from rlvr.eval.options import RlvrValidation
from rlvr.eval.spec import Checkpoint, Sweep
from rlvr.eval.sweep import collect_scores, evaluate_checkpoint, print_report, summary_metrics
from rlvr.generate.config import GenerationConfig
from rlvr.rundir import write_atomic
from rlvr.verify.config import VerifierConfig
from rlvr.world import World


class Validation:
    def __init__(self, cfg: RlvrValidation, world: World, root: Path, *, stage: str, run_name: str,
                 step_offset: int, start: int, verifier: VerifierConfig, generation: GenerationConfig, dtype: str):
        """`root`: stages/<stage>/validation; `step_offset`: optimizer steps of the run's earlier stages;
        `start`: the step this stage (re)starts at; `verifier`: the recipe's; `generation` and `dtype`:
        the engine's, recorded in each step's spec.yaml."""
        self.cfg, self.world, self.root, self.stage = cfg, world, root, stage
        self.name, self.offset = f"{run_name}.{stage}.validation", step_offset
        self.verifier, self.generation, self.dtype = verifier, generation, dtype
        self.benchmarks, self.settings = cfg.resolve()
        self.problems = {name: load_problems(spec) for name, spec in self.benchmarks.items()}
        if world.is_main:
            for step, path in self.done():
                if step > start:
                    shutil.rmtree(path)
                    print(f"[{stage}] removed validation at step {step}: after the resume step {start}", flush=True)
            self.merge()
        world.barrier()

    def due(self, step: int, total: int) -> bool:
        return step == 0 and self.cfg.at_start or step > 0 and (step % self.cfg.every == 0 or step == total)

    def done(self) -> list[tuple[int, Path]]:
        found = [(int(d.name.split("-")[1]), d) for d in self.root.glob("step-*") if d.name.split("-")[1].isdigit()]
        return sorted(found)

    def run(self, generator: Any, verifier: Any, step: int) -> dict[str, float]:
        """Score the generator's current weights; returns val/<benchmark>/avg@k, val/accuracy (their
        mean), val/generated and val/seconds (all ranks), and prints one line."""
        world, t0 = self.world, time.perf_counter()
        out = self.root / f"step-{step}"
        ckpt = Checkpoint(label=f"{self.stage}@{step}", path=str(out), stage=self.stage, step=self.offset + step)
        sweep = Sweep(name=self.name, protocol=self.cfg.protocol, checkpoints=[ckpt],
                      benchmarks=self.benchmarks, settings=self.settings, verifier=self.verifier,
                      generation=self.generation, dtype=self.dtype, out=out,
                      chunk_size=self.cfg.chunk_size, spec=self.cfg.model_dump(mode="json", exclude={"generation"}),
                      graders=self.cfg.graders)
        if world.is_main:
            out.mkdir(parents=True, exist_ok=True)
            write_atomic(out / "spec.yaml", yaml.safe_dump(sweep.resolved(), sort_keys=False))
        stats: Counter = Counter()
        evaluate_checkpoint(sweep, ckpt, self.problems, world, stats, generator=generator, verifier=verifier, quiet=True)
        scores = None
        if world.is_main:
            scores = collect_scores(sweep, self.problems)
            write_atomic(out / "scores.json", json.dumps(scores, indent=2) + "\n")
            self.merge()
        scores = world.broadcast_object(scores)
        summary = summary_metrics(scores)
        avg = {name: summary[name] for name in self.benchmarks}
        metrics = {f"val/{name}/avg@k": v for name, v in avg.items()}
        metrics["val/accuracy"] = summary["accuracy"]
        # several graders: val/<grader>/accuracy, val/<grader>/<benchmark>, val/disagree
        metrics.update({f"val/{k}": v for k, v in summary.items() if "/" in k or k == "disagree"})
        metrics["val/generated"] = float(stats["generated"])
        metrics["val/seconds"] = time.perf_counter() - t0
        world.print0(f"[{self.stage}] validation at step {step}: "
                     + " | ".join(f"{name} {v:.3f}" for name, v in avg.items())
                     + f" | accuracy {metrics['val/accuracy']:.3f}"
                     + "".join(f" | {k} {v:.3f}" for k, v in summary.items() if k.endswith("accuracy") and "/" in k)
                     + f" (avg@k; generated {stats['generated']}, "
                     f"{metrics['val/seconds']:.1f} s) -> {out}")
        return metrics

    def merge(self) -> None:
        """Rank 0: validation/scores.json, every step's rows in step order (an eval directory for
        `rlvr report`)."""
        parts = [json.loads((d / "scores.json").read_text()) for _, d in self.done() if (d / "scores.json").is_file()]
        if not parts:
            return
        merged = {**parts[0], "checkpoints": [c for p in parts for c in p["checkpoints"]],
                  "rows": [r for p in parts for r in p["rows"]]}
        if any("disagreements" in p for p in parts):
            merged["disagreements"] = [d for p in parts for d in p.get("disagreements", [])]
        write_atomic(self.root / "scores.json", json.dumps(merged, indent=2) + "\n")

    def report(self) -> None:
        """Rank 0, at the end of the stage: validation/report.md and plots (score vs step)."""
        if not (self.world.is_main and (self.root / "scores.json").is_file()):
            return
        try:
            print_report(self.root)
        except Exception as err:  # the scores are written; a plotting failure must not fail training
            print(f"[{self.stage}] validation report not written: {err!r}", flush=True)
