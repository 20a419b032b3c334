"""Rollout DPO: pair building from teacher rollouts, reuse of pairs.jsonl, learning on the toy task,
and a shrunken copy of the four-stage Phi-4-Mini-Reasoning recipe end to end."""

from __future__ import annotations

import json
import types

import pytest
from conftest import PYTHON, REPO, TINY_SMALL, run_cmd, tail

from rlvr.config import DpoStage
from rlvr.data.toy import toy_rows

SMALL = TINY_SMALL


def teacher_file(path, n_prompts=12):
    """Teacher rollouts for toy prompts: per prompt 2 correct, 2 wrong (judged by the verifier, no flag),
    plus prompts with only correct / only wrong responses, and one labelled row."""
    rows = []
    distinct = list({r["prompt"]: r for r in toy_rows("train", 4 * n_prompts, [2, 3], seed=9)}.values())[:n_prompts]
    for i, r in enumerate(distinct):
        box = f"\\boxed{{{r['answer']}}}"
        texts = {"ok": [r["response"], r["response"] + " Checked.", r["response"] + " Done."],
                 "bad": [r["response"].replace(box, f"\\boxed{{{int(r['answer']) + d}}}") for d in (1, 2, 3)]}
        kinds = ["ok", "ok", "bad", "bad"] if i >= 2 else (["ok"] * 3 if i == 0 else ["bad"] * 3)
        for j, k in enumerate(kinds):
            rows.append({"prompt": r["prompt"], "completion": texts[k][j % 3 if i < 2 else j % 2], "gold": r["answer"]})
    rows.append({"prompt": rows[-1]["prompt"], "completion": "I give up.", "correct": False})
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))
    return path


def test_pairs_from_teacher_file_follow_the_rules(tmp_path):
    from rlvr.config import VerifierConfig
    from rlvr.stages.dpo import judged_groups_from_file, make_pairs

    cfg = DpoStage(name="dpo", type="dpo", pairs={"source": "file", "path": str(teacher_file(tmp_path / "t.jsonl")),
                                                  "pairs_per_prompt": 3})
    ctx = types.SimpleNamespace(cfg=cfg, recipe=types.SimpleNamespace(verifier=VerifierConfig()))
    groups = judged_groups_from_file(ctx)
    assert len(groups) == 12
    pairs, stats = make_pairs(groups, cfg, seed=0)
    assert stats == {"prompts": 12, "no_correct": 1, "no_incorrect": 1}  # all-wrong and all-right prompts dropped
    assert len(pairs) == 10 * 3  # 2 correct x (2 or 3) incorrect >= 3 distinct pairs each
    for p in pairs:
        assert p["chosen_reason"] == "match" and p["rejected_reason"] in ("mismatch", "labelled")
        assert f"\\boxed{{{p['gold']}}}" in p["chosen"] and p["chosen"] != p["rejected"]
    assert len({(p["prompt"], p["chosen"], p["rejected"]) for p in pairs}) == len(pairs)


@pytest.mark.slow
def test_dpo_on_policy_pairs_raises_the_margin(sft_model, tmp_path):
    """Pairs from the policy's own rollouts, judged by the verifier; training raises the implicit-reward
    margin and its pair accuracy. (On clean toy data held-out accuracy does not rise after DPO, with or
    without the RPO term; it does when the SFT data came from an imperfect teacher, whose mistake the
    SFT model repeats: recipes/tiny.yaml, whose eval stages measure it, and docs/algorithms.md.)"""
    run_dir = tmp_path / "dpo"
    stage = ("[{name: dpo, type: dpo, init: " + str(sft_model) + ", data: {toy: {n: 96, levels: [1]}},"
             " pairs: {rollouts_per_prompt: 8, temperature: 0.7, max_response_tokens: 96, pairs_per_prompt: 2},"
             " beta: 0.1, epochs: 2, optim: {lr: 5.0e-5, schedule: constant},"
             " generation: {backend: vllm, max_model_len: 256, kv_cache_gib: 0.25}}]")
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
                    "--set", f"model.tiny={SMALL}", "--set", f"stages={stage}",
                    "--set", "backend={zero_stage: 2, micro_batch_size: 8}"], timeout=900)
    assert proc.returncode == 0, tail(proc)
    pairs = [json.loads(x) for x in (run_dir / "stages" / "dpo" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(p["chosen_reason"] == "match" and p["rejected_reason"] != "match" for p in pairs)
    m = json.loads((run_dir / "summary.json").read_text())["stages"][0]["metrics"]
    assert m["margin_last"] > m["margin_first"] + 0.05, m
    assert m["pair_accuracy_last"] > 0.6, m

    # pairs_from reuses the file: no generation, the same pairs
    again = tmp_path / "again"
    stage2 = stage.replace("data: {toy: {n: 96, levels: [1]}},", f"pairs_from: {run_dir / 'stages' / 'dpo' / 'pairs.jsonl'},")
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(again),
                    "--set", f"model.tiny={SMALL}", "--set", f"stages={stage2}", "--set", "stages.dpo.max_steps=1",
                    "--set", "backend={zero_stage: 2, micro_batch_size: 8}"], timeout=600)
    assert proc.returncode == 0, tail(proc)
    assert "reusing" in proc.stdout
    assert (again / "stages" / "dpo" / "pairs.jsonl").read_text() == (run_dir / "stages" / "dpo" / "pairs.jsonl").read_text()


