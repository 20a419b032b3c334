"""Metrics: RUN_DIR/metrics.jsonl always, wandb when enabled, only from rank 0; and the console kept to
rlvr's own lines (quiet_libraries)."""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

from rlvr.config import TrackingConfig
from rlvr.rundir import write_atomic


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


def quiet_libraries() -> None:
    """Keep the console to rlvr's own lines: library progress bars and info logs off."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # vLLM logs ~20 warning lines per engine start on CPU (no triton, no tcmalloc, kernel re-registration);
    # an eval stage starts one per checkpoint. So vLLM logs errors only, except its weight-reload package
    # (vllm/model_executor/model_loader/reload: "Following weights were not loaded from checkpoint", which
    # the weight-sync probe's error points to). That takes vLLM's own dictConfig file: vLLM re-applies its
    # logging config at import and at every engine start, resetting any level set on its loggers here.
    # A user's VLLM_LOGGING_LEVEL (WARNING brings everything back) or VLLM_LOGGING_CONFIG_PATH wins.
    if not {"VLLM_LOGGING_LEVEL", "VLLM_LOGGING_CONFIG_PATH"} & set(os.environ):
        import json
        import tempfile

        handler = {"class": "logging.StreamHandler", "level": "WARNING", "stream": "ext://sys.stdout",
                   "formatter": "vllm"}
        config = {"version": 1, "disable_existing_loggers": False,
                  "formatters": {"vllm": {"format": "%(levelname)s %(asctime)s [%(filename)s:%(lineno)d] %(message)s",
                                          "datefmt": "%m-%d %H:%M:%S"}},
                  "handlers": {"vllm": handler},
                  "loggers": {"vllm": {"handlers": ["vllm"], "level": "ERROR", "propagate": False},
                              "vllm.model_executor.model_loader.reload": {"level": "WARNING"}}}
        path = Path(tempfile.gettempdir()) / f"rlvr-vllm-logging-{os.getuid()}.json"
        write_atomic(path, json.dumps(config, indent=1))
        os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(path)
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # say it, instead of DeepSpeed warning that it guessed
    warnings.filterwarnings("ignore", message=".*torch_dtype.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    for name in ("DeepSpeed", "deepspeed", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.WARNING)
