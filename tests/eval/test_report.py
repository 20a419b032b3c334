"""`rlvr report`: report.md numbers, scores.csv rows, the PNGs, and the error for a wrong directory.

Fixtures are written here in the scores.json / run-directory layout of the eval contract
(rlvr/eval/report.py docstring), with hand-picked numbers so the expected percentages are known.
"""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest
from conftest import PYTHON, run_cmd

from rlvr.cli import main
from rlvr.eval.report import AVERAGE, CSV_FIELDS, ReportError, write_report
from rlvr.eval.scores import SIX_BENCHMARKS, Z95

VERIFIER = {"policy": "math", "workers": None, "timeout": 2.0, "memory_mb": 4096, "cache_size": 200000,
            "require_box": None, "numeric": None, "interval_relations": None}
# one_shot_rlvr: greedy k=1 for these three, avg@8 at T=0.6 for the others; 3072 tokens; Qwen CoT
GREEDY = {"math500", "minerva", "olympiadbench"}
N_PROBLEMS = {"math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "minerva": 272, "olympiadbench": 675}
BASE = {"math500": 0.60, "aime24": 0.10, "aime25": 0.05, "amc23": 0.40, "minerva": 0.20, "olympiadbench": 0.25}


def score_row(label, stage, step, bench, avg, *, temperature=None, k=None, seed=0, path=None):
    greedy = bench in GREEDY or bench == "toy"
    temperature = (0.0 if greedy else 0.6) if temperature is None else temperature
    k = (1 if greedy else 8) if k is None else k
    n = N_PROBLEMS.get(bench, 200)
    se = (avg * (1 - avg) / n) ** 0.5
    return {"checkpoint": label, "path": path or f"/ckpt/{label}", "stage": stage, "step": step,
            "benchmark": bench, "template": "chat" if bench == "toy" else "qwen25_math_cot",
            "temperature": temperature, "top_p": 1.0, "k": k, "max_tokens": 96 if bench == "toy" else 3072,
            "seed": seed, "grader": "math", "n_problems": n, "avg@k": avg,
            "pass@k": avg if k == 1 else min(1.0, avg * 1.5), "maj@k": avg if k == 1 else min(1.0, avg * 1.1),
            "stderr": se, "ci95_low": max(0.0, avg - Z95 * se), "ci95_high": min(1.0, avg + Z95 * se)}


def write_scores(directory: Path, benchmarks, steps=(50, 100, 150), name="sweep", extra_rows=()) -> dict:
    ckpts = [{"label": f"rl/step-{s}", "path": f"/ckpt/rl/step-{s}", "stage": "rl", "step": s} for s in steps]
    rows = [score_row(c["label"], "rl", c["step"], b, round(BASE.get(b, 0.3) + 0.05 * i, 4))
            for i, c in enumerate(ckpts) for b in benchmarks]
    doc = {"name": name, "protocol": "one_shot_rlvr", "verifier": VERIFIER, "checkpoints": ckpts,
           "rows": rows + list(extra_rows)}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "scores.json").write_text(json.dumps(doc, indent=2))
    return doc


