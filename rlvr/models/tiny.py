"""Tiny models for tests and the CPU demo, built locally and deterministically (no downloads).

The tokenizer is a byte-level BPE trained on toy-task text plus a little general math prose, with
digits always split into single tokens (as Qwen2 does) and a ChatML chat template. The model is a
Qwen2 architecture with random weights from a seeded generator; head size must be >= 32 because
vLLM's CPU attention supports no smaller head (checked by TinyModelSpec). `embedding_size` pads the
embedding and LM head to a real vocabulary with rows that are never sampled (pad_vocabulary).
"""

from __future__ import annotations

from pathlib import Path

from rlvr.config import TinyModelSpec

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

# ChatML, as Qwen2.5 uses it (without Qwen's default system turn).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_PROSE = [
    "Let's think step by step and output the final answer within \\boxed{}.",
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "The final answer is $\\boxed{\\frac{1}{2}}$. Therefore x = 5, y = -3 and the sum is 12.",
    "Problem: Find the value of the expression. Solution: We simplify the fraction and check the result.",
    "If a + b = 10 and a - b = 4, then a = 7 and b = 3, so a * b = 21.",
]


def _corpus() -> list[str]:
    from rlvr.data.toy import toy_document, toy_rows

    rows = toy_rows("train", 600, [1, 2, 3, 4, 5, 6], seed=12345)
    return [toy_document(r) for r in rows] + _PROSE * 20


def build_tokenizer(vocab_size: int = 512):
    """A PreTrainedTokenizerFast with byte-level BPE, single-digit tokens and a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=1 << 20,
    )


def build_model(spec: TinyModelSpec, vocab_size: int):
    """The Qwen2 model of `spec` for a tokenizer of `vocab_size` tokens, with `spec.embedding_size` rows
    of embedding and LM head (default: vocab_size). The padded rows are never sampled (pad_vocabulary)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    size = vocab_size if spec.embedding_size is None else spec.embedding_size
    if size < vocab_size:
        raise ValueError(f"model.tiny.embedding_size {size} is smaller than the tokenizer's {vocab_size} tokens; "
                         f"use at least {vocab_size} (or leave it unset)")
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=False,
        torch_dtype="float32",
        eos_token_id=None,
        bos_token_id=None,
        pad_token_id=None,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(spec.seed)
    try:
        model = Qwen2ForCausalLM(config)  # at the tokenizer's size: the same weights whatever embedding_size
    finally:
        torch.random.set_rng_state(generator_state)
    if size > vocab_size:
        pad_vocabulary(model, size)
    return model


PADDED_ROW_NORM = 16.0  # |padded LM-head row|: see pad_vocabulary


def pad_vocabulary(model, size: int) -> None:
    """Grow a freshly initialised Qwen2 model's embedding and LM head from V to `size` rows so that the
    padded ids (never produced by the tokenizer) are never sampled, as a real model's trained padded rows
    are not. Qwen2's LM head has no bias, so a constant is made from the last layer's v_proj bias: it
    adds a fixed direction c (rms 2 x initializer_range, about twice the embeddings') to the residual at
    every position, and each padded LM-head row is -PADDED_ROW_NORM * c/|c|. Measured on toy text at
    initialisation: padded logits sit at least 80 (hidden 64) or 50 (hidden 128) below the best real
    token's and their total probability is at most 1e-19; the real tokens' distribution moves by a KL of
    0.014 (hidden 64) or 0.007 nats (128). Padded embedding rows are zero; every other weight, the
    tokenizer's rows included, is the unpadded model's."""
    import torch

    with torch.no_grad():  # fresh parameters: nothing to track
        cfg = model.config
        emb, head = model.model.embed_tokens, model.lm_head
        vocab, hidden = emb.weight.shape
        attn = model.model.layers[-1].self_attn
        # v_proj bias = s * ones: every head's attention output gains s * ones (its weights sum to 1), so
        # o_proj adds c = s * W_o @ ones to the residual at every position
        direction = attn.o_proj.weight.sum(-1)  # [hidden]: W_o @ ones
        scale = 2 * cfg.initializer_range * hidden**0.5 / direction.norm()  # rms(c) = 2 x initializer_range
        attn.v_proj.bias.fill_(scale)
        new_emb = torch.zeros(size, hidden, dtype=emb.weight.dtype)
        new_emb[:vocab] = emb.weight
        new_head = torch.empty(size, hidden, dtype=head.weight.dtype)
        new_head[:vocab] = head.weight
        new_head[vocab:] = -PADDED_ROW_NORM * direction / direction.norm()
        emb.weight = torch.nn.Parameter(new_emb)
        emb.num_embeddings = size
        head.weight = torch.nn.Parameter(new_head)
        head.out_features = size
    cfg.vocab_size = size


def build_tiny(spec: TinyModelSpec, out_dir: str | Path) -> Path:
    """Build the tokenizer and model and save both (safetensors) to out_dir; returns out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(spec.vocab_size)
    model = build_model(spec, len(tokenizer))
    ids = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    model.config.eos_token_id = ids[0]
    model.config.pad_token_id = ids[1]
    model.generation_config.eos_token_id = ids[0]
    model.generation_config.pad_token_id = ids[1]
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