@pytest.mark.slow
def test_shrunken_phi4_recipe_runs_all_four_stages(tmp_path, sft_model):
    """From a teacher to the RL stage in one file: the two distill stages sample a small SFT model (the stand-in
    teacher), midtrain and SFT read their correct responses, DPO their pairs."""
    run_dir = tmp_path / "phi4"
    gen = "{backend: vllm, max_model_len: 256, kv_cache_gib: 0.25, use_tqdm: false}"
    overrides = [
        "model={tiny: " + SMALL + ", dtype: float32}",
        "backend={zero_stage: 2, micro_batch_size: 8, grad_accum: 1}",
        *[o for d in ("distill", "distill_hard") for o in (
            f"stages.{d}.teacher={sft_model}", f"stages.{d}.data={{toy: {{n: 32, levels: [1]}}}}",
            f"stages.{d}.max_response_tokens=64", f"stages.{d}.chunk_size=16", f"stages.{d}.generation={gen}")],
        "stages.distill_hard.selection={drop_never_solved: true}",  # 32 easy prompts: keep those with pairs
        "stages.midtrain.seq_len=256", "stages.midtrain.max_steps=3",
        "stages.sft.max_len=256", "stages.sft.max_steps=3",
        "stages.dpo.pairs.max_len=256", "stages.dpo.max_steps=2",
        "stages.dpo.micro_batch_size=4",
        *[f"stages.{s}.global_batch_size={n}" for s, n in (("midtrain", 8), ("sft", 8), ("dpo", 4))],
        "stages.rl.data={toy: {n: 64, levels: [1]}}", "stages.rl.prompts_per_step=4", "stages.rl.rollouts_per_prompt=4",
        "stages.rl.max_response_tokens=48", "stages.rl.max_steps=2", "stages.rl.micro_batch_size=16",
        "stages.rl.generation={backend: vllm, max_model_len: 256, kv_cache_gib: 0.25}",
    ]
    cmd = [PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "phi4_mini_reasoning.yaml"), "--run-dir", str(run_dir)]
    for o in overrides:
        cmd += ["--set", o]
    proc = run_cmd(cmd, timeout=900)
    assert proc.returncode == 0, tail(proc)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(s["name"], s["type"], s["status"]) for s in summary["stages"]] == [
        ("distill", "distill", "done"), ("distill_hard", "distill", "done"), ("midtrain", "midtrain", "done"),
        ("sft", "sft", "done"), ("dpo", "dpo", "done"), ("rl", "rlvr", "done")]
    logged = {json.loads(x)["stage"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()}
    assert logged == {"distill", "distill_hard", "midtrain", "sft", "dpo", "rl"}
    assert "[dpo] reusing" in proc.stdout and str(run_dir / "stages" / "distill_hard" / "pairs.jsonl") in proc.stdout
    rl = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"stage": "rl"' in x]
    assert rl[0]["temperature"] == 1.0 and rl[1]["temperature"] == pytest.approx(0.6)  # annealed over half of 2 steps
    for s in summary["stages"][2:]:
        assert (run_dir / "stages" / s["name"] / "final" / "model.safetensors").is_file()


def _pair_examples(chosen: str, rejected: str):
    from rlvr.data.lm import sft_example
    from rlvr.models.tiny import build_tokenizer

    tok = build_tokenizer()
    prompt = {"prompt": "What is 47 + 38? Think step by step and put the final answer in \\boxed{}."}
    return tok, sft_example(tok, {**prompt, "response": chosen}), sft_example(tok, {**prompt, "response": rejected})


def test_divergent_step_keeps_only_the_first_differing_line():
    """span: divergent_step. Chosen and rejected share their first line and differ on the second; only
    that line (from the first differing token through its newline) keeps a loss, on each side."""
    from rlvr.data.lm import IGNORE
    from rlvr.stages.dpo import divergent_step

    chosen = "We compute 47 + 38.\nOnes: 7 + 8 = 15. Write 5, carry 1.\nTens: 4 + 3 + 1 = 8.\nThe answer is \\boxed{85}."
    rejected = "We compute 47 + 38.\nOnes: 7 + 8 = 16. Write 6, carry 1.\nTens: 4 + 3 + 1 = 8.\nThe answer is \\boxed{86}."
    tok, c, r = _pair_examples(chosen, rejected)

    def ends(t):
        return t == tok.eos_token_id or "\n" in tok.decode([t])

    c2, r2 = divergent_step(c, r, ends)
    kept = [tok.decode([t for t in ex.targets if t != IGNORE]) for ex in (c2, r2)]
    assert kept[0].endswith("5. Write 5, carry 1.\n") and kept[1].endswith("6. Write 6, carry 1.\n"), kept
    assert "Ones" not in kept[0] and "Tens" not in kept[0]  # the shared prefix and the later lines carry no loss
    assert c2.input_ids == c.input_ids and r2.input_ids == r.input_ids  # the sequences themselves are unchanged
    # a longer response diverges where the shorter one ends its turn: that end-of-turn token is its step
    tok, c, r = _pair_examples(chosen, chosen + " Checked.")
    c2, r2 = divergent_step(c, r, ends)
    assert [t for t in c2.targets if t != IGNORE] == [tok.eos_token_id]
    assert tok.decode([t for t in r2.targets if t != IGNORE]).startswith(" Checked.")
    assert divergent_step(c, c, ends) is None  # identical responses have no divergent step


def test_reference_chosen_pairs_the_gold_solution_with_each_wrong_rollout():
    """pairs.chosen: reference: the chosen side is the data's reference solution, the rejected sides are
    the policy's incorrect rollouts (distinct, at most pairs_per_prompt); all-correct prompts are dropped."""
    from rlvr.stages.dpo import make_pairs

    cfg = DpoStage(name="dpo", type="dpo", data={"toy": {}}, pairs={"chosen": "reference", "pairs_per_prompt": 2})

    def resp(text, correct):
        return {"text": text, "correct": correct, "reason": "match" if correct else "mismatch", "truncated": False}

    groups = [{"prompt": "p1", "gold": "5", "reference": "gold 5", "responses": [resp("a 5", True), resp("b 6", False),
                                                                                 resp("c 7", False), resp("d 8", False)]},
              {"prompt": "p2", "gold": "9", "reference": "gold 9", "responses": [resp("e 9", True), resp("f 9", True)]}]
    pairs, stats = make_pairs(groups, cfg, seed=0)
    assert stats == {"prompts": 2, "no_correct": 0, "no_incorrect": 1}
    assert len(pairs) == 2 and {p["chosen"] for p in pairs} == {"gold 5"}
    assert len({p["rejected"] for p in pairs}) == 2 and all(p["chosen_reason"] == "reference" for p in pairs)
    with pytest.raises(ValueError, match="needs pairs.source 'policy'"):
        DpoStage(name="dpo", type="dpo", pairs={"source": "file", "path": "x.jsonl", "chosen": "reference"})


def test_token_budget_micro_batches_give_the_same_dpo_update(tmp_path):
    """max_tokens_per_micro_batch on a DPO stage: pairs sorted by length and packed up to 400 positions
    (several micro-batches of different sizes) give the same losses and weights as 4 pairs x 2."""
    from safetensors.torch import load_file

    teacher = teacher_file(tmp_path / "teacher.jsonl")
    results = {}
    for name, extra in (("fixed", "micro_batch_size: 4, grad_accum: 2"), ("budget", "max_tokens_per_micro_batch: 400")):
        run_dir = tmp_path / name
        stage = ("[{name: dpo, type: dpo, pairs: {source: file, path: " + str(teacher) + ", max_len: 200},"
                 " beta: 0.1, max_steps: 2, optim: {lr: 1.0e-4, schedule: constant, grad_clip: 0}, " + extra + "}]")
        proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
                        "--set", f"model.tiny={SMALL}", "--set", f"stages={stage}",
                        "--set", "backend={zero_stage: 2, micro_batch_size: 4, grad_accum: 2}"], timeout=300)
        assert proc.returncode == 0, tail(proc)
        metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
        results[name] = metrics, load_file(str(run_dir / "stages" / "dpo" / "final" / "model.safetensors"))
    (ma, wa), (mb, wb) = results["fixed"], results["budget"]
    assert len(ma) == len(mb) == 2
    for x, y in zip(ma, mb, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5) and x["margin"] == pytest.approx(y["margin"], abs=1e-5)
        assert x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-5)  # Adam's first steps hide a wrong scale
    for k in wa:  # Adam's first update is ~lr * sign(g): 1e-5 is a tenth of lr
        assert (wa[k] - wb[k]).abs().max().item() <= 1e-5, k
