"""slurm/rlvr.sh against a real SLURM (slurm/ci/local-slurm.sh up: 2 virtual nodes n1, n2 on this host).

- a 2-node job (one torchrun agent and one rank per node, c10d rendezvous) exits 0 and leaves the same
  run directory as a local `torchrun --nproc_per_node 2` run with the same overrides: same files, same
  metrics rows, bit-identical final weights;
- `scancel --batch --signal=USR1` during a long SFT stage: the ranks checkpoint at the next step
  boundary, the job requeues itself (Restarts=1), resumes, and ends bit-identical to the local run;
- the same during an RL stage (rollouts, rewards, a GRPO update): bit-identical to a local 2-rank run;
- a hard requeue (what SLURM preemption with PreemptMode=REQUEUE does: SIGTERM, no warning) restarts
  the job, which resumes from its newest periodic checkpoint to the same weights;
- one rank raising an exception fails the whole job within seconds, with the rank's error in the log.

The #SBATCH
GPU defaults are overridden on the sbatch command line, as CI must. Without a cluster these tests
skip, except under CI, where they fail. The dry-run tests at the end need no cluster.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PYTHON, REPO, run_cmd, subprocess_env, tail, torchrun
from safetensors.torch import load_file

RLVR_SH = REPO / "slurm" / "rlvr.sh"
# One shrunken tiny run: 4 midtrain steps, then a long SFT stage (time to preempt it), checkpointed
# every SAVE_EVERY steps.
SFT_STEPS, SAVE_EVERY = 120, 40
OVERRIDES = [
    "model.tiny={hidden_size: 64, num_layers: 2, num_heads: 2, num_kv_heads: 1, intermediate_size: 128}",
    "stages=[{name: a, type: midtrain, data: {toy: {n: 200, levels: [2, 3]}}, seq_len: 128, max_steps: 4},"
    f" {{name: b, type: sft, data: {{toy: {{n: 400, levels: [2, 3, 5]}}}}, max_steps: {SFT_STEPS},"
    f" save_every: {SAVE_EVERY},"
    " optim: {lr: 2.0e-3, warmup_ratio: 0.1}}]",
    "backend={zero_stage: 2, micro_batch_size: 4, grad_accum: 1}",
]
# CI shape: 2 nodes x 1 task, the whole (virtual) node's 2 CPUs, the fake GPUs (which must NOT turn
# into 2 CPU ranks per node: rlvr.sh trusts GPUs only when a CUDA driver answers).
# The time limit must stay well above the --signal lead time (rlvr.sh: B:USR1@600), or SLURM sends the
# checkpoint-and-requeue signal right away.
CI_FLAGS = [
    "-N2",
    "--ntasks-per-node=1",
    "--cpus-per-task=2",
    "--gpus-per-node=2",
    "-t",
    "10",
    "--signal=B:USR1@60",
]


# ---------------------------------------------------------------- helpers
@pytest.fixture(scope="session")
def cluster():
    """The local cluster must answer; under CI its absence is a failure, elsewhere a skip."""
    problem = cluster_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"no SLURM cluster under CI: {problem}")
        pytest.skip(f"no SLURM cluster: {problem} (start one: bash slurm/ci/local-slurm.sh up)")


def cluster_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "sbatch not found"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15)
        if "UP" not in ping.stdout:
            return f"slurmctld not answering: {ping.stdout.strip()} {ping.stderr.strip()}"
        nodes = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, timeout=15
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"scontrol/sinfo failed: {err}"
    usable = {
        ln for ln in nodes.stdout.splitlines() if ln.split()[-1].rstrip("*") in ("idle", "mix", "alloc")
    }
    if len(usable) < 2:
        return f"need 2 usable nodes, sinfo says: {nodes.stdout.strip()!r} {nodes.stderr.strip()}"
    return None


def submit(tmp: Path, run_dir: Path, *overrides: str, **env: str) -> int:
    cmd = [
        "sbatch",
        "--parsable",
        *CI_FLAGS,
        "-o",
        str(tmp / "%x-%j.out"),
        str(RLVR_SH),
        "recipes/tiny.yaml",
        *overrides,
    ]
    proc = run_cmd(cmd, timeout=60, RLVR_PYTHON=PYTHON, RLVR_RUN_DIR=str(run_dir), **env)
    assert proc.returncode == 0, tail(proc)
    return int(proc.stdout.strip().split(";")[0])


def queued(jid: int) -> bool:
    return bool(
        subprocess.run(["squeue", "-h", "-j", str(jid)], capture_output=True, text=True).stdout.strip()
    )


def wait_job(jid: int, timeout: float, log: Path | None = None, until=None) -> float:
    """Poll squeue every 0.5 s until the job has left the queue (or `until(log_text)` holds)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if until is not None and log is not None and log.is_file() and until(log.read_text(errors="replace")):
            return time.time() - t0
        if not queued(jid):
            return time.time() - t0
        time.sleep(0.5)
    subprocess.run(["scancel", str(jid)])
    pytest.fail(
        f"job {jid} still queued after {timeout}s:\n"
        + (log.read_text()[-4000:] if log and log.is_file() else "")
    )


