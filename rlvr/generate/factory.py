"""build_generator: the one place that picks and starts a generation backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlvr.generate.config import GenerationConfig
from rlvr.generate.types import Generator

if TYPE_CHECKING:
    from rlvr.world import World


def build_generator(config: GenerationConfig, model_path: str, world: World, *, dtype: str, seed: int) -> Generator:
    """Start the configured backend on `model_path` (an HF checkpoint directory or hub id).

    `dtype` is the trainer's dtype, used when config.dtype is "auto". Under torchrun each rank (each
    tensor-parallel group) gets its own independent engine seeded with seed + dp_rank, so ranks sample
    differently. Every rank must call this, together: vLLM builds its groups as subgroups of the default
    process group (created here if the training backend has not yet). After that, generate and score
    never wait on another rank's engine."""
    dtype = dtype if config.dtype == "auto" else config.dtype
    if config.backend == "vllm":
        from rlvr.generate.vllm_engine import VLLMGenerator

        return VLLMGenerator(config, model_path, world, dtype=dtype, seed=seed)
    from rlvr.generate.hf_engine import HFGenerator

    return HFGenerator(config, model_path, world, dtype=dtype, seed=seed)
