"""The run directory contract (read by later stages, `rlvr eval`, `rlvr report`, and outside tools):

    RUN_DIR/config.yaml                           the fully resolved recipe
    RUN_DIR/metrics.jsonl                         one JSON object per logged step: stage, step, time, metrics
    RUN_DIR/summary.json                          {"stages": [{name, type, status, steps, metrics, output}]}
    RUN_DIR/base_model/                           the locally built model, for `model: {tiny: ...}`, when a
                                                  stage starts from it
    RUN_DIR/CHECKPOINT_REQUEST, CHECKPOINT_DONE   preemption request / acknowledgement (rlvr/preempt.py)
    RUN_DIR/stages/<name>/checkpoints/step-<N>/   resumable state: DeepSpeed shards, trainer_state.json, RNG
                                                  (atomic: written as .tmp-step-N, renamed)
    RUN_DIR/stages/<name>/final/                  Hugging Face checkpoint (safetensors + config + tokenizer)
    RUN_DIR/stages/<name>/exports/step-<N>/       Hugging Face checkpoint every `export_every` steps (atomic,
                                                  all kept); a run-directory sweep evaluates it as <name>@<N>
    RUN_DIR/stages/<name>/eval/                   an `eval` stage's sweep (summary `output`): spec.yaml,
                                                  scores.json, generations/, report.md, scores.csv, plots/
    RUN_DIR/stages/<name>/validation/step-<N>/    an rlvr stage's `validation` at step N: a one-checkpoint
                                                  sweep (spec.yaml, scores.json, generations/)
    RUN_DIR/stages/<name>/validation/             scores.json (every step merged), and at the stage's end
                                                  report.md, scores.csv, plots/
    RUN_DIR/stages/<name>/{rollouts,sft,pairs}.jsonl, stats.json   a distill stage's outputs (atomic; later
                                                  stages read them by name: data.from_stage, pairs_from)
    RUN_DIR/stages/<name>/generations/teacher/rollouts/<hash>.jsonl   a distill stage's chunk cache (+ .meta.json),
                                                  named by a hash of the teacher's files and the sampling settings
    RUN_DIR/stages/<name>/examples.jsonl          an rlvr stage's per-example accuracy per step (rlvr.rl.example_log)
    RUN_DIR/report.md, scores.csv, plots/         written at the end of `rlvr run` and by `rlvr report RUN_DIR`
                                                  (summary, eval-stage scores, training curves)

A stage's output is final/ for a training stage, eval/scores.json for an eval stage (docs/evaluation.md
gives the sweep and report layouts).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def base_model(self) -> Path:
        return self.root / "base_model"

    def stage(self, name: str) -> Path:
        return self.root / "stages" / name

    def final(self, name: str) -> Path:
        return self.stage(name) / "final"

    def checkpoints(self, name: str) -> Path:
        return self.stage(name) / "checkpoints"

    # ---------------------------------------------------------------- summary.json
    def read_summary(self) -> dict[str, Any]:
        if self.summary.is_file():
            return json.loads(self.summary.read_text())
        return {"stages": []}

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.summary, json.dumps(summary, indent=2) + "\n")


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file and rename, so readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def now_stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")
