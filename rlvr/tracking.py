"""Metrics: RUN_DIR/metrics.jsonl always, wandb when enabled, only from rank 0."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from rlvr.config import TrackingConfig


def _clean(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep it visible
    return value


class Tracker:
    def __init__(self, metrics_path: Path, cfg: TrackingConfig, *, is_main: bool, run_name: str,
                 config: dict[str, Any], run_dir: Path):
        self.is_main = is_main
        self.path = metrics_path
        self.cfg = cfg
        self._wandb = None
        if is_main and cfg.mode != "disabled":
            import wandb

            self._wandb = wandb.init(project=cfg.project, entity=cfg.entity, mode=cfg.mode, name=run_name,
                                     config=config, dir=str(run_dir), resume="allow", id=run_name)

    def log(self, stage: str, step: int, metrics: dict[str, Any]) -> None:
        if not self.is_main:
            return
        record = {"stage": stage, "step": step, "time": round(time.time(), 3)}
        record.update({k: _clean(v) for k, v in metrics.items()})
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._wandb is not None:
            self._wandb.log({f"{stage}/{k}": v for k, v in record.items() if isinstance(v, int | float)})

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def progress(total: int, desc: str, *, enabled: bool, initial: int = 0):
    """A tqdm bar on rank 0 (a disabled bar elsewhere)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                leave=False, mininterval=0.5)
