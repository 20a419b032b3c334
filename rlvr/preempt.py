"""Preemption and interruption: checkpoint at the next step boundary when asked, then stop so the run
can be continued with `rlvr run ... --resume`.

Ways to ask, all safe to use together:
  * the file RUN_DIR/CHECKPOINT_REQUEST (what slurm/rlvr.sh's SIGUSR1 trap writes; works across nodes
    on a shared filesystem and needs no signal forwarding),
  * SIGUSR1 or SIGTERM delivered to a rank (SLURM's preemption and time-limit signal; torchrun forwards
    them with --signals_to_handle ...): the stage ends `preempted`, exit status EXIT_PREEMPTED,
  * SIGINT (Ctrl-C): the stage ends `interrupted`, exit status EXIT_INTERRUPTED. A second SIGINT or
    SIGTERM stops at once (KeyboardInterrupt, caught by the runner: no checkpoint, same status).
Ranks agree through an all-reduce at every step boundary (and between stages), so all of them stop at
the same step. After the checkpoint, RUN_DIR/CHECKPOINT_DONE records {stage, step, checkpoint}.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

from rlvr.world import World

REQUEST, DONE = "CHECKPOINT_REQUEST", "CHECKPOINT_DONE"
EXIT_PREEMPTED = 75     # EX_TEMPFAIL: "try again later", i.e. requeue and --resume
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
# The status a stopped stage gets, by request; a larger code wins when ranks were asked differently.
PREEMPTED, INTERRUPTED = "preempted", "interrupted"
CODES = {None: 0, PREEMPTED: 1, INTERRUPTED: 2}
EXIT_CODES = {PREEMPTED: EXIT_PREEMPTED, INTERRUPTED: EXIT_INTERRUPTED}
WHY = {PREEMPTED: "preemption was requested", INTERRUPTED: "it was interrupted (Ctrl-C)"}
_signalled: list[str] = []  # the reasons signals gave, in order (appended by the handler)


class Preempted(Exception):
    def __init__(self, stage: str, step: int, checkpoint: Path, reason: str = PREEMPTED):
        super().__init__(f"stage {stage}: checkpointed at step {step} ({checkpoint}) and stopped because "
                         f"{WHY[reason]}; continue with `rlvr run ... --resume`")
        self.stage, self.step, self.checkpoint, self.reason = stage, step, checkpoint, reason


def _on_signal(signum: int, _frame: Any) -> None:
    reason = INTERRUPTED if signum == signal.SIGINT else PREEMPTED
    if _signalled and signum != signal.SIGUSR1:
        raise KeyboardInterrupt  # asked twice: stop now
    _signalled.append(reason)
    if signum != signal.SIGUSR1:  # os.write: print() may be mid-write in the frame this handler interrupted
        os.write(2, f"\nrlvr: {signal.Signals(signum).name}: checkpointing at the next step boundary, then "
                    f"stopping ({reason}); send it again to stop now\n".encode())


def install_signal_handler() -> dict[int, Any]:
    """SIGUSR1, SIGTERM and SIGINT ask for a stop at the next step boundary. Returns the handlers it
    replaced (for restore_signal_handlers)."""
    _signalled.clear()
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _on_signal) for s in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)}


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def signalled() -> str | None:
    """Why this process was signalled (PREEMPTED, INTERRUPTED), or None."""
    return max(_signalled, key=CODES.get) if _signalled else None


def requested(run_root: Path, world: World) -> str | None:
    """Collective: on every rank, why a stop was asked for (PREEMPTED, INTERRUPTED) or None: any rank
    was signalled, or the request file exists."""
    local = signalled() or (PREEMPTED if world.is_main and (run_root / REQUEST).exists() else None)
    code = world.all_reduce_max(CODES[local])
    return next((reason for reason, c in CODES.items() if c == code), None)


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
