"""Who am I in the job: rank, world size, device. Reads torchrun's variables (RANK, WORLD_SIZE,
LOCAL_RANK, ...), falls back to one process. The only module besides the backend that touches
torch.distributed; stage code calls these helpers and never checks launchers itself."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any


def _env_int(*names: str, default: int) -> int:
    for name in names:
        if os.environ.get(name, "").strip().lstrip("-").isdigit():
            return int(os.environ[name])
    return default


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    node_rank: int = 0

    @classmethod
    def from_env(cls) -> World:
        """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; without them this is a single process.
        (SLURM variables are read by slurm/rlvr.sh, which starts torchrun: one launcher, one truth.)"""
        return cls(
            rank=_env_int("RANK", default=0),
            world_size=_env_int("WORLD_SIZE", default=1),
            local_rank=_env_int("LOCAL_RANK", default=0),
            local_world_size=_env_int("LOCAL_WORLD_SIZE", default=1),
            node_rank=_env_int("GROUP_RANK", default=0),
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def device(self) -> str:
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"

    @property
    def dist_backend(self) -> str:
        """nccl on GPUs, gloo on CPU: chosen from the device, never from the scheduler's GPU count."""
        import torch

        return "nccl" if torch.cuda.is_available() else "gloo"

    # ---------------------------------------------------------------- process group
    def init(self) -> None:
        """Create the default process group once (no-op for one process)."""
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist

        if dist.is_initialized():
            return
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
        minutes = float(os.environ.get("RLVR_DIST_TIMEOUT_MIN", "30"))
        dist.init_process_group(backend=self.dist_backend, timeout=datetime.timedelta(minutes=minutes))

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def all_reduce_sum(self, value: float | int) -> float:
        """Sum a Python number over ranks (float64 on the default device)."""
        if not self.distributed:
            return float(value)
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item())

    def all_reduce_max(self, value: int) -> int:
        """The largest of an integer over ranks (e.g. the number of micro-batches every rank must run)."""
        if not self.distributed:
            return int(value)
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(value)], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def print0(self, *args: Any, **kwargs: Any) -> None:
        if self.is_main:
            print(*args, **kwargs, flush=True)

    def shutdown(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()
