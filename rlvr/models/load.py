"""Loading a stage's input model and tokenizer from a local directory or a hub id.

Weights are read only from safetensors (`use_safetensors=True`): no pickle from outside the run.
"""

from __future__ import annotations

from pathlib import Path

from rlvr.schema import UserError

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class ModelNotFound(UserError):
    """A model source that is neither a model directory nor a hub id that can be fetched."""


def check_source(source: str | Path, marks: tuple[str, ...] = ("config.json",)) -> None:
    """Raise ModelNotFound, naming the source and the fix, for a local path that is not a model directory
    (holds none of the files `marks`) and for a hub id that is not in the cache while offline; otherwise
    let transformers load it."""
    import os

    path = Path(source).expanduser()
    if path.exists() or str(source).startswith(("/", ".", "~")) or str(source).count("/") > 1:
        if not any((path / m).is_file() for m in marks):
            what = "does not exist" if not path.exists() else f"has no {' or '.join(marks)} (not a Hugging Face model directory)"
            raise ModelNotFound(f"model {source}: the local path {what}; give a model directory (e.g. a stage's "
                                f"stages/<name>/final) or a hub id (org/name)")
        return
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False"):
        from huggingface_hub import try_to_load_from_cache

        if not any(isinstance(try_to_load_from_cache(str(source), m), str) for m in marks):
            raise ModelNotFound(f"model {source}: not in the Hugging Face cache and the hub is offline "
                                f"(HF_HUB_OFFLINE=1); download it first (`huggingface-cli download {source}`) "
                                "or give a local directory")


def load_tokenizer(source: str | Path, *, revision: str | None = None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    check_source(source, ("tokenizer_config.json", "config.json"))
    try:
        tok = AutoTokenizer.from_pretrained(str(source), revision=revision, trust_remote_code=trust_remote_code)
    except OSError as err:  # a hub id that does not exist, a revision that does not, no network
        raise ModelNotFound(f"model {source}: {str(err).splitlines()[0]}") from err
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None:
        raise UserError(
            f"tokenizer of {source} has no chat template; SFT, DPO and RL format prompts with it. "
            "Use an instruct/chat tokenizer or add a `chat_template` to tokenizer_config.json."
        )
    return tok


def load_model(source: str | Path, *, dtype: str = "float32", revision: str | None = None,
               trust_remote_code: bool = False, gradient_checkpointing: bool = False):
    """An AutoModelForCausalLM in `dtype` (master weights stay fp32 inside the optimizer for bf16)."""
    import torch
    from transformers import AutoModelForCausalLM

    check_source(source)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(source),
            dtype=getattr(torch, DTYPES[dtype]),
            revision=revision,
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
        )
    except OSError as err:  # no safetensors weights, a hub id that does not exist, no network
        raise ModelNotFound(f"model {source}: {str(err).splitlines()[0]}") from err
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
