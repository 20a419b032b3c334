"""The run directory contract (read by later stages, `rlvr eval`, `rlvr report`, and outside tools):

    RUN_DIR/config.yaml                           the fully resolved recipe
    RUN_DIR/metrics.jsonl                         one JSON object per logged step: stage, step, time, metrics
    RUN_DIR/summary.json                          {"stages": [{name, type, status, steps, metrics, output}]}
    RUN_DIR/base_model/                           the locally built model, for `model: {tiny: ...}`, when a
                                                  stage starts from it
    RUN_DIR/CHECKPOINT_REQUEST, CHECKPOINT_DONE   preemption request / acknowledgement (rlvr/preempt.py)
    RUN_DIR/rlvr.lock                             the PID, host and SLURM job of the `rlvr run` working here
                                                  (one at a time; a lock of a process that is gone is cleared)
    RUN_DIR/superseded/<time>/                    what a later attempt replaced, moved aside, never deleted:
                                                  stages/<name>/ of stages re-run by --from-stage, their
                                                  metrics.jsonl rows and rows of steps redone after a resume,
                                                  the config.yaml and summary.json before the change
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
gives the sweep and report layouts). config.yaml describes the outputs on disk: the runner rewrites it
only when a stage starts with those settings.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
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

    @property
    def lock(self) -> Path:
        return self.root / "rlvr.lock"

    def superseded(self, stamp: str) -> Path:
        return self.root / "superseded" / stamp

    # ---------------------------------------------------------------- summary.json
    def read_summary(self) -> dict[str, Any]:
        if self.summary.is_file():
            return json.loads(self.summary.read_text())
        return {"stages": []}

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.summary, json.dumps(summary, indent=2) + "\n")

    # ---------------------------------------------------------------- metrics.jsonl
    def stage_history(self, stage: str, last: int) -> list[dict[str, Any]]:
        """The stage's logged rows for steps 1..last, one per step in step order: when a resumed run
        redid a step, the row written last wins. Non-finite values come back as floats."""
        rows = {}
        for row in _metric_rows(self.metrics):
            if isinstance(row, dict) and row.get("stage") == stage and 1 <= row.get("step", 0) <= last:
                rows[row["step"]] = {k: float(v) if v in ("nan", "inf", "-inf") else v for k, v in row.items()}
        return [rows[s] for s in sorted(rows)]

    def move_metric_rows(self, moved: Callable[[dict[str, Any]], bool], to: Path) -> int:
        """Rewrite metrics.jsonl (atomically) without the rows `moved` picks, appending those to `to`.
        Lines that do not parse (a write cut by a kill) stay where they are. Returns the rows moved."""
        kept, out = [], []
        for line in self.metrics.read_text().splitlines() if self.metrics.is_file() else []:
            row = _parse(line)
            (out if isinstance(row, dict) and moved(row) else kept).append(line)
        if out:
            to.parent.mkdir(parents=True, exist_ok=True)
            with to.open("a") as f:
                f.write("".join(x + "\n" for x in out))
            write_atomic(self.metrics, "".join(x + "\n" for x in kept))
        return len(out)


def _parse(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _metric_rows(path: Path) -> list[Any]:
    return [_parse(x) for x in path.read_text().splitlines()] if path.is_file() else []


# ---------------------------------------------------------------- rlvr.lock
class LockHeld(Exception):
    """Another live `rlvr run` holds the run directory."""


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/PID/stat), so a PID reused by another
    process after a crash is not taken for the holder; None where /proc is not available."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _holder_alive(holder: dict[str, Any]) -> bool:
    """False when the lock's process is certainly gone: on this host, no such PID (or one started at
    another time); on another host, only when it was an earlier attempt of this same SLURM job (a
    requeued job keeps its id). A lock of a live process elsewhere cannot be checked: it holds."""
    if holder.get("host") != socket.gethostname():
        job = os.environ.get("SLURM_JOB_ID")
        return not (job and holder.get("slurm_job") == job)
    pid = int(holder.get("pid", 0))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's live process
    return holder.get("started") is None or holder.get("started") == _process_start(pid)


def describe_holder(holder: dict[str, Any]) -> str:
    job = f", SLURM job {holder['slurm_job']}" if holder.get("slurm_job") else ""
    return f"PID {holder.get('pid')} on {holder.get('host')}{job}, since {holder.get('time')}"


def take_lock(path: Path) -> dict[str, Any] | None:
    """Create the lock file with this process's record (O_EXCL: of two runs starting at once, one
    wins). Returns the record of a stale lock it cleared (its process is gone), else None; raises
    LockHeld naming a live holder."""
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _process_start(os.getpid()),
          "slurm_job": os.environ.get("SLURM_JOB_ID"), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    stale = None
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _parse(path.read_text()) if path.is_file() else None
            holder = holder if isinstance(holder, dict) else {}  # unreadable: a kill during its write
            if holder and _holder_alive(holder):
                raise LockHeld(f"{path} is held by {describe_holder(holder)}: another `rlvr run` works in "
                               "this run directory; wait for it, or delete the file if that process is gone") from None
            path.unlink(missing_ok=True)
            stale = holder
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(me) + "\n")
        return stale
    raise LockHeld(f"{path}: another `rlvr run` took the lock while a stale one was being cleared")


def release_lock(path: Path) -> None:
    """Remove the lock file if this process holds it."""
    holder = _parse(path.read_text()) if path.is_file() else None
    if isinstance(holder, dict) and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file and rename, so readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def now_stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")
