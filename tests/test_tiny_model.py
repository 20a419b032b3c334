"""Tiny model + tokenizer: deterministic, round-trip through save/from_pretrained, vLLM-compatible heads."""

from __future__ import annotations

import hashlib

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlvr.config import TinyModelSpec
from rlvr.models.tiny import build_tiny

SPEC = TinyModelSpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_model_is_deterministic_and_round_trips(tmp_path):
    a, b = build_tiny(SPEC, tmp_path / "a"), build_tiny(SPEC, tmp_path / "b")
    for name in ("model.safetensors", "tokenizer.json"):
        assert _digest(a / name) == _digest(b / name)
    other = build_tiny(SPEC.model_copy(update={"seed": 1}), tmp_path / "c")
    assert _digest(other / "model.safetensors") != _digest(a / "model.safetensors")

    tok = AutoTokenizer.from_pretrained(a)
    model = AutoModelForCausalLM.from_pretrained(a, use_safetensors=True).eval()
    assert model.config.model_type == "qwen2"
    assert model.config.hidden_size // model.config.num_attention_heads >= 32  # vLLM CPU attention
    text = "What is 47 + 38? \\boxed{85}"
    assert tok.decode(tok(text)["input_ids"]) == text
    digits = tok.convert_ids_to_tokens(tok("12345")["input_ids"])
    assert digits == ["1", "2", "3", "4", "5"]  # digits are single tokens
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == tok.eos_token_id

    resaved = tmp_path / "resaved"
    model.save_pretrained(resaved, safe_serialization=True)
    tok.save_pretrained(resaved)
    again = AutoModelForCausalLM.from_pretrained(resaved, use_safetensors=True).eval()
    x = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(x).logits, again(x).logits)
