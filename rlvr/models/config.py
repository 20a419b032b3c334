"""Recipe options of the model layer: a training stage's `lora:` section (rlvr.models.lora applies it).
Imports only pydantic and rlvr.schema: recipe validation reads it before torch or PEFT are imported."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlvr.schema import Strict

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]
LORA_TARGETS: dict[str, list[str]] = {
    "qwen2": ATTENTION + MLP,
    "qwen3": ATTENTION + MLP,
    "llama": ATTENTION + MLP,
    "mistral": ATTENTION + MLP,
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],  # Phi-3 / Phi-4-mini fuse q|k|v and gate|up
}
"""`target_modules: auto` by the model config's `model_type`: every linear layer of attention and MLP
(the QLoRA paper's finding that all of them are needed to match full fine-tuning; verl's `all-linear`).
The LM head and embeddings are never targets: the LM head stays a plain linear layer for the chunked
scoring head (rlvr.models.scoring)."""


class LoraConfig(Strict):
    """Train a LoRA adapter (Hu et al. 2021) instead of every weight: each target linear layer computes
    W x + (alpha / rank) * B A dropout(x), with A [rank, in] random and B [out, rank] zero at the start
    (so step 0 is the input model), W frozen. Applied through PEFT (docs/generation.md, "LoRA")."""

    rank: int = Field(16, ge=1)
    """r: the adapter's inner dimension (trainable parameters per target: rank * (in + out))."""
    alpha: float = Field(32.0, gt=0)
    """The update is scaled by alpha / rank (LoRA's scaling; alpha = 2 x rank is the common choice)."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapter's input in training (off in the probe, the reference and generation)."""
    target_modules: list[str] | Literal["auto"] = "auto"
    """Module names (suffixes, as PEFT matches them) that get an adapter; auto: LORA_TARGETS by the model's
    `model_type` (q/k/v/o and gate/up/down projections for Qwen2/Llama/Mistral, qkv_proj, o_proj,
    gate_up_proj, down_proj for Phi-3)."""
