"""Resumable step checkpoints: weights, optimizer, lr schedule (DeepSpeed state), the step counter
and data position (trainer_state.json), and every rank's RNG state.

Writes are atomic: everything goes to `checkpoints/.tmp-step-N/`, then rank 0 renames it to
`step-N/`, so a run killed mid-save leaves either the previous checkpoint or a complete new one,
never a half-written `step-N`. RNG states are stored with safetensors and JSON (no pickle); the
DeepSpeed shards are the files DeepSpeed writes for its own resume, read back only from this run's
own directory.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from rlvr.rundir import write_atomic
from rlvr.schema import UserError
from rlvr.world import World

STEP_DIR = re.compile(r"^step-(\d+)$")


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(found)


def latest_checkpoint(directory: Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


class CheckpointDamaged(RuntimeError):
    """A checkpoint whose files are not those that were written (truncated, missing)."""


def load_newest_intact(backend: Any, directory: Path, world: World,
                       others: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]] | None:
    """Restore the newest checkpoint of `directory` that every rank can read; returns (path, its
    trainer_state) or None when there is none. A checkpoint a file of which cannot be read (truncated
    by a full disk, damaged by hand) is named with the error and the next older one is tried: a load
    restores weights, optimizer, schedule and RNG in full, so a failed attempt leaves nothing behind
    once an older one loads. If checkpoints exist but none loads, the stage must not silently start from
    step 0 with half-restored weights: that is a UserError naming each failure."""
    found = list_checkpoints(directory)
    failures = []
    for _, path in reversed(found):
        error = None
        try:
            state = load_checkpoint(backend, path, world, others=others)
        except UserError:  # written by another number of ranks: not damage, and older ones share it
            raise
        except Exception as err:  # noqa: BLE001 - any unreadable file: torch, safetensors, JSON, OS errors
            error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        errors = [e for e in world.all_gather_object(error) if e is not None]
        if not errors:
            if failures:
                world.print0(f"warning: resumed from the older checkpoint {path}: " + "; ".join(failures))
            return path, state
        failures.append(f"{path} could not be read ({errors[0]})")
        world.print0(f"warning: {failures[-1]}; trying an older checkpoint")
    if failures:
        raise UserError("no intact checkpoint to resume from: " + "; ".join(failures)
                        + f". Move {directory} aside to restart the stage from step 0.")
    return None


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    version, state, gauss = random.getstate()
    return tensors, {"python": [version, list(state), gauss]}


def _set_rng_state(tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, state, gauss = extra["python"]
    random.setstate((version, tuple(state), gauss))


def save_checkpoint(backend: Any, directory: Path, step: int, state: dict[str, Any], world: World,
                    keep: int, others: dict[str, Any] | None = None) -> Path:
    """Collective: every rank calls it. Returns the final `step-N` path. `others`: more backends saved with
    the same step (PPO's critic), each in its own subdirectory `step-N/<name>/`."""
    from safetensors.torch import save_file

    tmp, final = directory / f".tmp-step-{step}", directory / f"step-{step}"
    if world.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    world.barrier()
    backend.save_state(tmp)
    for name, other in (others or {}).items():
        other.save_state(tmp / name)
    tensors, extra = _rng_state()
    save_file(tensors, str(tmp / f"rng-rank{world.rank}.safetensors"))
    (tmp / f"rng-rank{world.rank}.json").write_text(json.dumps(extra))
    world.barrier()
    if world.is_main:
        # every file's size, so a resume names a truncated or missing file instead of failing inside torch.load
        files = {str(f.relative_to(tmp)): f.stat().st_size for f in sorted(tmp.rglob("*")) if f.is_file()}
        write_atomic(tmp / "trainer_state.json", json.dumps({"step": step, "world_size": world.world_size, **state,
                                                             "files": files}, indent=2))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for _, old in list_checkpoints(directory)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    world.barrier()
    return final


def load_checkpoint(backend: Any, path: Path, world: World, others: dict[str, Any] | None = None) -> dict[str, Any]:
    """Restore weights/optimizer/schedule (of `backend` and of each of `others`, from `path/<name>/`) and this
    rank's RNG; returns trainer_state.json."""
    from safetensors.torch import load_file

    state = json.loads((path / "trainer_state.json").read_text())
    if state.get("world_size", world.world_size) != world.world_size:
        raise UserError(
            f"{path} was written by {state['world_size']} ranks, this run has {world.world_size}; "
            "resume with the same number of ranks"
        )
    damaged = [f"{name} is missing" if not (path / name).is_file() else
               f"{name} has {(path / name).stat().st_size} bytes, {size} were written"
               for name, size in state.get("files", {}).items()
               if not (path / name).is_file() or (path / name).stat().st_size != size]
    if damaged:
        raise CheckpointDamaged(f"{path}: " + "; ".join(damaged))
    backend.load_state(path)
    for name, other in (others or {}).items():
        if not (path / name).is_dir():
            raise UserError(f"{path} holds no {name}/ state; it was written by a stage without a {name}")
        other.load_state(path / name)
    rng = path / f"rng-rank{world.rank}.safetensors"
    if rng.is_file():
        _set_rng_state(load_file(str(rng)), json.loads((path / f"rng-rank{world.rank}.json").read_text()))
    return state
