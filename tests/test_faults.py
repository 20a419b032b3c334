"""A run's records can be trusted (issue 20): --from-stage retrains, --resume refuses a changed recipe,
summaries and metrics.jsonl survive a resume, SIGTERM and Ctrl-C checkpoint and say so, one `rlvr run`
per run directory, and a run killed at random points N times ends as an uninterrupted one does.

Tiny two-stage SFT runs (a 1-layer model, a few seconds each): stage a (4 steps), then stage b.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import PYTHON, REPO, run_cmd, subprocess_env, tail
from safetensors.torch import load_file

from rlvr.rundir import RunDir, release_lock, take_lock


def _args(run_dir, b_steps: int = 20) -> list[str]:
    return ["-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
            "--set", "model.tiny={hidden_size: 64, num_layers: 1, num_heads: 2, num_kv_heads: 1, intermediate_size: 64}",
            "--set", "backend={zero_stage: 0, micro_batch_size: 4, grad_accum: 1}",
            "--set", "stages=[{name: a, type: sft, data: {toy: {n: 200, levels: [1]}}, max_steps: 4},"
                     f" {{name: b, type: sft, data: {{toy: {{n: 200, levels: [1]}}}}, max_steps: {b_steps},"
                     " save_every: 5, optim: {lr: 1.0e-3}}]"]


def _rlvr(run_dir, *extra: str, b_steps: int = 20):
    return run_cmd([PYTHON, *_args(run_dir, b_steps), *extra], timeout=300)


def _weights(run_dir, stage: str = "b"):
    return load_file(str(run_dir / "stages" / stage / "final" / "model.safetensors"))


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def _summary(run_dir) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _metrics(summary: dict) -> list[tuple[str, str, dict]]:
    """Each stage's name, status and summary metrics, timing left out."""
    return [(s["name"], s["status"], {k: v for k, v in s["metrics"].items() if k != "seconds"})
            for s in summary["stages"]]


def _rows(run_dir, stage: str = "b") -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["stage"] == stage]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted run, copied by the tests that change it."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    proc = _rlvr(run_dir)
    assert proc.returncode == 0, tail(proc)
    return run_dir


def _copy(src, tmp_path, name="run"):
    dst = tmp_path / name
    shutil.copytree(src, dst, symlinks=True)
    return dst


# ------------------------------------------------------------------------------- 1. --from-stage
def test_from_stage_retrains_the_stage_and_moves_its_old_outputs_aside(straight, tmp_path):
    run_dir = _copy(straight, tmp_path)
    proc = _rlvr(run_dir, "--from-stage", "b", "--set", "stages.b.optim.lr=2.0e-2")
    assert proc.returncode == 0, tail(proc)
    assert "resumed from" not in proc.stdout and "[a] skipped: already done" in proc.stdout
    assert _same(_weights(run_dir, "a"), _weights(straight, "a"))
    assert not _same(_weights(run_dir), _weights(straight))  # b trained again, at the new lr
    assert [r["step"] for r in _rows(run_dir)] == list(range(1, 21))
    assert [r["lr"] for r in _rows(run_dir)] != [r["lr"] for r in _rows(straight)]
    (moved,) = (run_dir / "superseded").iterdir()
    assert _same(load_file(str(moved / "stages" / "b" / "final" / "model.safetensors")), _weights(straight))
    assert [r["step"] for r in _rows(moved)] == list(range(1, 21))
    assert _summary(moved) == _summary(straight)
    assert "lr: 0.001" in (moved / "config.yaml").read_text() and "lr: 0.02" in (run_dir / "config.yaml").read_text()
    note = _summary(run_dir)["changes"][-1]
    assert note["rerun"] == ["b"] and note["changed"] == ["stages.b.optim.lr: 0.001 -> 0.02"]
    assert _metrics(_summary(run_dir))[0] == _metrics(_summary(straight))[0]


# ------------------------------------------------------------------------------- 2. a changed recipe
def test_resume_refuses_changes_to_finished_stages_and_leaves_the_records(straight, tmp_path):
    run_dir = _copy(straight, tmp_path)
    before = {p: (run_dir / p).read_bytes() for p in ("config.yaml", "summary.json", "metrics.jsonl")}
    proc = _rlvr(run_dir, "--resume", "--set", "stages.a.optim.lr=0.5", "--accept-changes")
    assert proc.returncode == 2, tail(proc)
    assert "stages.a.optim.lr: 1e-05 -> 0.5" in proc.stderr and "--from-stage a" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert {p: (run_dir / p).read_bytes() for p in before} == before
    assert not (run_dir / "superseded").exists()


