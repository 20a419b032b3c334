"""The `eval` stage inside a recipe: it evaluates the previous training stage's output, writes the
sweep layout under stages/<name>/eval/ and `accuracy` into summary.json, and the training stage after
it still starts from the previous *training* stage's output. --resume counts it done by its
scores.json; --from-stage evaluates again (its old directory, cache included, moved to superseded/).
export_every writes loadable step exports."""

from __future__ import annotations

import json

import pytest
from conftest import PYTHON, REPO, TINY_SMALL, run_cmd, tail

STAGES = ("stages=[{name: sft, type: sft, data: {toy: {n: 256, levels: [1]}}, max_len: 256, max_steps: 4,"
          " export_every: 2, optim: {lr: 5.0e-3}},"
          " {name: check, type: eval, protocol: toy, benchmarks: {toy: {limit: 4}}, settings: {max_tokens: 24},"
          " generation: {kv_cache_gib: 0.25, max_model_len: 256, use_tqdm: false}},"
          " {name: more, type: sft, data: {toy: {n: 64, levels: [1], seed: 5}}, max_len: 256, max_steps: 1}]")


def _run(run_dir, *extra):
    return run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
                    "--set", f"model.tiny={TINY_SMALL}", "--set", STAGES, "--set", "backend.micro_batch_size=32",
                    *extra], timeout=600)


@pytest.mark.slow
def test_eval_stage_scores_the_previous_training_stage_and_passes_it_on(tmp_path):
    run = tmp_path / "run"
    proc = _run(run)
    assert proc.returncode == 0, tail(proc)
    assert f"[more] start: sft from {run / 'stages' / 'sft' / 'final'}" in proc.stdout, tail(proc)
    assert f"[check] start: eval from {run / 'stages' / 'sft' / 'final'}" in proc.stdout, tail(proc)

    entry = json.loads((run / "summary.json").read_text())["stages"][1]
    assert entry["type"] == "eval" and entry["status"] == "done" and entry["steps"] == 0
    assert set(entry["metrics"]) == {"accuracy", "toy", "seconds"} and 0 <= entry["metrics"]["accuracy"] <= 1
    assert entry["output"] == str(run / "stages" / "check" / "eval")
    scores = json.loads((run / "stages" / "check" / "eval" / "scores.json").read_text())
    assert scores["checkpoints"] == [{"label": "sft", "path": str(run / "stages" / "sft" / "final"), "stage": "sft", "step": 4}]
    assert scores["rows"][0]["avg@k"] == entry["metrics"]["accuracy"] and scores["rows"][0]["n_problems"] == 4
    assert len((run / "stages" / "check" / "eval" / "generations" / "sft" / "toy" /
                "chat-T0-p1-k1-len24-seed0.jsonl").read_text().splitlines()) == 4
    table = proc.stdout[proc.stdout.index("stage  type"):]
    assert f"check  eval  done    0      {entry['metrics']['accuracy']:.3f}" in table, table
    # the run ends with its report: the eval stage's score in report.md, the plots beside it
    assert f"report: {run / 'report.md'}" in proc.stdout, tail(proc)
    assert f"{100 * entry['metrics']['accuracy']:.1f}" in (run / "report.md").read_text()
    assert (run / "plots" / "scores_by_stage.png").stat().st_size > 10_000

    # export_every: step 2 exported (step 4 is final/), loadable as a Hugging Face checkpoint
    from transformers import AutoModelForCausalLM

    exports = sorted(p.name for p in (run / "stages" / "sft" / "exports").iterdir())
    assert exports == ["step-2"]
    AutoModelForCausalLM.from_pretrained(run / "stages" / "sft" / "exports" / "step-2", use_safetensors=True)

    proc = _run(run, "--resume")  # everything is done, the eval stage by its scores.json
    assert proc.returncode == 0, tail(proc)
    assert proc.stdout.count("skipped: already done") == 3, tail(proc)

    proc = _run(run, "--from-stage", "check")  # evaluates again (old eval dir moved aside), then trains `more` again
    assert proc.returncode == 0, tail(proc)
    assert "rlvr eval: 4 completions generated, 0 reused from the cache" in proc.stdout, tail(proc)
    assert f"[more] start: sft from {run / 'stages' / 'sft' / 'final'}" in proc.stdout
    assert len(list((run / "superseded").glob("*/stages/check/eval/generations"))) == 1

    # sft retrained: every later stage's outputs, the eval's cached answers included, are moved aside
    proc = _run(run, "--from-stage", "sft")
    assert proc.returncode == 0, tail(proc)
    assert "rlvr eval: 4 completions generated, 0 reused from the cache" in proc.stdout, tail(proc)
