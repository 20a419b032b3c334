"""Resume really resumes: a run killed (SIGKILL) mid-stage and resumed with --resume ends with the
same weights, bit for bit, as an uninterrupted run (weights, optimizer, lr schedule, step, data
position and RNG all restored). And a run directory is never overwritten by accident."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import PYTHON, REPO, run_cmd, subprocess_env, tail
from safetensors.torch import load_file

ARGS = ["-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"),
        "--set", "model.tiny={hidden_size: 64, num_layers: 2, num_heads: 2, num_kv_heads: 1, intermediate_size: 128}",
        "--set", "stages=[{name: a, type: midtrain, data: {toy: {n: 200, levels: [2, 3]}}, seq_len: 128, max_steps: 4},"
                 " {name: b, type: sft, data: {toy: {n: 400, levels: [2, 3, 5]}}, max_steps: 60, save_every: 10,"
                 " optim: {lr: 2.0e-3, warmup_ratio: 0.1}}]",
        "--set", "backend={zero_stage: 2, micro_batch_size: 4, grad_accum: 2}"]


def _weights(run_dir):
    return load_file(str(run_dir / "stages" / "b" / "final" / "model.safetensors"))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run every interrupted one must match."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    proc = run_cmd([PYTHON, *ARGS, "--run-dir", str(run_dir)], timeout=300)
    assert proc.returncode == 0, tail(proc)
    return run_dir


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path, straight):

    broken = tmp_path / "broken"
    child = subprocess.Popen([PYTHON, *ARGS, "--run-dir", str(broken)], cwd=REPO, env=subprocess_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt = broken / "stages" / "b" / "checkpoints" / "step-10"
    deadline = time.time() + 240
    while not ckpt.is_dir() and child.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert ckpt.is_dir(), "no checkpoint appeared before the deadline"
    assert not (broken / "stages" / "b" / "final").exists(), "run finished before it could be killed"
    summary = json.loads((broken / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["done", "running"]

    proc = run_cmd([PYTHON, *ARGS, "--run-dir", str(broken), "--resume"], timeout=300)
    assert proc.returncode == 0, tail(proc)
    assert "[a] skipped: already done" in proc.stdout
    assert "resumed from" in proc.stdout
    a, b = _weights(straight), _weights(broken)
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), f"{k} differs after resume"
    logged = [json.loads(x) for x in (broken / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["stage"] == "b"] == list(range(1, 61))  # redone steps logged once
    summary = json.loads((broken / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["done", "done"]
    # the summary covers the whole stage, the steps before the kill included
    untimed = lambda s: [{k: v for k, v in e["metrics"].items() if k != "seconds"} for e in s["stages"]]  # noqa: E731
    assert untimed(summary) == untimed(json.loads((straight / "summary.json").read_text()))

    # an existing run is never clobbered: without --resume the CLI refuses and changes nothing
    before = (broken / "summary.json").read_text()
    proc = run_cmd([PYTHON, *ARGS, "--run-dir", str(broken)], timeout=120)
    assert proc.returncode == 2 and "already holds a run" in proc.stderr
    assert (broken / "summary.json").read_text() == before


@pytest.mark.slow
def test_preemption_request_checkpoints_stops_and_resumes(tmp_path, straight):
    run_dir = tmp_path / "pre"
    child = subprocess.Popen([PYTHON, *ARGS, "--run-dir", str(run_dir)], cwd=REPO, env=subprocess_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 240
    while child.poll() is None and time.time() < deadline:
        if metrics.is_file() and '"stage": "b"' in metrics.read_text():
            (run_dir / "CHECKPOINT_REQUEST").touch()
            break
        time.sleep(0.01)
    out, err = child.communicate(timeout=240)
    assert child.returncode == 75, out + err
    assert "preemption was requested" in err
    done = json.loads((run_dir / "CHECKPOINT_DONE").read_text())
    assert done["stage"] == "b" and 1 <= done["step"] < 60
    assert (run_dir / "stages" / "b" / "checkpoints" / f"step-{done['step']}").is_dir()
    assert not (run_dir / "CHECKPOINT_REQUEST").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["done", "preempted"]

    proc = run_cmd([PYTHON, *ARGS, "--run-dir", str(run_dir), "--resume"], timeout=300)
    assert proc.returncode == 0, tail(proc)
    a, b = _weights(straight), _weights(run_dir)
    assert all((a[k] == b[k]).all() for k in a)