def _unfinished(straight, tmp_path, killed_after: int):
    """The straight run as if SIGKILLed in stage b after logging step `killed_after` (checkpoints
    step-15 and step-20 are kept; the newest at or before that step survives)."""
    run_dir = _copy(straight, tmp_path)
    shutil.rmtree(run_dir / "stages" / "b" / "final")
    for path in (run_dir / "stages" / "b" / "checkpoints").glob("step-*"):
        if int(path.name.split("-")[1]) > killed_after:
            shutil.rmtree(path)
    summary = _summary(run_dir)
    summary["stages"][1].update(status="running", steps=0, metrics={}, output=None)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    rows = [x for x in (run_dir / "metrics.jsonl").read_text().splitlines()
            if json.loads(x)["stage"] == "a" or json.loads(x)["step"] <= killed_after]
    (run_dir / "metrics.jsonl").write_text("".join(x + "\n" for x in rows))
    for name in ("report.md", "scores.csv"):
        (run_dir / name).unlink()
    return run_dir


def test_resume_with_changed_settings_needs_accept_changes_and_records_both(straight, tmp_path):
    run_dir = _unfinished(straight, tmp_path, killed_after=17)
    config = (run_dir / "config.yaml").read_text()
    proc = _rlvr(run_dir, "--resume", "--set", "stages.b.optim.lr=2.0e-3")
    assert proc.returncode == 2, tail(proc)
    assert "stages.b.optim.lr: 0.001 -> 0.002" in proc.stderr and "--accept-changes" in proc.stderr
    assert (run_dir / "config.yaml").read_text() == config

    proc = _rlvr(run_dir, "--resume", "--set", "stages.b.optim.lr=2.0e-3", "--accept-changes")
    assert proc.returncode == 0, tail(proc)
    assert "resumed from" in proc.stdout
    (moved,) = (run_dir / "superseded").iterdir()
    assert (moved / "config.yaml").read_text() == config
    assert "lr: 0.002" in (run_dir / "config.yaml").read_text()
    assert _summary(run_dir)["changes"][-1]["changed"] == ["stages.b.optim.lr: 0.001 -> 0.002"]


# ------------------------------------------------------------------------------- 3. summaries
def test_a_resumed_stage_reports_what_an_uninterrupted_one_does(straight, tmp_path):
    run_dir = _unfinished(straight, tmp_path, killed_after=17)  # resumes at 15: steps 16, 17 are redone
    proc = _rlvr(run_dir, "--resume")
    assert proc.returncode == 0, tail(proc)
    assert "resumed from" in proc.stdout and "moved 2 metrics.jsonl row(s)" in proc.stdout
    assert _same(_weights(run_dir), _weights(straight))
    assert _metrics(_summary(run_dir)) == _metrics(_summary(straight))
    assert [r["step"] for r in _rows(run_dir)] == list(range(1, 21))  # no step twice
    (moved,) = (run_dir / "superseded").iterdir()
    assert [r["step"] for r in _rows(moved)] == [16, 17]


def test_a_stage_without_a_checkpoint_says_it_restarts_from_step_0(straight, tmp_path):
    run_dir = _unfinished(straight, tmp_path, killed_after=4)
    proc = _rlvr(run_dir, "--resume")
    assert proc.returncode == 0, tail(proc)
    assert "[b] restarting from step 0: no checkpoint in" in proc.stdout
    assert _metrics(_summary(run_dir)) == _metrics(_summary(straight))
    assert [r["step"] for r in _rows(run_dir)] == list(range(1, 21))


def test_a_damaged_checkpoint_is_named_and_an_older_intact_one_resumes(straight, tmp_path):
    run_dir = _unfinished(straight, tmp_path, killed_after=20)  # step-15 and step-20 kept, no final
    shard = run_dir / "stages" / "b" / "checkpoints" / "step-20" / "deepspeed" / "mp_rank_00_model_states.pt"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # a disk that filled up
    proc = _rlvr(run_dir, "--resume")
    assert proc.returncode == 0, tail(proc)
    assert "step-20 could not be read" in proc.stdout and "deepspeed/mp_rank_00_model_states.pt has" in proc.stdout, proc.stdout
    assert "resumed from the older checkpoint" in proc.stdout and "(step 15)" in proc.stdout
    assert _same(_weights(run_dir), _weights(straight))


def test_no_intact_checkpoint_is_a_clear_error_not_a_restart(straight, tmp_path):
    run_dir = _unfinished(straight, tmp_path, killed_after=17)  # only step-15
    (run_dir / "stages" / "b" / "checkpoints" / "step-15" / "deepspeed" / "mp_rank_00_model_states.pt").unlink()
    proc = _rlvr(run_dir, "--resume")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, tail(proc)
    assert "no intact checkpoint to resume from" in proc.stderr and "mp_rank_00_model_states.pt is missing" in proc.stderr
    assert _summary(run_dir)["stages"][0]["status"] == "done"  # the finished stage's record stays


def test_shipped_tiny_recipes_checkpoint_periodically():
    from rlvr.config import load_recipe

    for name in ("tiny.yaml", "tiny_rl.yaml"):
        for stage in load_recipe(REPO / "recipes" / name).stages:
            assert stage.type == "eval" or stage.save_every > 0, (name, stage.name)


