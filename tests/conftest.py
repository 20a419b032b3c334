"""Shared pytest fixtures: paths, the shared benchmark data, and environment for subprocess tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Benchmark data lives beside the repository (../shared/data), never inside it. CI clones the repo
# next to a copy of shared/. RLVR_SHARED_DATA points elsewhere when needed.
SHARED_DATA = Path(os.environ.get("RLVR_SHARED_DATA", REPO.parent / "shared" / "data"))
PYTHON = sys.executable


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared benchmark data not found at {SHARED_DATA} (set RLVR_SHARED_DATA)")
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: offline, quiet, one thread per rank (2 cores in CI)."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
                "DS_ACCELERATOR": "cpu", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nproc: int, *args: str) -> list[str]:
    """Command line for `torchrun --nproc_per_node nproc` on a free port."""
    return [PYTHON, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_port", str(free_port()), *args]


def run_cmd(cmd: list[str], timeout: float = 300, **env: str):
    """Run a command, returning CompletedProcess; on failure the assertion shows its output tail."""
    import subprocess

    proc = subprocess.run(cmd, cwd=REPO, env=subprocess_env(**env), capture_output=True, text=True,
                          timeout=timeout)
    return proc


def tail(proc, n: int = 4000) -> str:
    return (proc.stdout + "\n--- stderr ---\n" + proc.stderr)[-n:]


TINY_SMALL = "{hidden_size: 64, num_layers: 2, num_heads: 2, num_kv_heads: 1, intermediate_size: 256}"


@pytest.fixture(scope="session")
def sft_model(tmp_path_factory):
    """A tiny model SFT'd on one-digit addition (recipes/tiny_rl.yaml's SFT stage): right about half the
    time greedily, so RL and DPO tests have signal. Built once per test session."""
    run_dir = tmp_path_factory.mktemp("sft") / "run"
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny_rl.yaml"), "--run-dir", str(run_dir),
                    "--set", "stages=[{name: sft, type: sft, data: {toy: {n: 4000, levels: [1]}},"
                    " max_steps: 200, optim: {lr: 5.0e-3, warmup_ratio: 0.05}}]"], timeout=900)
    assert proc.returncode == 0, tail(proc)
    return run_dir / "stages" / "sft" / "final"
