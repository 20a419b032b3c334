"""The chunked token-scoring primitive (rlvr.rl.logprobs) and the LM head that runs it inside a
model's forward (rlvr.models.scoring): values and gradients equal the full-vocabulary path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rlvr.rl.logprobs import chunked_token_scores, full_vocab_token_scores


def _case(dtype, B=3, T=37, H=16, V=101, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    # realistic scale: unit-variance hidden states, weights ~ 1/sqrt(H), logits O(1)
    h = torch.randn(B, T, H, generator=g, dtype=dtype).requires_grad_()
    w = (torch.randn(V, H, generator=g, dtype=dtype) / H ** 0.5).requires_grad_()
    b = (torch.randn(V, generator=g, dtype=dtype) * 0.1).requires_grad_() if bias else None
    t = torch.randint(0, V, (B, T), generator=g)
    ga, gb = torch.randn(B, T, generator=g, dtype=dtype), torch.randn(B, T, generator=g, dtype=dtype)
    return h, w, b, t, ga, gb


def _values_and_grads(fn, h, w, b, t, ga, gb, with_entropy):
    logp, ent = fn(h, w, b, t)
    loss = (logp * ga).sum() + ((ent * gb).sum() if with_entropy else 0)
    inputs = [x for x in (h, w, b) if x is not None]
    return [logp] + ([ent] if with_entropy else []) + list(torch.autograd.grad(loss, inputs))


@pytest.mark.parametrize("with_entropy", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("chunk", [1, 5, 37, 64, 10_000])  # 5 and 64 do not divide the 111 positions
@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_chunked_scores_equal_the_full_vocabulary_path(dtype, atol, chunk, temperature, with_entropy):
    """Log-probs, entropies and the gradients of hidden states, weight and bias equal one fp32 (fp64)
    log_softmax over the whole logits: exactly in fp64 (the algebra), to 1e-6 in fp32 (relative to the
    largest value for the weight's gradient, a sum over all 111 positions)."""
    case = _case(dtype)
    ref = _values_and_grads(lambda h, w, b, t: full_vocab_token_scores(F.linear(h, w, b), t, temperature, with_entropy),
                            *case, with_entropy)
    got = _values_and_grads(lambda h, w, b, t: chunked_token_scores(h, w, b, t, temperature=temperature, chunk=chunk,
                                                                    with_entropy=with_entropy), *case, with_entropy)
    for x, y in zip(ref, got, strict=True):
        assert x.shape == y.shape
        assert (x - y).abs().max().item() <= atol * max(1.0, x.abs().max().item())


def test_entropy_of_a_known_distribution_and_the_gradient_sign():
    """Uniform logits: entropy log V and log p = -log V; raising the target's logit raises its log-prob."""
    V, H = 50, 4
    w = torch.zeros(V, H)
    h = torch.ones(2, H, requires_grad=True)
    logp, ent = chunked_token_scores(h, w, None, torch.tensor([3, 7]), chunk=1, with_entropy=True)
    assert torch.allclose(ent, torch.full((2,), torch.log(torch.tensor(50.0)).item()))
    assert torch.allclose(logp, torch.full((2,), -torch.log(torch.tensor(50.0)).item()))
    w = torch.zeros(V, H, requires_grad=True)
    logp, _ = chunked_token_scores(h.detach(), w, None, torch.tensor([3, 3]), chunk=1)
    logp.sum().backward()
    assert (w.grad[3] > 0).all() and (w.grad[torch.arange(V) != 3] < 0).all()


def test_logged_entropy_has_no_graph_and_bf16_matches_the_fp32_reference():
    h, w, b, t, *_ = _case(torch.bfloat16)
    logp, ent = chunked_token_scores(h, w, b, t, chunk=8, with_entropy=True, entropy_grad=False)
    assert logp.dtype == torch.float32 and logp.requires_grad and not ent.requires_grad
    ref_lp, ref_ent = full_vocab_token_scores(F.linear(h, w, b), t, with_entropy=True)
    assert torch.allclose(logp, ref_lp, atol=1e-5) and torch.allclose(ent, ref_ent, atol=1e-5)
    # the weight's gradient accumulates over 14 chunks in fp32, then is rounded to bf16 once
    (g_chunked,) = torch.autograd.grad(logp.sum(), [w])
    (g_full,) = torch.autograd.grad(full_vocab_token_scores(F.linear(h, w, b).float(), t)[0].sum(), [w])
    assert g_chunked.dtype == torch.bfloat16
    assert (g_chunked.float() - g_full.float()).abs().max() <= 2e-2 * g_full.float().abs().max()


def test_bad_chunk_is_refused():
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        chunked_token_scores(torch.zeros(1, 4), torch.zeros(3, 4), None, torch.zeros(1, dtype=torch.long), chunk=0)


def _lm(tied: bool):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tied))


@pytest.mark.parametrize("tied", [False, True])
def test_scoring_head_keeps_the_model_and_scores_like_its_logits(tied):
    """The ScoringHead is the model's own lm_head (same object, same parameter names and tensors; tied
    embeddings stay tied); outside a request it returns the logits; a TokenScorer's log-probs, entropy
    and parameter gradients equal log_softmax of the model's logits, with a tied embedding too."""
    from rlvr.models.scoring import ScoringHead, token_scorer

    model = _lm(tied)
    names = [n for n, _ in model.named_parameters()]
    ids = torch.randint(0, 97, (2, 11))
    plain = model(input_ids=ids).logits
    head = model.lm_head
    scorer = token_scorer(model, model, chunk=4)
    assert isinstance(model.lm_head, ScoringHead) and model.lm_head is head
    assert [n for n, _ in model.named_parameters()] == names
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    assert torch.equal(model(input_ids=ids).logits, plain)

    targets = ids[:, 1:]
    keep = torch.arange(10)
    logp, ent = scorer(targets, temperature=0.8, with_entropy=True, input_ids=ids, logits_to_keep=keep)
    (logp.sum() + ent.sum()).backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    ref_lp, ref_ent = full_vocab_token_scores(model(input_ids=ids).logits[:, :-1], targets, 0.8, with_entropy=True)
    (ref_lp.sum() + ref_ent.sum()).backward()
    assert torch.allclose(logp, ref_lp, atol=1e-6) and torch.allclose(ent, ref_ent, atol=1e-6)
    for n, p in model.named_parameters():
        assert torch.allclose(got[n], p.grad, atol=1e-6), n


def test_unsupported_heads_fall_back_to_full_logits():
    from rlvr.models.scoring import token_scorer

    model = _lm(False)
    model.config.final_logit_softcapping = 30.0
    scorer = token_scorer(model, model)
    assert scorer.head is None and "final_logit_softcapping" in scorer.fallback
    ids = torch.randint(0, 97, (1, 6))
    logp, _ = scorer(ids, input_ids=ids)
    assert torch.allclose(logp, torch.log_softmax(model(input_ids=ids).logits, -1).gather(-1, ids[..., None])[..., 0])