def job(jid: int) -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", str(jid)], capture_output=True, text=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def job_log(tmp: Path, jid: int) -> str:
    return (tmp / f"rlvr-{jid}.out").read_text(errors="replace")


def weights(run_dir: Path, stage: str = "b") -> dict:
    return load_file(str(run_dir / "stages" / stage / "final" / "model.safetensors"))


def metric_rows(run_dir: Path) -> dict[tuple[str, int], dict]:
    """(stage, step) -> the last logged row, without wall-clock fields (a hard kill re-logs steps)."""
    rows = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows[(r["stage"], r["step"])] = {
            k: v for k, v in r.items() if k not in ("time", "step_seconds", "tokens_per_s")
        }
    return rows


def assert_same_result(run_dir: Path, ref: Path) -> None:
    a, b = weights(ref), weights(run_dir)
    assert a.keys() == b.keys()
    differ = [k for k in a if not (a[k] == b[k]).all()]
    assert not differ, f"final weights differ from the local 2-rank run: {differ[:5]}"
    assert metric_rows(run_dir) == metric_rows(ref)
    summary = json.loads((run_dir / "summary.json").read_text())
    ref_summary = json.loads((ref / "summary.json").read_text())
    assert [(s["name"], s["status"], s["steps"]) for s in summary["stages"]] == [
        ("a", "done", 4),
        ("b", "done", SFT_STEPS),
    ]
    # summary metrics except timing (a resumed stage's summary covers its steps before the resume too)
    skip = ("seconds",)
    for s, r in zip(summary["stages"], ref_summary["stages"], strict=True):
        assert {k: v for k, v in s["metrics"].items() if k not in skip} == {
            k: v for k, v in r["metrics"].items() if k not in skip
        }


def sft_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return 0
    steps = [json.loads(x)["step"] for x in path.read_text().splitlines() if '"stage": "b"' in x]
    return max(steps, default=0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cluster):
    """The same overrides, run locally with `torchrun --nproc_per_node 2` (2 ranks, as 2 nodes x 1)."""
    run_dir = tmp_path_factory.mktemp("local") / "run"
    sets = [x for o in OVERRIDES for x in ("--set", o)]
    proc = run_cmd(
        torchrun(2, "-m", "rlvr", "run", "recipes/tiny.yaml", *sets, "--run-dir", str(run_dir)), timeout=300
    )
    assert proc.returncode == 0, tail(proc)
    return run_dir


