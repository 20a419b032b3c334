"""1-shot RLVR's whole selection loop on the shipped recipes, shortened to check the plumbing: RL on a toy pool
(recipes/tiny_select.yaml) logs per-example accuracy, `rlvr select` ranks the pool and writes pi_1, and
recipes/tiny_one_shot.yaml trains on exactly that example from the SFT model, with held-out accuracy before
and after. Whether the accuracy rises is measured by bench/one_shot_select.py (docs/algorithms.md), not
asserted here. Also: the DSR-sub recipe is one_shot.yaml on the pool, and the loop's follow-up command on
one_shot.yaml validates."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import PYTHON, REPO, run_cmd, tail

from rlvr.config import load_recipe, load_recipe_data, missing_inputs

sys.path.insert(0, str(REPO / "bench"))
from one_shot_select import held_out, write_pool  # noqa: E402


def _jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_dsr_sub_recipe_is_one_shot_on_the_pool_and_its_follow_up_validates(shared_data, tmp_path, monkeypatch):
    """one_shot_dsr_sub.yaml differs from one_shot.yaml only in data, prompt suffix, steps, exports and name;
    its data is DSR-sub by extra_info.index; `rlvr select` on the released accuracies then the header's
    one_shot.yaml command validates and reads pi_1 (index 124) without a second instruction."""
    from rlvr.cli import main as cli
    from rlvr.data.sources import load_rows

    pool_run = load_recipe_data(REPO / "recipes" / "one_shot_dsr_sub.yaml")
    one_shot = load_recipe_data(REPO / "recipes" / "one_shot.yaml")
    a, b = pool_run["stages"][0], one_shot["stages"][0]
    assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == {"data", "prompt_suffix", "max_steps", "export_every"}
    assert {k for k in pool_run if pool_run[k] != one_shot[k]} == {"name", "stages"}
    assert (a["max_steps"], a["prompts_per_step"], a["rollouts_per_prompt"], a["prompt_suffix"]) == (500, 128, 8, "")

    monkeypatch.chdir(REPO)  # the recipe's data path is relative to the checkout, as `rlvr run` reads it
    recipe = load_recipe(REPO / "recipes" / "one_shot_dsr_sub.yaml")
    if missing_inputs(recipe):
        pytest.skip(f"DSR-sub not at the recipe's path here: {missing_inputs(recipe)}")
    rows = load_rows(recipe.stage("rl").data, needs=("prompt", "answer"), with_ids=True)
    assert len(rows) == 1209 and rows[124]["id"] == 124 and rows[124]["answer"] == "12.8"
    assert rows[124]["prompt"].endswith("Let's think step by step and output the final answer within \\boxed{}.")

    d = shared_data / "one_shot_rlvr"
    monkeypatch.chdir(tmp_path)
    assert cli(["select", str(d / "acc_step_500.json"), "--data", str(d / "dsr_sub.parquet"), "--out", "pis/"]) == 0
    sets = ["stages.rl.data={path: pis/pi_1.jsonl}", 'stages.rl.prompt_suffix=""']
    assert cli(["validate", str(REPO / "recipes" / "one_shot.yaml"), *[x for s in sets for x in ("--set", s)]]) == 0
    stage = load_recipe(REPO / "recipes" / "one_shot.yaml", sets).stage("rl")
    pi1 = load_rows(stage.data, needs=("prompt", "answer"), with_ids=True)
    assert stage.prompt_suffix == "" and {r["id"] for r in pi1} == {124} and pi1[0]["prompt"] == rows[124]["prompt"]


@pytest.mark.slow
def test_select_loop_on_the_tiny_recipes(tmp_path):
    """tiny_select.yaml (SFT cut to 60 steps, RL on the 16-problem pool for 2 epochs of 8 prompts x 4 rollouts,
    held-out evals on 32 problems) -> `rlvr select` -> tiny_one_shot.yaml on pi_1 (2 steps)."""
    pool = tmp_path / "pool.jsonl"
    rows = write_pool(pool)
    assert len(rows) == 16 and [r["index"] for r in rows] == list(range(16))
    evals = "{toy: {limit: 32}}"
    short = ["--set", "model.tiny.seed=0", "--set", f"stages.eval_sft.benchmarks={evals}",
             "--set", f"stages.eval_rl.benchmarks={evals}"]
    sel = tmp_path / "select"
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny_select.yaml"), "--run-dir", str(sel),
                    "--set", "stages.sft.max_steps=60", "--set", "stages.sft.save_every=60",
                    "--set", f"stages.rl.data.path={pool}", "--set", "stages.rl.rollouts_per_prompt=4",
                    "--set", "stages.rl.max_steps=4", "--set", "stages.rl.save_every=4",
                    "--set", "stages.rl.max_response_tokens=96", *short], timeout=900)
    assert proc.returncode == 0, tail(proc)
    lines = _jsonl(sel / "stages" / "rl" / "examples.jsonl")
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    for epoch in (lines[:2], lines[2:]):  # 8 prompts per step: each epoch samples the 16 examples once
        assert sorted(int(k) for x in epoch for k in x["examples"]) == list(range(16))
        assert all(total == 4 for x in epoch for _, total in x["examples"].values())

    picks = tmp_path / "pis"
    proc = run_cmd([PYTHON, "-m", "rlvr", "select", str(sel), "--data", str(pool), "--top", "1", "--repeat", "8",
                    "--out", str(picks)])
    assert proc.returncode == 0, tail(proc)
    ranking = _jsonl(picks / "ranking.jsonl")
    assert len(ranking) == 16 and all(r["epochs"] == 2 for r in ranking)
    chosen = ranking[0]["index"]
    assert _jsonl(picks / "pi_1.jsonl") == [{"problem": rows[chosen]["problem"], "answer": rows[chosen]["answer"],
                                             "index": chosen}] * 8

    sft = sel / "stages" / "sft" / "final"
    one = tmp_path / "one_shot"
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny_one_shot.yaml"), "--run-dir", str(one),
                    "--set", f"stages.eval_before.init={sft}", "--set", f"stages.rl.init={sft}",
                    "--set", f"stages.rl.data={{path: {picks / 'pi_1.jsonl'}}}", "--set", "stages.rl.max_steps=2",
                    "--set", "stages.rl.save_every=2", "--set", "stages.rl.rollouts_per_prompt=4",
                    "--set", "stages.rl.max_response_tokens=96", "--set", "model.tiny.seed=0",
                    "--set", f"stages.eval_before.benchmarks={evals}", "--set", f"stages.eval_after.benchmarks={evals}"],
                   timeout=900)
    assert proc.returncode == 0, tail(proc)
    one_lines = _jsonl(one / "stages" / "rl" / "examples.jsonl")
    assert [x["step"] for x in one_lines] == [1, 2]
    assert all(x["examples"].keys() == {str(chosen)} and x["examples"][str(chosen)][1] == 32 for x in one_lines)
    before, after = held_out(one, "eval_before"), held_out(one, "eval_after")
    assert before == held_out(sel, "eval_sft")  # the same SFT model, greedy, the same 32 problems
    assert 0.0 <= after <= 1.0
    print(f"held-out accuracy (32 problems): SFT {before:.3f} -> 1-shot RL on pool example {chosen} {after:.3f}")