def write_run(root: Path, *, evals=True, metrics=True) -> Path:
    """eval_base -> sft (60 steps) -> eval_sft -> rl (20 steps) -> eval_rl, as `rlvr run` leaves it: each eval
    stage scores its input model, labelled by the stage that made it, at the run's global step."""
    def stage(name, type_, steps, metrics, output):
        return {"name": name, "type": type_, "status": "done", "steps": steps, "metrics": metrics,
                "output": str(root / "stages" / name / output)}

    evaluated = {"eval_base": ("base", None, 0, {"toy": 0.05, "math500": 0.10}),
                 "eval_sft": ("sft", "sft", 60, {"toy": 0.40, "math500": 0.30}),
                 "eval_rl": ("rl", "rl", 80, {"toy": 0.70, "math500": 0.40})}
    stages = [stage("sft", "sft", 60, {"loss_first": 2.5, "loss_last": 1.1, "sequences": 480, "seconds": 30.2},
                    "final"),
              stage("rl", "rlvr", 20, {"reward_first": -0.6, "reward_last": 0.4, "seconds": 80.0}, "final")]
    if evals:
        for i, name in ((0, "eval_base"), (2, "eval_sft"), (4, "eval_rl")):
            scores = evaluated[name][3]
            stages.insert(i, stage(name, "eval", 0, {"accuracy": sum(scores.values()) / 2, **scores,
                                                     "seconds": 12.0}, "eval"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "summary.json").write_text(json.dumps({"stages": stages}, indent=2))
    if evals:
        for name, (label, trained, step, scores) in evaluated.items():
            out = root / "stages" / name / "eval"
            out.mkdir(parents=True)
            path = str(root / ("base_model" if label == "base" else f"stages/{trained}/final"))
            ck = {"label": label, "path": path, "stage": trained, "step": step}
            rows = [score_row(label, trained, step, b, v, path=path) for b, v in scores.items()]
            (out / "scores.json").write_text(json.dumps({"name": f"tiny.{name}", "protocol": "toy",
                                                         "verifier": VERIFIER, "checkpoints": [ck], "rows": rows}))
    if metrics:
        lines = [{"stage": "sft", "step": s, "time": 1.0 + s, "loss": 2.5 * 0.985 ** s + 0.02 * (s % 3),
                  "lr": 1e-5, "grad_norm": 1.0} for s in range(1, 61)]
        for s in range(1, 21):
            acc = min(1.0, 0.2 + 0.03 * s)
            lines.append({"stage": "rl", "step": s, "time": 100.0 + s, "reward/mean": 2 * acc - 1,
                          "reward/std": 0.4, "accuracy": acc, "entropy": 1.2 - 0.03 * s, "kl": 0.001 * s,
                          "response/length_mean": 40 + s, "pg_loss": 0.0})
        lines.append({"stage": "rl", "step": 20, "time": 200.0, "reward/mean": 0.4, "reward/std": 0.4,
                      "accuracy": 0.7, "entropy": "nan", "kl": 0.02, "response/length_mean": 60})  # resumed
        if evals:
            lines.append({"stage": "eval_rl", "step": 0, "time": 300.0, "eval/accuracy": 0.55, "eval/toy": 0.7})
        (root / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + '\n{"stage": "rl", "st')
    return root


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert len(data) > 10_000, f"{path} is only {len(data)} bytes"
    return struct.unpack(">II", data[16:24])


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_FIELDS
        return list(reader)


# ---------------------------------------------------------------------------------------- eval dir
def test_eval_dir_six_benchmarks(tmp_path):
    doc = write_scores(tmp_path, SIX_BENCHMARKS)
    report = write_report(tmp_path)
    assert report == tmp_path / "report.md"
    md = report.read_text()
    # math500 at step 100 = 0.65 over 500 problems: stderr sqrt(.65*.35/500) = 2.13%
    assert "| rl/step-100 | 100 | 65.0 ± 2.1 |" in md
    # aime24 at step 50 = 0.10 over 30 problems at avg@8: stderr 5.5%
    assert "10.0 ± 5.5" in md
    # 6-benchmark average of step 150: mean of (0.70, 0.20, 0.15, 0.50, 0.30, 0.35) = 0.3667
    avg150 = sum(BASE[b] + 0.10 for b in SIX_BENCHMARKS) / 6
    assert f"**{100 * avg150:.1f} ± 2.2**" in md
    assert "6-benchmark avg" in md
    # the best-average checkpoint is marked, and the report says this selects on the test sets
    assert "| rl/step-150 (best avg) | 150 |" in md and "| rl/step-100 | 100 |" in md
    assert "looks at the test sets" in md
    # settings stated under the table: grader, template, sampling per benchmark
    assert "| aime24 | aime24 | math | qwen25_math_cot | 0.6 | 1 | 8 | 3072 | 0 | 30 |" in md
    assert "| math500 | math500 | math | qwen25_math_cot | 0 | 1 | 1 | 3072 | 0 | 500 |" in md
    assert "protocol `one_shot_rlvr`" in md and '"policy": "math"' in md

    rows = read_csv(tmp_path / "scores.csv")
    assert len(rows) == len(doc["rows"]) + 3  # 18 rows + one average per checkpoint
    math100 = next(r for r in rows if r["checkpoint"] == "rl/step-100" and r["benchmark"] == "math500")
    assert float(math100["avg@k"]) == pytest.approx(0.65) and math100["step"] == "100" and math100["k"] == "1"
    avg = [r for r in rows if r["benchmark"] == AVERAGE]
    assert [r["checkpoint"] for r in avg] == ["rl/step-50", "rl/step-100", "rl/step-150"]
    assert float(avg[2]["avg@k"]) == pytest.approx(avg150)

    w, h = png_size(tmp_path / "plots" / "score_vs_step.png")
    assert w > 800 and h > 500
    png_size(tmp_path / "plots" / "scores_by_checkpoint.png")
    assert "![Score vs checkpoint step](plots/score_vs_step.png)" in md
    assert not list((tmp_path / "plots").glob("training_*"))


def test_average_only_when_all_six_present(tmp_path):
    write_scores(tmp_path, ["math500", "aime24"], steps=(10, 20))
    md = write_report(tmp_path).read_text()
    assert "6-benchmark avg |" not in md and "**" not in md
    assert "No 6-benchmark average" in md and "present: aime24, math500" in md
    rows = read_csv(tmp_path / "scores.csv")
    assert len(rows) == 4 and all(r["benchmark"] != AVERAGE for r in rows)
    # five of six: still no average
    write_scores(tmp_path, SIX_BENCHMARKS[:5], steps=(10, 20))
    md = write_report(tmp_path).read_text()
    assert "6-benchmark avg |" not in md and "No 6-benchmark average" in md


def test_two_temperatures_are_two_columns(tmp_path):
    extra = [score_row(f"rl/step-{s}", "rl", s, "aime24", 0.2, temperature=1.0) for s in (50, 100)]
    write_scores(tmp_path, ["math500", "aime24"], steps=(50, 100), extra_rows=extra)
    md = write_report(tmp_path).read_text()
    assert "| checkpoint | step | math500 | aime24 (T=0.6) | aime24 (T=1) |" in md
    assert len(read_csv(tmp_path / "scores.csv")) == 6


def test_checkpoints_without_steps_get_bars_only(tmp_path):
    rows = [score_row(name, None, None, "math500", v) for name, v in (("Qwen2.5-Math-1.5B", 0.36), ("ours", 0.74))]
    (tmp_path / "scores.json").write_text(json.dumps({
        "name": "hub", "protocol": "one_shot_rlvr", "verifier": VERIFIER,
        "checkpoints": [{"label": r["checkpoint"], "path": r["path"], "stage": None, "step": None} for r in rows],
        "rows": rows}))
    md = write_report(tmp_path).read_text()
    assert "| Qwen2.5-Math-1.5B | 36.0 ± 2.1 |" in md and "| ours | 74.0 ± 2.0 |" in md
    assert not (tmp_path / "plots" / "score_vs_step.png").exists()
    png_size(tmp_path / "plots" / "scores_by_checkpoint.png")


# ---------------------------------------------------------------------------------------- run dir
def test_run_dir_merges_eval_stages_and_plots_training(tmp_path):
    run = write_run(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    md = (run / "report.md").read_text()
    assert md.index("eval_base: base") < md.index("eval_sft: sft") < md.index("eval_rl: rl")
    # toy (200 problems) then math500 (500), in stage order, with the global step
    assert "| eval stage: checkpoint | step | toy | math500 |" in md
    assert "| eval_base: base | 0 | 5.0 ± 1.5 | 10.0 ± 1.3 |" in md
    assert "| eval_sft: sft | 60 | 40.0 ± 3.5 | 30.0 ± 2.0 |" in md
    assert "| eval_rl: rl | 80 | 70.0 ± 3.2 | 40.0 ± 2.2 |" in md
    assert "| rl | rlvr | done | 20 |" in md  # the stage table
    assert "No 6-benchmark average" in md
    assert "1 unreadable line(s)" in md  # the half-written last line is reported, not fatal
    rows = read_csv(run / "scores.csv")
    assert [(r["source"], r["checkpoint"], r["step"], r["benchmark"]) for r in rows] == [
        ("eval_base", "base", "0", "toy"), ("eval_base", "base", "0", "math500"),
        ("eval_sft", "sft", "60", "toy"), ("eval_sft", "sft", "60", "math500"),
        ("eval_rl", "rl", "80", "toy"), ("eval_rl", "rl", "80", "math500")]
    for name in ("score_vs_step", "scores_by_stage", "training_sft", "training_rl"):
        png_size(run / "plots" / f"{name}.png")
        assert f"plots/{name}.png" in md
    assert not (run / "plots" / "training_eval_rl.png").exists()  # an eval stage's numbers are the table


def test_run_dir_without_eval_or_metrics_reports_what_exists(tmp_path):
    run = write_run(tmp_path / "run", evals=False, metrics=False)
    md = write_report(run).read_text()
    assert "## Stages" in md and "| sft | sft | done | 60 |" in md
    assert "No eval stage in this run" in md and "No metrics.jsonl" in md
    assert read_csv(run / "scores.csv") == []
    assert not (run / "plots").exists() or not list((run / "plots").iterdir())


def test_run_dir_with_failed_eval_stage(tmp_path):
    run = write_run(tmp_path / "run")
    summary = json.loads((run / "summary.json").read_text())
    summary["stages"][4]["status"] = "failed"
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "stages" / "eval_rl" / "eval" / "scores.json").unlink()
    md = write_report(run).read_text()
    assert "Eval stage `eval_rl` (status failed) has no scores.json" in md
    assert "eval_sft: sft" in md and "eval_rl: rl" not in md
    assert "Eval stage `eval_base`" not in md


# ---------------------------------------------------------------------------------------- errors, CLI
def test_wrong_directory_exits_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hi")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "neither an eval output directory" in err and "scores.json" in err and "summary.json" in err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "scores.json").write_text("{not json")
    with pytest.raises(ReportError, match="cannot read"):
        write_report(tmp_path)


def test_cli_prints_report_path(tmp_path, capsys):
    write_scores(tmp_path, ["math500"], steps=(1, 2))
    assert main(["report", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "report.md")


def test_import_and_help_stay_light():
    code = ("import sys\nimport rlvr.eval.report\nfrom rlvr.cli import main\n"
            "try:\n    main(['report', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('matplotlib', 'torch', 'numpy') if m in sys.modules])\n")
    proc = run_cmd([PYTHON, "-c", code], timeout=60)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


def test_rl_training_curves_include_validation_when_logged():
    from rlvr.eval.report import _curve_keys

    records = [{"stage": "rl", "step": 0, "val/accuracy": 0.3, "val/toy/avg@1": 0.3}]
    records += [{"stage": "rl", "step": s, "reward/mean": 0.1 * s, "accuracy": 0.1 * s, "entropy": 0.5, "kl": 0.0,
                 "response/length_mean": 40.0, **({"val/accuracy": 0.3 + 0.05 * s} if s % 2 == 0 else {})}
                for s in range(1, 5)]
    notes: list[str] = []
    assert _curve_keys("rl", "rlvr", records, notes) == [
        "reward/mean", "accuracy", "val/accuracy", "entropy", "response/length_mean"]
    assert notes == ["Stage `rl`: `kl` is 0 at every logged step; no panel drawn."]
    assert _curve_keys("rl", "rlvr", records[1:2], []) == ["reward/mean", "accuracy", "entropy",
                                                           "response/length_mean"]  # no validation logged: no panel


def test_the_best_average_checkpoint_need_not_be_the_last(tmp_path):
    doc = write_scores(tmp_path, SIX_BENCHMARKS)
    doc["rows"] = [score_row(r["checkpoint"], "rl", r["step"], r["benchmark"], {50: 0.3, 100: 0.5, 150: 0.4}[r["step"]])
                   for r in doc["rows"]]  # step 100 now scores highest everywhere
    (tmp_path / "scores.json").write_text(json.dumps(doc))
    md = write_report(tmp_path).read_text()
    assert "| rl/step-100 (best avg) | 100 |" in md and "| rl/step-150 | 150 |" in md
    assert "marks rl/step-100, the checkpoint with the highest 6-benchmark average" in md
