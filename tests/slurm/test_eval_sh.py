"""slurm/eval.sh against a real SLURM (slurm/ci/local-slurm.sh up), and its dry run without one.

A 2-checkpoint sweep (an untrained tiny model and a copy whose weights are at first corrupt) on 4 toy
problems, hf backend on CPU:
- first submission: one array task per checkpoint; task 0 completes, task 1 fails to load its model; the
  merge job (afterany) still runs, exits 1 and lists the missing cache and how to resubmit;
- after the weights are fixed, a second submission runs an array of only task 1 and leaves task 0's
  cache untouched; the merge writes scores.json and report.md with both checkpoints and generates nothing;
- a third submission finds every cache complete and submits only the merge job.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from conftest import PYTHON, REPO, TINY_SMALL, run_cmd, subprocess_env, tail

from slurm.test_rlvr_sh import cluster, job, wait_job  # noqa: F401  (cluster: a fixture)

EVAL_SH = REPO / "slurm" / "eval.sh"
BASH = shutil.which("bash") or "/bin/bash"  # absolute: one test runs it with an empty PATH
# CI shape: the virtual nodes have 2 CPUs and ~20 GB; one fake GPU per task (the #SBATCH default).
TASK_FLAGS = "--cpus-per-task=1 --mem=3G -t 10"
MERGE_FLAGS = "--cpus-per-task=1 --mem=2G -t 10"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from rlvr.config import TinyModelSpec
    from rlvr.models.tiny import build_tiny

    return build_tiny(TinyModelSpec.model_validate(yaml.safe_load(TINY_SMALL)), tmp_path_factory.mktemp("tiny") / "a")


def write_spec(tmp_path, a, b, out):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "slurm_t", "protocol": "toy", "checkpoints": [{"path": str(a), "label": "a"}, {"path": str(b), "label": "b"}],
        "benchmarks": {"toy": {"limit": 4}}, "settings": {"max_tokens": 16}, "dtype": "float32",
        "generation": {"backend": "hf", "max_model_len": 512, "use_tqdm": False}, "out": str(out)}, sort_keys=False))
    return spec


def submit(spec, *args: str) -> dict[str, str]:
    proc = run_cmd(["bash", str(EVAL_SH), str(spec), *args], timeout=60, RLVR_PYTHON=PYTHON,
                   RLVR_EVAL_SBATCH=TASK_FLAGS, RLVR_EVAL_MERGE_SBATCH=MERGE_FLAGS)
    assert proc.returncode == 0, tail(proc)
    return dict(re.findall(r"^(\w+)=(.*)$", proc.stdout, re.M)) | {"stderr": proc.stderr}


def wait_all(ids: dict[str, str], out) -> None:
    for key in ("ARRAY_JOB", "MERGE_JOB"):
        if ids[key]:
            wait_job(int(ids[key]), 300, out / "slurm" / f"rlvr-eval-merge-{ids['MERGE_JOB']}.out")


def array_states(array_job: str) -> dict[str, str]:
    """Array task index -> JobState (scontrol keeps finished jobs for MinJobAge)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", array_job], capture_output=True, text=True).stdout
    tasks = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines()]
    return {t["ArrayTaskId"]: t["JobState"] for t in tasks if "ArrayTaskId" in t}


def caches(out):
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in sorted((out / "generations").rglob("*.jsonl"))}


@pytest.mark.slurm
@pytest.mark.slow
def test_array_per_checkpoint_then_merge_and_resubmit_only_what_failed(tmp_path, cluster, tiny_model):  # noqa: F811
    b = tmp_path / "b"
    shutil.copytree(tiny_model, b)
    (b / "model.safetensors").write_bytes(b"not a safetensors file")
    out = tmp_path / "out"
    spec = write_spec(tmp_path, tiny_model, b, out)

    ids = submit(spec, "--set", "seeds=[0]")
    assert ids["OUT"] == str(out) and ids["REPORT"] == str(out / "report.md") and ids["ARRAY_JOB"], ids
    assert "2 with caches to generate (indices 0,1)" in ids["stderr"]
    wait_all(ids, out)
    logs = out / "slurm"
    task_log = lambda i: (logs / f"rlvr-eval-{ids['ARRAY_JOB']}_{i}.out").read_text()  # noqa: E731
    merge_log = (logs / f"rlvr-eval-merge-{ids['MERGE_JOB']}.out").read_text()
    assert array_states(ids["ARRAY_JOB"]) == {"0": "COMPLETED", "1": "FAILED"}, task_log(1)[-3000:]
    assert "rlvr eval: 4 completions generated" in task_log(0)
    assert "checkpoint 1 'b'" in task_log(1)
    assert job(int(ids["MERGE_JOB"]))["JobState"] == "FAILED"  # it ran although a task failed (afterany)
    assert "1 cache file(s)" in merge_log and "not generated (checkpoint b)" in merge_log, merge_log
    assert "only the checkpoints still missing are submitted" in merge_log and "seeds=\\[0\\]" in merge_log
    assert not (out / "scores.json").exists()

    # fixed weights: only task 1 is submitted; task 0's cache is left alone; the merge scores both
    shutil.copy(tiny_model / "model.safetensors", b / "model.safetensors")
    before = caches(out)
    ids = submit(spec, "--set", "seeds=[0]")
    assert "1 with caches to generate (indices 1)" in ids["stderr"], ids
    wait_all(ids, out)
    assert array_states(ids["ARRAY_JOB"]) == {"1": "COMPLETED"}
    assert job(int(ids["MERGE_JOB"]))["JobState"] == "COMPLETED"
    merge_log = (logs / f"rlvr-eval-merge-{ids['MERGE_JOB']}.out").read_text()
    assert "rlvr eval: 0 completions generated, 8 reused from the cache, 0 re-judged" in merge_log, merge_log
    assert "[eval] loading" not in merge_log
    after = caches(out)
    assert all(after[k] == v for k, v in before.items()) and len(after) == 2
    scores = json.loads((out / "scores.json").read_text())
    assert [(r["checkpoint"], r["benchmark"], r["n_problems"]) for r in scores["rows"]] == [("a", "toy", 4), ("b", "toy", 4)]
    report = (out / "report.md").read_text()
    assert "| a |" in report and "| b |" in report

    # nothing left to generate: only the merge job
    ids = submit(spec, "--set", "seeds=[0]")
    assert ids["ARRAY_JOB"] == "" and "only the merge job is submitted" in ids["stderr"], ids
    wait_all(ids, out)
    assert job(int(ids["MERGE_JOB"]))["JobState"] == "COMPLETED"
    assert caches(out) == after


