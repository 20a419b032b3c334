"""build_generator: the one place that picks and starts a generation backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlvr.generate.config import GenerationConfig
from rlvr.generate.types import Generator

if TYPE_CHECKING:
    from rlvr.world import World


def build_generator(config: GenerationConfig, model_path: str, world: World, *, dtype: str, seed: int) -> Generator:
    """Start the configured backend on `model_path` (an HF checkpoint directory or hub id).

    `dtype` is the trainer's dtype, used when config.dtype is "auto". The engine's seed is seed + rank,
    so ranks sample differently. Under torchrun every rank must call this (vLLM joins the process
    group; call after the training backend initialised torch.distributed)."""
    dtype = dtype if config.dtype == "auto" else config.dtype
    if config.backend == "vllm":
        from rlvr.generate.vllm_engine import VLLMGenerator

        return VLLMGenerator(config, model_path, world, dtype=dtype, seed=seed)
    from rlvr.generate.hf_engine import HFGenerator

    return HFGenerator(config, model_path, world, dtype=dtype, seed=seed)