# ---------------------------------------------------------------- against the cluster
@pytest.mark.slurm
@pytest.mark.slow
def test_two_node_job_matches_a_local_two_rank_run(tmp_path, reference):
    run_dir = tmp_path / "run"
    t0 = time.time()
    jid = submit(tmp_path, run_dir, *OVERRIDES)
    took = wait_job(jid, 200, tmp_path / f"rlvr-{jid}.out")
    log = job_log(tmp_path, jid)
    info = job(jid)
    assert (info["JobState"], info["ExitCode"], info["Restarts"]) == ("COMPLETED", "0:0", "0"), log[-4000:]
    # one torchrun agent per virtual node, one rank each, one 2-rank rendezvous hosted on n1
    assert "node n1: torchrun agent 0 of 2" in log and "node n2: torchrun agent 1 of 2" in log
    assert "--nnodes 2 --nproc_per_node 1" in log and "--rdzv_endpoint n1:" in log
    assert f"rlvr: run tiny -> {run_dir} (2 ranks)" in log
    assert "(resuming)" not in log and "SIGUSR1: asking" not in log
    # the run directory contract of a local run
    for path in (
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "base_model/config.json",
        "stages/a/final/model.safetensors",
        "stages/b/final/model.safetensors",
        f"stages/b/checkpoints/step-{SFT_STEPS}",
    ):
        assert (run_dir / path).exists(), path
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(p.name for p in reference.iterdir())
    assert_same_result(run_dir, reference)
    print(f"\n2-node job {jid}: submit to finish {time.time() - t0:.1f}s (polled {took:.1f}s)")


@pytest.mark.slurm
@pytest.mark.slow
def test_usr1_checkpoints_requeues_and_resumes_to_the_same_result(tmp_path, reference):
    run_dir = tmp_path / "run"
    t0 = time.time()
    jid = submit(tmp_path, run_dir, *OVERRIDES)
    deadline = time.time() + 240
    while sft_step(run_dir) < 10:  # into the SFT stage, with 110 steps to go
        assert queued(jid) and time.time() < deadline, (
            "SFT never got going:\n" + job_log(tmp_path, jid)[-4000:]
        )
        time.sleep(0.1)
    assert job(jid)["JobState"] == "RUNNING"
    sent = time.time()
    subprocess.run(["scancel", "--batch", "--signal=USR1", str(jid)], check=True)
    wait_job(jid, 200, tmp_path / f"rlvr-{jid}.out")
    log = job_log(tmp_path, jid)
    info = job(jid)
    assert (info["JobState"], info["ExitCode"], info["Restarts"]) == ("COMPLETED", "0:0", "1"), log[-6000:]

    assert "SIGUSR1: asking the ranks to checkpoint" in log
    m = re.search(r"checkpointed \((\{.*?\})\); requeueing job", log)
    assert m, log[-6000:]
    done = json.loads(m.group(1))
    assert done["stage"] == "b" and 10 <= done["step"] < SFT_STEPS, done
    assert f"job {jid} (restart 1)" in log and "(resuming)" in log
    assert f"resumed from {run_dir}/stages/b/checkpoints/step-{done['step']} (step {done['step']})" in log
    assert "[a] skipped: already done" in log
    assert not (run_dir / "CHECKPOINT_REQUEST").exists() and not (run_dir / "CHECKPOINT_DONE").exists()
    assert_same_result(run_dir, reference)

    stamps = re.findall(r"\[rlvr.sh (\S+ \S+)\] (.*)", log)
    t_req = next(
        time.mktime(time.strptime(s, "%Y-%m-%d %H:%M:%S")) for s, msg in stamps if "requeueing job" in msg
    )
    t_back = next(
        time.mktime(time.strptime(s, "%Y-%m-%d %H:%M:%S")) for s, msg in stamps if "(restart 1)" in msg
    )
    print(
        f"\npreempted job {jid}: USR1 at SFT step >= 10 -> checkpoint at step {done['step']}; "
        f"requeue to restart {t_back - t_req:.0f}s; submit to finish {time.time() - t0:.1f}s "
        f"(signal to finish {time.time() - sent:.1f}s)"
    )


