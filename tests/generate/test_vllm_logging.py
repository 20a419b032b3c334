"""rlvr keeps vLLM at ERROR but its weight-reload warnings ("Following weights were not loaded"), which the
weight-sync probe's error message points to, stay visible, also after an engine start re-applies vLLM's
logging config."""

from __future__ import annotations

from conftest import PYTHON, run_cmd, tail

CODE = """
import os
for key in ("VLLM_LOGGING_LEVEL", "VLLM_LOGGING_CONFIG_PATH"):  # the defaults rlvr sets, not a user's
    os.environ.pop(key, None)
from rlvr.tracking import quiet_libraries
quiet_libraries()
import vllm.model_executor.model_loader.reload.inplace as inplace
from vllm.config.logging import LoggingConfig
from vllm.logger import configure_logging, init_logger
configure_logging(LoggingConfig())  # what every engine start does
inplace.logger.warning("Following weights were not loaded from checkpoint: %s", {"x.weight"})
init_logger("vllm.platforms").warning("noisy platform warning")
init_logger("vllm.platforms").error("an engine error")
"""


def test_weight_reload_warning_stays_visible_under_quiet_vllm():
    proc = run_cmd([PYTHON, "-c", CODE], timeout=120)
    assert proc.returncode == 0, tail(proc)
    out = proc.stdout + proc.stderr
    assert "Following weights were not loaded from checkpoint" in out
    assert "an engine error" in out
    assert "noisy platform warning" not in out