# ---------------------------------------------------------------- no cluster needed (RLVR_DRY_RUN=1)
def dry_run(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in subprocess_env().items() if not k.startswith(("SLURM_", "RLVR_", "SBATCH_"))}
    clean.update({"RLVR_DRY_RUN": "1", "RLVR_PYTHON": PYTHON, **env})
    return subprocess.run([BASH, str(EVAL_SH), *args], cwd=REPO, env=clean, capture_output=True, text=True, timeout=60)


def test_dry_run_commands_and_refusals(tmp_path, tiny_model):
    out = tmp_path / "out"
    spec = write_spec(tmp_path, tiny_model, tiny_model, out)  # the same model twice, labelled a and b
    proc = dry_run(str(spec), "seeds=[0]", "--set", "benchmarks.toy.limit=3", "--set=chunk_size=2",
                   RLVR_EVAL_SBATCH="-p gpu -t 1:00:00", RLVR_EVAL_MERGE_SBATCH="-p cpu", RLVR_EVAL_MAX_PARALLEL="1")
    assert proc.returncode == 0, proc.stderr
    array, merge = proc.stdout.splitlines()
    sets = r"--set seeds=\[0\] --set benchmarks.toy.limit=3 --set=chunk_size=2"
    assert array.startswith(f"sbatch --parsable --array=0\\,1%1 --output={out}/slurm/%x-%A_%a.out -p gpu -t 1:00:00 {EVAL_SH} @task a\\ b {spec} {sets}"), array
    assert "--dependency=afterany:ARRAY_JOB" in merge and "--gpus-per-node=0" in merge and merge.endswith(f"-p cpu {EVAL_SH} @merge {spec} {sets} ")
    assert "2 with caches to generate" in proc.stderr

    # the listing the array is sized from: checkpoints, caches missing, nothing written, no torch
    code = f"import sys\nfrom rlvr.cli import main\nrc = main(['eval', r'{spec}', '--list-checkpoints'])\nprint('RC', rc, 'torch' in sys.modules)\n"
    proc = run_cmd([PYTHON, "-c", code], timeout=60)
    assert proc.stdout.splitlines() == [f"# name=slurm_t checkpoints=2 out={out}", "# index\tlabel\tmissing_caches\tpath",
                                        f"0\ta\t1\t{tiny_model}", f"1\tb\t1\t{tiny_model}", "RC 0 False"], tail(proc)
    assert not out.exists()

    # mistakes are refused before anything is submitted
    for args, env, says in (
        ([], {}, "usage"),
        (["missing.yaml"], {}, "eval spec not found: missing.yaml"),
        ([str(spec), "bogus.key=1"], {}, "bogus: unknown key"),
        ([str(spec), "--score-only"], {}, "chosen by slurm/eval.sh itself"),
        ([str(spec), "--bogus"], {}, "unknown option"),
        ([str(spec), "limit"], {}, "KEY=VALUE"),
        ([str(spec)], {"RLVR_DRY_RUN": "0", "PATH": str(tmp_path / "empty")}, "sbatch not found on PATH"),
    ):
        proc = dry_run(*args, **env)
        assert proc.returncode == 2 and says in proc.stderr and not proc.stdout, (args, proc.stderr)
    assert "nothing was submitted" in dry_run(str(spec), "bogus.key=1").stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_clean():
    proc = subprocess.run(["shellcheck", str(EVAL_SH)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