# The RL stage: rollouts (HF sampler: starts faster than vLLM on CPU), rewards, a GRPO update with an
# entropy bonus (so the weights move even while the tiny untrained model earns no reward).
RL_STEPS = 30  # long enough that SIGUSR1 lands mid-stage: an RL step here takes ~0.2 s
RL_OVERRIDES = [
    OVERRIDES[0],
    "stages=[{name: rl, type: rlvr, data: {toy: {n: 200, levels: [1]}}, prompts_per_step: 4,"
    f" rollouts_per_prompt: 4, temperature: 1.0, max_response_tokens: 24, max_steps: {RL_STEPS},"
    " save_every: 2, entropy_coef: 0.05, optim: {lr: 1.0e-3, schedule: constant},"
    " generation: {backend: hf, max_model_len: 256}}]",
    "backend={zero_stage: 2, micro_batch_size: 8}",
]


@pytest.mark.slurm
@pytest.mark.slow
def test_usr1_during_an_rl_stage_resumes_to_the_same_result(tmp_path, cluster):
    ref = tmp_path / "local"
    sets = [x for o in RL_OVERRIDES for x in ("--set", o)]
    proc = run_cmd(
        torchrun(2, "-m", "rlvr", "run", "recipes/tiny.yaml", *sets, "--run-dir", str(ref)), timeout=300
    )
    assert proc.returncode == 0, tail(proc)

    run_dir = tmp_path / "run"
    jid = submit(tmp_path, run_dir, *RL_OVERRIDES)
    metrics, deadline = run_dir / "metrics.jsonl", time.time() + 240
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):
        assert queued(jid) and time.time() < deadline, (
            "RL never got going:\n" + job_log(tmp_path, jid)[-4000:]
        )
        time.sleep(0.1)
    subprocess.run(["scancel", "--batch", "--signal=USR1", str(jid)], check=True)
    wait_job(jid, 200, tmp_path / f"rlvr-{jid}.out")
    log = job_log(tmp_path, jid)
    info = job(jid)
    assert (info["JobState"], info["ExitCode"], info["Restarts"]) == ("COMPLETED", "0:0", "1"), log[-6000:]
    m = re.search(r"checkpointed \((\{.*?\})\); requeueing job", log)
    assert m, log[-6000:]
    done = json.loads(m.group(1))
    assert done["stage"] == "rl" and 2 <= done["step"] < RL_STEPS, done
    assert f"resumed from {run_dir}/stages/rl/checkpoints/step-{done['step']}" in log

    a, b = weights(ref, "rl"), weights(run_dir, "rl")
    assert not all(
        (a[k] == v).all() for k, v in load_file(str(ref / "base_model" / "model.safetensors")).items()
    )
    assert all((a[k] == b[k]).all() for k in a), "RL weights differ from the local 2-rank run"
    timing = ("time", "gen/probe_seconds", "gen/tokens_per_s")
    rows = [
        {k: v for k, v in r.items() if k not in timing and not k.startswith("time/")}
        for r in metric_rows(run_dir).values()
    ]
    ref_rows = [
        {k: v for k, v in r.items() if k not in timing and not k.startswith("time/")}
        for r in metric_rows(ref).values()
    ]
    assert rows == ref_rows and len(rows) == RL_STEPS


@pytest.mark.slurm
@pytest.mark.slow
def test_hard_requeue_restarts_from_the_newest_checkpoint(tmp_path, reference):
    """No warning (SLURM preemption with PreemptMode=REQUEUE, node failure, `scontrol requeue`): the
    restarted job sees SLURM_RESTART_COUNT=1 and resumes from the newest checkpoint: a periodic one,
    or the one the ranks write at their next step boundary on the requeue's SIGTERM."""
    run_dir = tmp_path / "run"
    jid = submit(tmp_path, run_dir, *OVERRIDES)
    deadline = time.time() + 240
    while sft_step(run_dir) < SAVE_EVERY + 5:  # past the first periodic checkpoint
        assert queued(jid) and time.time() < deadline, (
            "SFT never got going:\n" + job_log(tmp_path, jid)[-4000:]
        )
        time.sleep(0.1)
    subprocess.run(["scontrol", "requeue", str(jid)], check=True)
    wait_job(jid, 200, tmp_path / f"rlvr-{jid}.out")
    log = job_log(tmp_path, jid)
    info = job(jid)
    assert (info["JobState"], info["ExitCode"], info["Restarts"]) == ("COMPLETED", "0:0", "1"), log[-6000:]
    assert "SIGUSR1: asking" not in log
    assert f"job {jid} (restart 1)" in log and "(resuming)" in log
    m = re.search(r"resumed from \S+/stages/b/checkpoints/step-(\d+)", log)
    assert m and int(m.group(1)) >= SAVE_EVERY, log[-6000:]
    assert_same_result(run_dir, reference)


