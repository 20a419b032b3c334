"""Tiny models for tests and the CPU demo, built locally and deterministically (no downloads).

The tokenizer is a byte-level BPE trained on toy-task text plus a little general math prose, with
digits always split into single tokens (as Qwen2 does) and a ChatML chat template. The model is a
Qwen2 architecture with random weights from a seeded generator; head size must be >= 32 because
vLLM's CPU attention supports no smaller head (checked by TinyModelSpec).
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
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

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
        model = Qwen2ForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    return model


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
