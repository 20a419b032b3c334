"""`rlvr verify` end to end, through `python -m rlvr` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlvr", "verify", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


ROWS = [
    {"id": "a", "prediction": r"so $\boxed{\frac{1}{2}}$", "gold": "0.5", "correct": True},
    {"id": "b", "prediction": r"$\boxed{4}$", "gold": 3.0, "correct": False},
    {"id": "c", "prediction": r"$\boxed{x^2+2x+1}$", "gold": "(x+1)^2", "correct": True},
    {"id": "d", "prediction": r"$\boxed{7}$", "gold": "7", "truncated": True, "correct": True},
    {"id": "e", "prediction": r"$\boxed{9^{9^{9^{9}}}}$", "gold": "3"},
]


def test_verify_cli_writes_rows_and_summary(tmp_path):
    inp = _write(tmp_path / "in.jsonl", [json.dumps(r) for r in ROWS])
    out = tmp_path / "out.jsonl"
    proc = _run("--in", str(inp), "--out", str(out), "--workers", "1", "--timeout", "2")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c", "d", "e"]
    assert [r["reason"] for r in rows] == ["match", "mismatch", "match", "truncated", "rejected_prescreen"]
    assert [r["score"] for r in rows] == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert rows[0]["answer"] == r"\frac{1}{2}" and rows[3]["answer"] is None
    assert all(isinstance(r["seconds"], float) for r in rows)
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("items=5 items_per_s=")
    # labelled rows a-d: d is labelled correct but truncated -> one false negative
    assert "labelled=4 accuracy=0.7500 false_positives=0 false_negatives=1" in last


def test_malformed_rows_reported_with_line_numbers_and_skipped(tmp_path):
    lines = [json.dumps(ROWS[0]), "{not json", json.dumps({"gold": "1"}), json.dumps(ROWS[1]), "[1, 2]"]
    inp = _write(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    proc = _run("--in", str(inp), "--out", str(out))
    assert proc.returncode == 1
    assert f"{inp}:2:" in proc.stderr and f"{inp}:3:" in proc.stderr and f"{inp}:5:" in proc.stderr
    assert "missing field 'prediction'" in proc.stderr
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a", "b"]
    assert "malformed_rows=3" in proc.stdout.strip().splitlines()[-1]


def test_unknown_policy_is_a_usage_error(tmp_path):
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS[0])])
    proc = _run("--in", str(inp), "--out", str(tmp_path / "o.jsonl"), "--policy", "nope")
    assert proc.returncode == 2
    assert "unknown verifier policy 'nope'" in proc.stderr