@pytest.mark.slurm
@pytest.mark.slow
def test_a_failing_rank_fails_the_whole_job_quickly(tmp_path, cluster):
    """Rank 1 (on n2) raises as stage b starts while rank 0 (on n1) waits for it in a collective: the
    job must fail within seconds (no hang until a collective timeout), with rank 1's error in the log."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('RANK') == '1':\n"
        "    import rlvr.stages.sft as _sft\n"
        "    def _fail(ctx):\n"
        "        raise RuntimeError(f'injected failure on rank 1 at the start of stage {ctx.cfg.name}')\n"
        "    _sft.main = _fail\n"
    )
    run_dir = tmp_path / "run"
    jid = submit(
        tmp_path,
        run_dir,
        OVERRIDES[0],
        "stages=[{name: b, type: sft, data: {toy: {n: 400, levels: [2, 3, 5]}}, max_steps: 20}]",
        OVERRIDES[2],
        PYTHONPATH=str(inject),
    )
    log_path = tmp_path / f"rlvr-{jid}.out"
    wait_job(jid, 240, log_path, until=lambda text: "injected failure on rank 1" in text)
    failed_at = time.time()
    wait_job(jid, 120, log_path)
    lag = time.time() - failed_at
    log = job_log(tmp_path, jid)
    info = job(jid)
    assert info["JobState"] == "FAILED" and info["ExitCode"] != "0:0" and info["Restarts"] == "0", log[-4000:]
    assert "RuntimeError: injected failure on rank 1 at the start of stage b" in log
    assert "ERROR: the run failed" in log
    assert lag < 60, f"the job took {lag:.0f}s to end after rank 1 failed"
    print(f"\nfailing job {jid}: ended {lag:.1f}s after rank 1's error")


# ---------------------------------------------------------------- no cluster needed (RLVR_DRY_RUN=1)
def dry_run(*args: str, path_dir: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in subprocess_env().items()
        if not k.startswith(("SLURM_", "RLVR_")) and k not in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")
    }
    clean.update({"RLVR_DRY_RUN": "1", "SLURM_JOB_ID": "1234", **env})
    if path_dir is not None:
        clean["PATH"] = f"{path_dir}:{clean['PATH']}"
    return subprocess.run(
        ["bash", str(RLVR_SH), *args], cwd=REPO, env=clean, capture_output=True, text=True, timeout=30
    )


def fake_nvidia_smi(tmp: Path, works: bool) -> Path:
    bin_dir = tmp / ("bin-ok" if works else "bin-broken")
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"
    body = (
        "echo 'GPU 0: Fake (UUID: x)'; echo 'GPU 1: Fake (UUID: y)'"
        if works
        else "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver' >&2; exit 9"
    )
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def field(out: str, name: str) -> str:
    return re.search(rf"^{name}=(.*)$", out, re.M).group(1)


def test_dry_run_overrides_run_dir_port_and_resume(tmp_path):
    proc = dry_run(
        "recipes/tiny.yaml",
        "stages.sft.max_steps=3",
        "--set",
        "seed=1",
        "--set=tracking.mode=offline",
        "--from-stage",
        "sft",
        "model.tiny={hidden_size: 64}",
    )
    assert proc.returncode == 0, proc.stderr
    cmd = proc.stdout.splitlines()[-1]
    assert (
        "-m rlvr run recipes/tiny.yaml --set stages.sft.max_steps=3 --set seed=1 --set=tracking.mode=offline "
        r"--set model.tiny=\{hidden_size:\ 64\} --from-stage sft --run-dir runs/tiny-1234" in cmd
    )
    assert "--resume" not in cmd
    assert field(proc.stdout, "RUN_DIR") == "runs/tiny-1234"
    assert field(proc.stdout, "MASTER").endswith(":21234")  # 20000 + job id % 20000
    assert "--rdzv_backend c10d" in cmd and "--rdzv_id 1234" in cmd and "--kill-on-bad-exit=1" in cmd
    assert "SIGUSR1" in cmd  # torchrun forwards USR1, never orphans ranks

    # a restarted job, or a run directory that already holds a run, continues with --resume; a
    # restarted job drops --from-stage (its first attempt carried the earlier stages over)
    out = dry_run("recipes/tiny.yaml", "--from-stage", "sft", "seed=1", SLURM_RESTART_COUNT="1").stdout
    assert "--set seed=1 --run-dir runs/tiny-1234 --resume" in out and "--from-stage" not in out
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "summary.json").write_text('{"stages": []}')
    out = dry_run("recipes/tiny.yaml", RLVR_RUN_DIR=str(tmp_path / "old")).stdout
    assert f"--run-dir {tmp_path / 'old'} --resume" in out

    # a site file (module load, caches, NCCL settings) is sourced first
    (tmp_path / "site.sh").write_text("export RLVR_NPROC_PER_NODE=5\n")
    assert field(dry_run("recipes/tiny.yaml", RLVR_ENV_FILE=str(tmp_path / "site.sh")).stdout, "NPROC") == "5"

    # mistakes are refused before anything is launched
    for args, says in (
        (["recipes/tiny.yaml", "--run-dir", "x"], "RLVR_RUN_DIR"),
        (["recipes/tiny.yaml", "max_steps"], "KEY=VALUE"),
        (["recipes/tiny.yaml", "--bogus"], "unknown option"),
        ([], "usage"),
        (["missing.yaml"], "recipe not found"),
    ):
        proc = dry_run(*args)
        assert proc.returncode == 2 and says in proc.stderr, (args, proc.stderr)
    proc = subprocess.run(
        ["bash", str(RLVR_SH), "recipes/tiny.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SLURM_")},
    )
    assert proc.returncode == 2 and "not inside a SLURM job" in proc.stderr


def test_dry_run_ranks_per_node(tmp_path):
    """GPUs count only when a CUDA driver answers; CI's fake GRES GPUs give one CPU rank per node."""
    gpus = {"SLURM_GPUS_ON_NODE": "2", "CUDA_VISIBLE_DEVICES": "0,1"}
    broken = fake_nvidia_smi(tmp_path, works=False)
    assert field(dry_run("recipes/tiny.yaml", path_dir=broken, **gpus).stdout, "NPROC") == "1"
    working = fake_nvidia_smi(tmp_path, works=True)
    assert field(dry_run("recipes/tiny.yaml", path_dir=working, **gpus).stdout, "NPROC") == "2"
    assert (
        field(dry_run("recipes/tiny.yaml", path_dir=working, CUDA_VISIBLE_DEVICES="0,1,2").stdout, "NPROC")
        == "3"
    )
    assert field(dry_run("recipes/tiny.yaml", path_dir=working).stdout, "NPROC") == "2"  # nvidia-smi -L
    assert (
        field(dry_run("recipes/tiny.yaml", path_dir=broken, RLVR_NPROC_PER_NODE="4").stdout, "NPROC") == "4"
    )
    proc = dry_run("recipes/tiny.yaml", RLVR_NPROC_PER_NODE="zero")
    assert proc.returncode == 2 and "positive integer" in proc.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_clean():
    proc = subprocess.run(
        ["shellcheck", str(RLVR_SH), str(REPO / "slurm" / "ci" / "local-slurm.sh")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
