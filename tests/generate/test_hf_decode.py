"""rlvr's own decode loop for the HF backend (rlvr/generate/hf_decode.py): same logits as the
transformers model, the same truncation rules as transformers' warpers, an exact sampler, and a clean
fallback to `generate` for architectures it does not reproduce."""

from __future__ import annotations

import shutil

import pytest
import torch

from rlvr.generate import GenerationConfig, Request, Sampling
from rlvr.generate.hf_decode import decode, filter_scores, sample, unsupported_reason
from rlvr.generate.hf_engine import HFGenerator
from rlvr.world import World


def _llama(**rope):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, **rope)
    return LlamaForCausalLM(cfg).eval()


def _qwen2(tiny_model):
    from rlvr.models.load import load_model

    return load_model(str(tiny_model), dtype="float32").eval()


def _prompts(vocab: int, lengths=(5, 9, 3, 7), copies: int = 1):
    """Left-padded random prompts; `copies` > 1 repeats the list (the prompt is prefilled once per copy set)."""
    g = torch.Generator().manual_seed(1)
    rows = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths] * copies
    lengths = [len(r) for r in rows]
    width = max(lengths)
    ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return rows, ids, mask


def _teacher_forced_logprobs(model, rows, tokens, temperature, top_k, top_p):
    """Each row scored alone, unpadded, by the transformers forward: the processed log-prob of every
    generated token (scores / T, then top-k / top-p, then log_softmax)."""
    out = []
    for row, toks in zip(rows, tokens, strict=True):
        seq = torch.tensor([row + toks])
        with torch.no_grad():
            logits = model(input_ids=seq).logits[0, len(row) - 1:-1].float()
        scores = logits if temperature <= 0 else filter_scores(logits / temperature, top_k, top_p)
        out.append(torch.log_softmax(scores, -1).gather(-1, torch.tensor(toks)[:, None])[:, 0])
    return out


@pytest.mark.parametrize("arch", ["qwen2", "llama", "llama-linear-rope"])
@pytest.mark.parametrize("temperature,top_k,top_p", [(0.0, 0, 1.0), (0.9, 0, 1.0), (0.7, 20, 0.9)])
@pytest.mark.parametrize("stopping", [False, True])
def test_decode_logprobs_equal_the_model_forward_token_by_token(tiny_model, arch, temperature, top_k, top_p, stopping):
    """Each row's log-probs equal the transformers forward of that row alone. Each prompt is in two rows
    (prefilled once, then sampled apart). stopping: a seventh of the vocabulary are stop ids, so rows
    stop at different steps and the batch (KV cache included) shrinks several times while the others
    go on."""
    model = {"qwen2": lambda: _qwen2(tiny_model), "llama": _llama,
             "llama-linear-rope": lambda: _llama(rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                                  "rope_theta": 10000.0})}[arch]()
    assert unsupported_reason(model) is None
    vocab = model.config.vocab_size
    rows, ids, mask = _prompts(vocab, lengths=(5, 9, 3, 7), copies=2)  # 4 prompts, each in 2 rows
    stops = set(range(3, vocab, 7)) if stopping else {-1}
    toks, lps = decode(model, ids, mask, max_new_tokens=24, temperature=temperature, top_k=top_k, top_p=top_p,
                       stop_ids=stops, pad_id=0, generator=torch.Generator().manual_seed(3))
    ends = [next((j + 1 for j, t in enumerate(row) if t in stops), len(row)) for row in toks.tolist()]
    if stopping:
        assert len(set(ends)) > 2 and toks.shape[1] == max(ends)
    else:
        assert toks.shape == lps.shape == (8, 24) and set(ends) == {24}
    kept = [row[:end] for row, end in zip(toks.tolist(), ends, strict=True)]
    expect = _teacher_forced_logprobs(model, rows, kept, temperature, top_k, top_p)
    for i, end in enumerate(ends):
        assert (lps[i, :end] - expect[i]).abs().max() < 1e-5, (i, end)  # the left-padded, cached decode
        assert toks[i, end:].eq(0).all() and lps[i, end:].eq(0).all()  # after its stop: pad, log-prob 0
    if temperature > 0:
        assert len({tuple(t) for t in toks.tolist()}) == 8  # rows really are sampled


def test_greedy_decode_equals_transformers_generate(tiny_model):
    model = _qwen2(tiny_model)
    rows, ids, mask = _prompts(model.config.vocab_size)
    toks, _ = decode(model, ids, mask, max_new_tokens=20, temperature=0.0, top_k=0, top_p=1.0, stop_ids={-1},
                     pad_id=0, generator=None)
    with torch.no_grad():
        ref = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=20, min_new_tokens=20,
                             pad_token_id=0, eos_token_id=None)
    assert toks.tolist() == ref[:, ids.shape[1]:].tolist()


