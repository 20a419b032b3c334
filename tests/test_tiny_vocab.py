"""model.tiny.embedding_size: the tiny model padded to a real vocabulary (Qwen2.5's 151,936 rows) keeps its
tokenizer and weights, never samples a padded id, and generates decodable text with vLLM and HF."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
import torch
from conftest import PYTHON, REPO, run_cmd, tail
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlvr.cli import main
from rlvr.config import TinyModelSpec
from rlvr.models.tiny import build_model, build_tiny

QWEN25 = 151936
SPEC = TinyModelSpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128)
PADDED = SPEC.model_copy(update={"embedding_size": QWEN25})


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_vocab")
    return build_tiny(SPEC, root / "default"), build_tiny(PADDED, root / "padded")


def test_padded_model_keeps_tokenizer_and_weights(built):
    default, padded = built
    assert _digest(default / "tokenizer.json") == _digest(padded / "tokenizer.json")
    tok = AutoTokenizer.from_pretrained(padded)
    n = len(tok)
    a = AutoModelForCausalLM.from_pretrained(default, use_safetensors=True).eval()
    b = AutoModelForCausalLM.from_pretrained(padded, use_safetensors=True).eval()
    assert a.config.vocab_size == n and b.config.vocab_size == QWEN25
    assert b.model.embed_tokens.weight.shape == b.lm_head.weight.shape == (QWEN25, SPEC.hidden_size)
    last_v_bias = f"model.layers.{SPEC.num_layers - 1}.self_attn.v_proj.bias"
    mine, theirs = a.state_dict(), b.state_dict()
    assert mine.keys() == theirs.keys()
    for name, tensor in mine.items():
        if name != last_v_bias:  # the one weight that changes: it makes the padded rows' constant direction
            assert torch.equal(tensor, theirs[name][:len(tensor)]), name
    assert not b.model.embed_tokens.weight[n:].any()

    # the padded ids are never sampled: their probability is negligible on real text
    text = ["<|im_start|>user\nWhat is 47 + 38?<|im_end|>\n<|im_start|>assistant\nOnes: 7 + 8 = 15. \\boxed{85}"]
    ids = torch.tensor(tok(text)["input_ids"])
    with torch.no_grad():
        logits = b(ids).logits[0]  # [T, V]
    logp = logits.log_softmax(-1)
    assert logp[:, n:].logsumexp(-1).exp().max() < 1e-15
    assert (logits[:, n:].max(-1).values < logits[:, :n].max(-1).values - 40).all()


def test_default_embedding_size_is_the_tokenizer_size():
    # None builds exactly the model built before the field existed (so no recipe changes): the tokenizer's
    # rows, HF's initialisation untouched (all biases zero)
    model = build_model(SPEC, 443)
    again = build_model(SPEC.model_copy(update={"embedding_size": None}), 443)
    assert model.config.vocab_size == 443 and model.lm_head.weight.shape[0] == 443
    for (name, x), y in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert not any(t.any() for k, t in model.state_dict().items() if k.endswith(".bias"))
    same_size = build_model(SPEC.model_copy(update={"embedding_size": 443}), 443)
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), same_size.state_dict().values(), strict=True))


def test_embedding_size_below_the_tokenizer_size_is_refused():
    with pytest.raises(ValueError, match=r"model\.tiny\.embedding_size 300 is smaller than the tokenizer's 443 tokens"):
        build_model(SPEC.model_copy(update={"embedding_size": 300}), 443)


@pytest.mark.parametrize("value, key, words", [
    (100, "model.tiny.embedding_size", "must be >= 300, got 100"),
    (300000, "model.tiny.embedding_size", "must be <= 262144, got 300000"),
    (400, "model.tiny", "embedding_size 400 < vocab_size 512"),
])
def test_schema_rejects_out_of_range_embedding_size(value, key, words, tmp_path, capsys):
    import yaml

    data = {"name": "t", "model": {"tiny": {"embedding_size": value}},
            "stages": [{"name": "sft", "type": "sft", "data": {"toy": {}}, "optim": {"lr": 1e-3}}]}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(data)))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"  {key}: " in err and words in err, err


def test_generation_at_a_real_vocabulary_is_decodable(built, tmp_path):
    _, padded = built
    out = tmp_path / "result.json"
    proc = run_cmd([PYTHON, str(REPO / "tests" / "tiny_vocab_worker.py"), str(padded), str(out)], timeout=300)
    assert proc.returncode == 0, tail(proc)
    result = json.loads(out.read_text())
    tok = AutoTokenizer.from_pretrained(padded)
    for backend in ("hf", "vllm"):
        assert result[backend]["tokenizer_size"] == len(tok)
        comps = result[backend]["completions"]
        assert len(comps) == 2 * 2 + 2
        for c in comps:
            assert c["completion_ids"] and max(c["completion_ids"]) < len(tok), (backend, c)
            ids = c["completion_ids"][:-1] if c["finish_reason"] == "stop" else c["completion_ids"]
            # both cut an incomplete trailing UTF-8 character (U+FFFD) from a "length" completion
            assert c["text"] == tok.decode(ids, skip_special_tokens=True).rstrip("\ufffd"), (backend, c)
        assert any(c["text"] for c in comps)
    greedy = [[c["completion_ids"] for c in result[b]["completions"][4:]] for b in ("hf", "vllm")]
    assert greedy[0] == greedy[1]
