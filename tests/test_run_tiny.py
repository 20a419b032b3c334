"""`rlvr run recipes/tiny.yaml` end to end (shortened with --set): mid-training then SFT; the final/
checkpoints load with from_pretrained; SFT loss falls; greedy answers on held-out toy problems are
right more often after SFT than before it (scored by the shared verifier)."""

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
    "--set", "stages.midtrain.data.toy={n: 600, levels: [1, 2]}", "--set", "stages.midtrain.max_steps=10",
    "--set", "stages.midtrain.seq_len=256",
    "--set", "stages.sft.data.toy={n: 4000, levels: [1, 2]}", "--set", "stages.sft.max_steps=150",
    "--set", "stages.sft.optim={lr: 5.0e-3, warmup_ratio: 0.05}",
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
def test_tiny_recipe_midtrain_then_sft_learns(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
                    *SHORT], timeout=600)
    assert proc.returncode == 0, tail(proc)
    assert "[midtrain] done" in proc.stdout and "[sft] done" in proc.stdout

    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(s["name"], s["status"]) for s in summary["stages"]] == [("midtrain", "done"), ("sft", "done")]
    assert (run_dir / "config.yaml").is_file()
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"stage", "step", "time", "loss", "lr"} <= records[0].keys()
    sft_loss = [r["loss"] for r in records if r["stage"] == "sft"]
    assert len(sft_loss) == 150
    assert sum(sft_loss[-10:]) / 10 < 0.6 * sum(sft_loss[:10]) / 10  # SFT loss falls

    held_out = toy_rows("test", 80, [1, 2], seed=0)
    before = greedy_accuracy(run_dir / "stages" / "midtrain" / "final", held_out)
    after = greedy_accuracy(run_dir / "stages" / "sft" / "final", held_out)
    assert after >= before + 0.05, (before, after)
