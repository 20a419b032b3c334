"""`rlvr verify` never loses what it already wrote, and a bad row or flag costs one line, not the run.

Each test reproduces a finding of issue #20 (items 4 and 6) through `python -m rlvr verify`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOOD = {"id": "a", "prediction": r"so $\boxed{\frac{1}{2}}$", "gold": "0.5"}
OTHER = {"id": "b", "prediction": r"$\boxed{4}$", "gold": "3"}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlvr", "verify", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_sigterm_mid_run_leaves_previous_out_intact(tmp_path):
    # Rows only the symbolic fallback decides, so the run is still judging when the signal comes.
    rows = [{"id": k, "prediction": rf"\boxed{{\sqrt[3]{{{k}}} + {k}x}}", "gold": rf"{k}x + \sqrt[3]{{{k}}}"}
            for k in range(2, 400)]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    previous = '{"id": "old", "score": 1.0}\n'
    out.write_text(previous, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "rlvr", "verify", "--in", str(inp), "--out", str(out),
                             "--workers", "1", "--timeout", "5"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait until the run has opened its output (the old code truncated --out here; the new one
        # writes a temporary file beside it), then stop it as SLURM or a user would.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            others = [p for p in tmp_path.iterdir() if p.name not in ("in.jsonl", "out.jsonl")]
            if others or out.stat().st_size != len(previous):
                break
            time.sleep(0.02)
        time.sleep(0.5)  # into the judging (workers starting, the first batch running)
        assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert out.read_text(encoding="utf-8") == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"], "temporary file left behind"


def test_finished_run_replaces_out_atomically(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("stale\n" * 10, encoding="utf-8")
    proc = _run("--in", str(inp), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def test_in_equal_to_out_is_refused_and_input_kept(tmp_path):
    inp = tmp_path / "rows.jsonl"
    text = json.dumps(GOOD) + "\n" + json.dumps(OTHER) + "\n"
    inp.write_text(text, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    link = tmp_path / "hard.jsonl"
    os.link(inp, link)
    for out in (inp, tmp_path / "sub" / ".." / "rows.jsonl", link):
        proc = _run("--in", str(inp), "--out", str(out))
        assert proc.returncode == 2, (out, proc.stdout, proc.stderr)
        assert "--out" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2
        assert inp.read_text(encoding="utf-8") == text


def test_bad_rows_are_reported_by_line_and_the_rest_judged(tmp_path):
    inp = tmp_path / "in.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    lines = [
        json.dumps(GOOD).encode(),
        b'{"id": "latin1", "prediction": "caf\xe9 \\\\boxed{1}", "gold": "1"}',  # not UTF-8
        deep.encode(),
        json.dumps({"id": "x", "gold": "1"}).encode(),  # no prediction
        json.dumps({"id": "y", "prediction": "1"}).encode(),  # no gold
        b"{not json",
        json.dumps(OTHER).encode(),
    ]
    inp.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    proc = _run("--in", str(inp), "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for lineno in (2, 3, 4, 5, 6):
        assert f"{inp}:{lineno}:" in proc.stderr, (lineno, proc.stderr)
    assert f"{inp}:1:" not in proc.stderr and f"{inp}:7:" not in proc.stderr
    assert "UTF-8" in proc.stderr and "nested too deeply" in proc.stderr
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a", "b"]
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("items=2 ") and "malformed_rows=5" in summary


def test_unknown_policy_is_one_line_listing_the_policies(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    proc = _run("--in", str(inp), "--out", str(tmp_path / "o.jsonl"), "--policy", "bogus")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "--policy" in lines[0] and "'bogus'" in lines[0]
    for name in ("math", "math_reward", "minerva", "math_exact_only", "one_shot_reward", "qwen_math_eval"):
        assert name in lines[0]
    assert "http" not in proc.stderr and "validation error" not in proc.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_unwritable_out_is_a_usage_error(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    proc = _run("--in", str(inp), "--out", str(tmp_path / "no" / "such" / "dir" / "o.jsonl"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "o.jsonl" in proc.stderr


def test_out_that_is_a_folder_is_a_usage_error(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    (tmp_path / "results").mkdir()
    proc = _run("--in", str(inp), "--out", str(tmp_path / "results"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "is a folder" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "results"]
