"""Toy task, tokenisation/masking, packing boundaries, and data sources with field mapping."""

from __future__ import annotations

import json
import re

import pytest
import torch
from pydantic import ValidationError

from rlvr.config import DataConfig, TinyModelSpec
from rlvr.data.lm import IGNORE, collate, document_ids, pack, pack_examples, sft_example, shift
from rlvr.data.sources import DataError, load_rows
from rlvr.data.toy import LEVELS, add_forgetting_carries, split_size, toy_rows
from rlvr.models.tiny import build_model, build_tokenizer
from rlvr.verify import verify_batch


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(512)


# ------------------------------------------------------------------------------------ toy task
def test_toy_answers_are_right_and_boxed():
    for row in toy_rows("train", 300, list(LEVELS), seed=3):
        a, op, b = re.match(r"What is (\d+) ([-+*]) (\d+)\?", row["prompt"]).groups()
        value = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert row["answer"] == str(value)
        assert row["response"].endswith(f"\\boxed{{{value}}}.")


def test_toy_is_deterministic_and_splits_are_disjoint():
    assert toy_rows("train", 50, [2, 3], seed=1) == toy_rows("train", 50, [2, 3], seed=1)
    assert toy_rows("train", 50, [2, 3], seed=1) != toy_rows("train", 50, [2, 3], seed=2)
    train = {r["prompt"] for r in toy_rows("train", 5000, list(LEVELS), seed=0)}
    test = {r["prompt"] for r in toy_rows("test", 500, list(LEVELS), seed=0)}
    assert test and not train & test


def test_toy_distinct_draws_each_problem_once_and_knows_when_a_split_runs_out():
    rows = toy_rows("test", 200, [1, 2], seed=0, distinct=True)
    assert len({r["prompt"] for r in rows}) == 200
    assert sum(r["level"] == 1 for r in rows) == split_size(1, "test") == 9  # level 1 used up, then level 2 only
    assert len({r["prompt"] for r in toy_rows("test", 200, [1, 2], seed=0)}) < 200  # without: repeats
    assert toy_rows("test", 30, [1, 2], seed=0, distinct=True) == rows[:30]  # a prefix of a longer draw
    with pytest.raises(ValueError, match="hold only"):
        toy_rows("test", 9 + split_size(2, "test") + 1, [1, 2], distinct=True)


def test_toy_teacher_error_corrupts_that_fraction_of_train_solutions_and_nothing_else():
    clean = toy_rows("train", 400, [1, 2], seed=5)
    noisy = toy_rows("train", 400, [1, 2], seed=5, teacher_error=0.3)
    assert noisy == toy_rows("train", 400, [1, 2], seed=5, teacher_error=0.3)  # deterministic
    assert [r["prompt"] for r in noisy] == [r["prompt"] for r in clean]  # same problems
    assert [r["answer"] for r in noisy] == [r["answer"] for r in clean]  # the true answers
    buggy = [(c, r) for c, r in zip(clean, noisy, strict=True) if "carry" not in r["response"]
             and "carry" in c["response"]]
    teacher = [r for c, r in zip(clean, noisy, strict=True) if r["response"] != c["response"]]
    carrying = [c for c in clean if "carry" in c["response"]]
    assert len(teacher) == len(buggy)  # a teacher row reads differently only where a carry occurs
    assert 0.22 < len(buggy) / len(carrying) < 0.38  # 120 of the 400 rows come from the buggy teacher
    for c, r in buggy:
        boxed = re.search(r"\\boxed\{(\d+)\}", r["response"]).group(1)
        a, b = map(int, re.match(r"What is (\d+) \+ (\d+)\?", r["prompt"]).groups())
        assert boxed == str(add_forgetting_carries(a, b)) != r["answer"] == str(a + b)
        wrong, right = verify_batch([r["response"], c["response"]], [r["answer"]] * 2)
        assert (wrong.score, right.score) == (0.0, 1.0)
    everything = toy_rows("train", 400, [1, 2], seed=5, teacher_error=1.0)
    assert all("carry" not in r["response"] for r in everything)
    assert sum(r["response"] != c["response"] for r, c in zip(everything, clean, strict=True)) == len(carrying)
    with pytest.raises(ValueError, match="train split only"):
        toy_rows("test", 10, [2], teacher_error=0.3)
    with pytest.raises(ValidationError, match="train split only"):
        DataConfig.model_validate({"toy": {"split": "test", "teacher_error": 0.3}})
    rows = load_rows(DataConfig.model_validate({"toy": {"n": 400, "levels": [1, 2], "seed": 5, "teacher_error": 0.3}}))
    assert rows == noisy  # a recipe's data.toy.teacher_error reaches the rows


