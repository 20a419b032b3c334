"""Loading a stage's input model and tokenizer from a local directory or a hub id.

Weights are read only from safetensors (`use_safetensors=True`): no pickle from outside the run.
"""

from __future__ import annotations

from pathlib import Path

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def load_tokenizer(source: str | Path, *, revision: str | None = None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(source), revision=revision, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None:
        raise ValueError(
            f"tokenizer of {source} has no chat template; SFT, DPO and RL format prompts with it. "
            "Use an instruct/chat tokenizer or add a `chat_template` to tokenizer_config.json."
        )
    return tok


def load_model(source: str | Path, *, dtype: str = "float32", revision: str | None = None,
               trust_remote_code: bool = False, gradient_checkpointing: bool = False):
    """An AutoModelForCausalLM in `dtype` (master weights stay fp32 inside the optimizer for bf16)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(source),
        dtype=getattr(torch, DTYPES[dtype]),
        revision=revision,
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
    )
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model


def has_sliding_window(config) -> bool:
    """Whether a transformers model config has sliding-window attention layers: `layer_types` other
    than full attention, Qwen2's `use_sliding_window`, or Mistral's `sliding_window`. Code that
    reproduces or reorganises attention itself (rlvr/generate/hf_decode.py, the RL stage's shared
    prompt forward) handles full causal attention only."""
    return (any(t != "full_attention" for t in (getattr(config, "layer_types", None) or []))
            or bool(getattr(config, "use_sliding_window", False))
            or (getattr(config, "model_type", "") == "mistral" and bool(getattr(config, "sliding_window", None))))
