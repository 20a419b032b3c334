"""Recipe options of the generation layer (`rlvr.generate`). Imports only pydantic: recipe
validation reads it before torch or vLLM are imported."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GenerationConfig(BaseModel):
    """How rollouts and evaluation generate. Every default lives here (docs/generation.md)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    backend: Literal["vllm", "hf"] = "vllm"
    """vllm: an engine colocated in every training rank. hf: transformers `generate` (no vLLM needed;
    slower; for debugging and installs without vLLM)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Engine dtype; auto = the trainer's dtype. Keep it equal to the trainer's: a bf16 engine next to an
    fp32 trainer has a logprob gap of ~1e-2; the probe then judges by the bf16 rule."""
    max_model_len: int = Field(4096, ge=16)
    """Prompt + completion tokens per sequence (vLLM; capped at the model's max_position_embeddings).
    A prompt longer than this fails."""
    gpu_memory_utilization: float = Field(0.5, gt=0.0, le=1.0)
    """GPU only: share of GPU memory vLLM may take (weights + KV cache). The trainer needs the rest."""
    kv_cache_gib: float = Field(1.0, gt=0.0)
    """CPU only: KV-cache size in GiB (vLLM otherwise sizes it from free RAM). The environment variable
    VLLM_CPU_KVCACHE_SPACE, when set, overrides it."""
    enforce_eager: bool = False
    """No CUDA graphs (saves memory and start time, costs decode speed). Forced True on CPU."""
    enable_prefix_caching: bool = True
    """Reuse KV blocks of shared prefixes (the n samples of one prompt). Reset after every weight sync."""
    tensor_parallel_size: int = Field(1, ge=1)
    """GPU only: shard each engine over this many ranks; world size must be a multiple of it."""
    max_num_seqs: int = Field(256, ge=1)
    """Most sequences the engine decodes at once."""
    sleep_mode: bool = True
    """GPU only: the engine sleeps during training (weights to CPU, KV cache freed) and wakes for
    rollouts; ignored on CPU, where vLLM has no sleep mode."""
    sleep_level: Literal[1, 2] = 1
    """1: weights offloaded to CPU RAM while asleep. 2: weights discarded (less host RAM; every weight
    is re-pushed by the next sync anyway)."""
    hf_batch_size: int = Field(64, ge=1)
    """hf backend: sequences (requests x n) per `generate` batch."""
    hf_fast_decode: bool = True
    """hf backend: decode Llama-family models (Qwen2, Llama, Mistral without sliding window) with rlvr's own
    loop (rlvr/generate/hf_decode.py: same logits to ~1e-6, ~2x faster per token on small models). Other
    architectures, or False, use transformers `generate`; `last_stats["gen/fast_decode"]` says which ran."""
    probe_sequences: int = Field(4, ge=1)
    """Fixed sequences scored by both trainer and engine after each weight sync."""
    probe_length: int = Field(32, ge=4)
    """Tokens per probe sequence (capped by max_model_len)."""
    probe_threshold: float | None = Field(None, gt=0.0)
    """Limit of the probe's absolute rule; None: derived from the dtype (the coarser of model.dtype and
    generation.dtype). fp32: the max |trainer - engine| token logprob, default 1e-3 (measured ~1e-6).
    bf16 / fp16: the mean |gap|, default 0.1 / 0.0125 nats (published bf16 trainer-vs-vLLM noise: RMS
    0.032-0.040, single tokens near 0.1; stale weights ~1). Above it the run stops (docs/generation.md)."""
    use_tqdm: bool = True
    """Progress bar on rank 0 for every generate call."""