# ------------------------------------------------------------------------------------ SFT masking
def test_sft_loss_is_on_response_tokens_only(tok):
    row = {"prompt": "What is 2 + 3?", "response": "So 2 + 3 = 5. The answer is \\boxed{5}."}
    ex = sft_example(tok, row)
    targets = [t for t in ex.targets if t != IGNORE]
    assert tok.decode(targets) == row["response"] + "<|im_end|>"
    prompt_len = len(tok(tok.apply_chat_template([{"role": "user", "content": row["prompt"]}], tokenize=False,
                                                  add_generation_prompt=True))["input_ids"])
    # position t predicts token t+1: the first target is at the last prompt position
    assert all(t == IGNORE for t in ex.targets[: prompt_len - 1])
    assert ex.targets[prompt_len - 1] != IGNORE
    assert ex.input_ids[-1] == tok.eos_token_id and ex.targets[-1] == IGNORE


# ------------------------------------------------------------------------------------ packing
def test_packing_never_crosses_document_boundaries(tok):
    docs = [document_ids(tok, r) for r in toy_rows("train", 40, [1, 2, 3], seed=0)]
    rows = pack(docs, 256, tok.pad_token_id, seed=0)
    assert all(len(r) == 256 for r in rows)
    total_targets = 0
    for r in rows:
        starts = [i for i, p in enumerate(r.position_ids) if p == 0]
        for s in starts[1:]:
            # the token before a document start never predicts the next document's first token
            assert r.targets[s - 1] == IGNORE
        for i, t in enumerate(r.targets):
            if t != IGNORE:
                assert r.position_ids[i + 1] == r.position_ids[i] + 1 and t == r.input_ids[i + 1]
                total_targets += 1
    # every document token except each piece's first one is a target exactly once
    assert total_targets == sum(len(d) - 1 for d in docs)


def test_packed_forward_equals_separate_forwards(tok):
    """Attention stays within each packed document: logits match running each document alone."""
    model = build_model(TinyModelSpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1,
                                      intermediate_size=128), len(tok)).eval()
    docs = [document_ids(tok, r)[:40] for r in toy_rows("train", 3, [2], seed=5)]
    row = pack_examples([shift(d, [1] * len(d)) for d in docs], 128, tok.pad_token_id)[0]
    batch = collate([row], tok.pad_token_id, packed=True)
    assert "attention_mask" not in batch
    with torch.no_grad():
        # use_cache=False as in training: with a KV cache transformers skips the packed-sequence mask
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        offset = 0
        for d in docs:
            alone = model(input_ids=torch.tensor([d])).logits[0]
            torch.testing.assert_close(packed[offset:offset + len(d)], alone, atol=1e-5, rtol=1e-5)
            offset += len(d)


# ------------------------------------------------------------------------------------ sources
def test_local_sources_with_presets(shared_data):
    rows = load_rows(DataConfig(path=str(shared_data / "math500" / "test.jsonl"), limit=5))
    assert len(rows) == 5 and rows[0]["prompt"] and rows[0]["answer"]
    verl = load_rows(DataConfig(path=str(shared_data / "one_shot_rlvr" / "pi1_r128.parquet"), preset="verl"))
    assert len(verl) == 128 and verl[0]["answer"] == "12.8" and "sail" in verl[0]["prompt"]


def test_missing_field_error_names_file_row_and_field(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"problem": "a", "solution": "b", "answer": "1"}) + "\n"
                    + json.dumps({"problem": "c", "solution": "d"}) + "\n")
    with pytest.raises(DataError) as info:
        load_rows(DataConfig(path=str(path)))
    msg = str(info.value)
    assert str(path) in msg and "row 1" in msg and "'answer'" in msg and "data.fields.answer" in msg


def test_sharegpt_and_messages_shapes(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}) + "\n")
    rows = load_rows(DataConfig(path=str(path), preset="sharegpt"))
    assert rows[0]["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    bad = tmp_path / "b.jsonl"
    bad.write_text(json.dumps({"conversations": "nope"}) + "\n")
    with pytest.raises(DataError, match="row 0: messages must be a non-empty list"):
        load_rows(DataConfig(path=str(bad), preset="sharegpt"))


def test_malformed_jsonl_names_the_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"problem": "a"}\n{not json\n')
    with pytest.raises(DataError, match=r"m.jsonl:2: not valid JSON"):
        load_rows(DataConfig(path=str(path)))
