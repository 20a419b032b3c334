"""Preemption: checkpoint at the next step boundary when asked, then stop so the job can be requeued.

Two ways to ask, both safe to use together:
  * the file RUN_DIR/CHECKPOINT_REQUEST (what slurm/rlvr.sh's SIGUSR1 trap writes; works across nodes
    on a shared filesystem and needs no signal forwarding), or
  * SIGUSR1 delivered to a rank (torchrun forwards it only with --signals_to_handle ...,SIGUSR1).
Ranks agree through an all-reduce at every step boundary, so all of them stop at the same step. After
the checkpoint, RUN_DIR/CHECKPOINT_DONE records {stage, step, checkpoint} and the run exits with
EXIT_PREEMPTED; `rlvr run --resume` continues from there.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

from rlvr.world import World

REQUEST, DONE = "CHECKPOINT_REQUEST", "CHECKPOINT_DONE"
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later", i.e. requeue and --resume
_signalled = threading.Event()


class Preempted(Exception):
    def __init__(self, stage: str, step: int, checkpoint: Path):
        super().__init__(f"stage {stage}: checkpointed at step {step} ({checkpoint}) and stopped because "
                         "preemption was requested; continue with `rlvr run ... --resume`")
        self.stage, self.step, self.checkpoint = stage, step, checkpoint


def install_signal_handler() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, lambda *_: _signalled.set())


def requested(run_root: Path, world: World) -> bool:
    """Collective: True on every rank when any rank was signalled or the request file exists."""
    local = _signalled.is_set() or (world.is_main and (run_root / REQUEST).exists())
    return world.all_reduce_sum(1.0 if local else 0.0) > 0


def acknowledge(run_root: Path, stage: str, step: int, checkpoint: Path, world: World) -> None:
    if world.is_main:
        (run_root / DONE).write_text(json.dumps({"stage": stage, "step": step, "checkpoint": str(checkpoint)}) + "\n")
        (run_root / REQUEST).unlink(missing_ok=True)
    _signalled.clear()
    world.barrier()


def clear(run_root: Path) -> None:
    """At the start of a run: forget requests and acknowledgements of an earlier attempt."""
    for name in (REQUEST, DONE):
        (run_root / name).unlink(missing_ok=True)