def test_rows_stop_at_their_stop_id_then_pad_and_the_loop_ends_when_all_stopped(tiny_model):
    model = _qwen2(tiny_model)
    rows, ids, mask = _prompts(model.config.vocab_size)
    free, _ = decode(model, ids, mask, max_new_tokens=12, temperature=0.0, top_k=0, top_p=1.0, stop_ids={-1},
                     pad_id=0, generator=None)
    stop = free[0, 3].item()  # row 0 emits it at step 3 (maybe earlier, or other rows too)
    toks, _ = decode(model, ids, mask, max_new_tokens=12, temperature=0.0, top_k=0, top_p=1.0, stop_ids={stop},
                     pad_id=0, generator=None)
    for row, full in zip(toks.tolist(), free.tolist(), strict=True):
        end = full.index(stop) + 1 if stop in full else len(full)
        assert row[:end] == full[:end] and all(t == 0 for t in row[end:])
    ends = [full.index(stop) + 1 if stop in full else 12 for full in free.tolist()]
    assert toks.shape[1] == max(ends)


def test_filter_scores_matches_transformers_warpers():
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 50, generator=g)
    scores[0, :10] = 2.0  # ties at the top-k boundary are all kept
    scores[1] = 0.0  # a flat row: top-p keeps enough tokens to reach the mass
    for k, p in [(5, 1.0), (0, 0.8), (10, 0.5), (0, 0.05), (0, 1e-9), (50, 1.0)]:  # 1e-9: only the top token
        expect = scores.clone()
        if k:
            expect = TopKLogitsWarper(k)(None, expect)
        if p < 1:
            expect = TopPLogitsWarper(p)(None, expect)
        got = filter_scores(scores, k, p)
        assert torch.equal(torch.isinf(got), torch.isinf(expect)), (k, p)
        assert torch.equal(got[~torch.isinf(got)], expect[~torch.isinf(expect)])


def test_sampler_draws_each_token_with_its_probability_and_never_a_masked_one():
    probs = torch.tensor([0.5, 0.0, 0.2, 0.3, 0.0])
    logp = probs.log().expand(200_000, 5)  # log(0) = -inf: masked tokens
    draws = sample(logp, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=5).float() / draws.numel()
    assert freq[1] == 0 and freq[4] == 0
    assert torch.allclose(freq, probs, atol=0.005), freq  # 4 standard errors at n=200k
    again = sample(logp[:1000], torch.Generator().manual_seed(0))
    assert torch.equal(again, draws[:1000])


def test_unsupported_architectures_fall_back_to_generate(tiny_model, tmp_path):
    from transformers import Phi3Config, Phi3ForCausalLM

    from rlvr.models.load import load_tokenizer

    tok = load_tokenizer(str(tiny_model))
    phi = Phi3ForCausalLM(Phi3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                     num_attention_heads=2, num_key_value_heads=1, pad_token_id=tok.pad_token_id,
                                     eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id))
    assert "phi3" in unsupported_reason(phi)
    phi.save_pretrained(tmp_path / "phi")
    for f in tiny_model.iterdir():
        if "token" in f.name or f.name.endswith(".jinja"):
            shutil.copy(f, tmp_path / "phi" / f.name)
    gen = HFGenerator(GenerationConfig(backend="hf", use_tqdm=False), str(tmp_path / "phi"), World(), dtype="float32", seed=0)
    assert not gen.fast_decode and "phi3" in gen.fast_decode_refused
    out = gen.generate([Request(messages=[{"role": "user", "content": "What is 2 + 3?"}])],
                       Sampling(n=2, temperature=1.0, max_tokens=8, logprobs=True, seed=0))
    assert gen.last_stats["gen/fast_decode"] == 0.0
    assert all(len(c.completion_ids) == len(c.logprobs) > 0 for c in out[0])


def test_generator_fast_and_generate_paths_agree_on_greedy_and_sampled_logprobs(tiny_model):
    def gen(fast):
        return HFGenerator(GenerationConfig(backend="hf", use_tqdm=False, hf_fast_decode=fast), str(tiny_model),
                           World(), dtype="float32", seed=0)

    fast, slow = gen(True), gen(False)
    assert fast.fast_decode and not slow.fast_decode
    reqs = [Request(messages=[{"role": "user", "content": q}]) for q in ("What is 2 + 3?", "What is 17 + 25?")]
    greedy = Sampling(n=1, temperature=0.0, max_tokens=24, logprobs=True)
    a, b = fast.generate(reqs, greedy), slow.generate(reqs, greedy)
    for x, y in zip(a, b, strict=True):
        assert x[0].completion_ids == y[0].completion_ids and x[0].finish_reason == y[0].finish_reason
        assert max(abs(p - q) for p, q in zip(x[0].logprobs, y[0].logprobs, strict=True)) < 1e-5
    assert fast.last_stats["gen/fast_decode"] == 1.0
    # sampled: different draws (another sampler), but each token's log-prob is the model's processed one
    hot = Sampling(n=4, temperature=0.7, top_k=20, top_p=0.9, max_tokens=16, logprobs=True, seed=5)
    comps = [c for cs in fast.generate(reqs, hot) for c in cs]
    again = [c for cs in fast.generate(reqs, hot) for c in cs]
    assert [c.completion_ids for c in comps] == [c.completion_ids for c in again]  # seeded
    for c in comps:
        [expect] = _teacher_forced_logprobs(fast.model, [c.prompt_ids], [c.completion_ids], 0.7, 20, 0.9)
        assert (torch.tensor(c.logprobs) - expect).abs().max() < 1e-5
