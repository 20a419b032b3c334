"""The HF generator sharing the trainer's parameter tensors (share_weights): no copy, no sync."""

from __future__ import annotations

import pytest
import torch

from rlvr.generate import GenerationConfig, Request, Sampling, StaleWeightsError
from rlvr.generate.hf_engine import HFGenerator
from rlvr.models.load import load_model
from rlvr.world import World


def _greedy(gen, tok):
    req = [Request(messages=[{"role": "user", "content": "What is 2 + 3?"}])]
    out = gen.generate(req, Sampling(n=1, temperature=0, max_tokens=16, logprobs=True, stop_token_ids=[tok.eos_token_id]))
    return out[0][0]


def _generator(tiny_model):
    return HFGenerator(GenerationConfig(backend="hf", use_tqdm=False), str(tiny_model), World(), dtype="float32", seed=0)


def test_shared_tensors_see_every_in_place_update_without_sync(tiny_model):
    gen = _generator(tiny_model)
    tok = gen.tokenizer
    before = _greedy(gen, tok)
    trainer = load_model(str(tiny_model), dtype="float32").train()
    assert gen.share_weights(trainer) and gen.shares_weights
    gen.sync_weights(iter(()))  # only checks the sharing
    shared = _greedy(gen, tok)
    assert shared.completion_ids == before.completion_ids and shared.logprobs == before.logprobs
    assert trainer.training and not gen.model.training

    with torch.no_grad():  # an in-place "optimizer step" on the trainer is what the generator samples from next
        trainer.lm_head.weight.mul_(-1.0)
    seq = before.prompt_ids + before.completion_ids
    with torch.no_grad():
        logits = trainer(input_ids=torch.tensor([seq])).logits[0, :-1]
    expect = torch.log_softmax(logits, -1).gather(-1, torch.tensor(seq[1:])[:, None])[:, 0]
    assert torch.allclose(torch.tensor(gen.score([seq])[0]), expect, atol=1e-6)
    assert _greedy(gen, tok).completion_ids != before.completion_ids

    trainer.lm_head.weight.data = trainer.lm_head.weight.data.clone()  # replaced, not updated in place
    with pytest.raises(StaleWeightsError):
        gen.sync_weights(iter(()))


def test_share_weights_refuses_another_dtype(tiny_model):
    gen = _generator(tiny_model)
    assert not gen.share_weights(load_model(str(tiny_model), dtype="bfloat16")) and not gen.shares_weights