# ------------------------------------------------------------------------------- 7. signals
@pytest.mark.parametrize(("signum", "status", "code"), [(signal.SIGTERM, "preempted", 75),
                                                        (signal.SIGINT, "interrupted", 130)])
def test_sigterm_and_ctrl_c_checkpoint_at_the_next_step(tmp_path, signum, status, code):
    run_dir = tmp_path / "run"
    child = subprocess.Popen([PYTHON, *_args(run_dir, b_steps=100000)], cwd=REPO, env=subprocess_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (run_dir / "stages" / "b" / "checkpoints" / "step-10").is_dir() and time.time() < deadline:
        time.sleep(0.05)
    # 8. one run per directory: a second one is refused, naming the holder
    second = _rlvr(run_dir, "--resume", b_steps=100000)
    child.send_signal(signum)
    out, err = child.communicate(timeout=240)
    assert second.returncode == 2 and f"held by PID {child.pid}" in second.stderr, tail(second)
    assert child.returncode == code, out + err
    assert "Traceback" not in err and status in err
    assert [s["status"] for s in _summary(run_dir)["stages"]] == ["done", status]
    done = json.loads((run_dir / "CHECKPOINT_DONE").read_text())
    assert (run_dir / "stages" / "b" / "checkpoints" / f"step-{done['step']}" / "trainer_state.json").is_file()
    assert not (run_dir / "rlvr.lock").exists()


def test_ctrl_c_at_start_up_exits_130_without_a_traceback(tmp_path):
    """Ctrl-C before the first step (imports, the base model: no step boundary yet) exits 130."""
    run_dir = tmp_path / "run"
    child = subprocess.Popen([PYTHON, *_args(run_dir)], cwd=REPO, env=subprocess_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=240)
    assert child.returncode == 130 and "Traceback" not in err, out + err
    statuses = [s["status"] for s in _summary(run_dir)["stages"]] if (run_dir / "summary.json").is_file() else []
    assert "running" not in statuses and not (run_dir / "rlvr.lock").exists(), statuses


def test_a_second_signal_stops_at_once():
    """The first SIGINT/SIGTERM asks for a checkpoint at the next step boundary; a second one raises
    KeyboardInterrupt there and then (the runner marks the stage and exits without a traceback)."""
    from rlvr import preempt

    previous = preempt.install_signal_handler()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs in the main thread between bytecodes
        assert preempt.signalled() == preempt.PREEMPTED
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    finally:
        preempt.restore_signal_handlers(previous)


# ------------------------------------------------------------------------------- 8. the lock
def test_a_stale_lock_is_cleared_and_a_live_one_holds(tmp_path):
    lock = RunDir(tmp_path).lock
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock.write_text(json.dumps({"pid": gone.pid, "host": os.uname().nodename, "time": "earlier"}))
    stale = take_lock(lock)
    assert stale is not None and stale["pid"] == gone.pid
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    release_lock(lock)
    assert not lock.exists()

    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        try:
            lock.write_text(json.dumps({"pid": alive.pid, "host": os.uname().nodename, "time": "now"}))
            proc = _rlvr(tmp_path, "--resume")
            assert proc.returncode == 2 and f"held by PID {alive.pid}" in proc.stderr, tail(proc)
            assert json.loads(lock.read_text())["pid"] == alive.pid
        finally:
            alive.kill()


# ------------------------------------------------------------------------------- kills at random points
@pytest.mark.slow
def test_killed_at_random_points_n_times_ends_as_an_uninterrupted_run(tmp_path):
    """SIGKILL at three random points of stage b (each after a random number of its logged steps),
    resuming each time: the final weights, the summary and metrics.jsonl's steps are those of a run
    that was never killed."""
    seed = int(os.environ.get("RLVR_FAULT_SEED", time.time()))  # a failure names it: rerun with it set
    steps, rng = 300, random.Random(seed)
    straight = tmp_path / "straight"
    assert (proc := _rlvr(straight, b_steps=steps)).returncode == 0, tail(proc)
    run_dir, kills = tmp_path / "killed", []
    for attempt in range(3):
        extra = ["--resume"] if attempt else []
        child = subprocess.Popen([PYTHON, *_args(run_dir, steps), *extra], cwd=REPO, env=subprocess_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        at = rng.randint(1, steps - 1)
        deadline = time.time() + 240
        while child.poll() is None and time.time() < deadline:
            metrics = run_dir / "metrics.jsonl"
            if metrics.is_file() and metrics.read_text().count('"stage": "b"') >= at:
                break
            time.sleep(0.002)
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        kills.append(at)
    kills.append(f"RLVR_FAULT_SEED={seed}")
    proc = _rlvr(run_dir, "--resume", b_steps=steps)
    assert proc.returncode == 0, f"killed after b's rows {kills}\n" + tail(proc)
    assert _same(_weights(run_dir), _weights(straight)), kills
    assert _metrics(_summary(run_dir)) == _metrics(_summary(straight)), kills
    assert [r["step"] for r in _rows(run_dir)] == list(range(1, steps + 1)), kills
