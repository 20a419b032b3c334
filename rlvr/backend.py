"""The training backend: DeepSpeed ZeRO 0-3 behind a few verbs. Stage files never import deepspeed.

    backend = DeepSpeedBackend.wrap(model, world=..., config=..., optim=..., total_steps=...)
    for micro_batch in global_batch:          # exactly `grad_accum` micro-batches per step
        loss = (token_losses * mask).sum() / global_token_count
        backend.backward(loss)
    stats = backend.step()                    # optimizer + lr schedule update

Loss scaling contract (the fix for "loss changes with gradient accumulation / data parallelism"):
the stage passes losses already divided by the *global* denominator of the step (e.g. the number of
loss tokens over all micro-batches of all ranks). DeepSpeed would divide by grad_accum and average
gradients over ranks; `backward` undoes both, so the summed gradient is exactly d(sum of token
losses)/d(theta) / global_count, whatever the split into micro-batches and ranks.

CPU specifics (docs: environment.md §2): gloo, the client torch AdamW (DeepSpeed's CPU optimizers are
JIT-compiled), the shared-memory comm op build is skipped, and `close()` destroys the engine before
the process group to avoid the ZeRO-3 exit-time abort.

LoRA (a PEFT-wrapped module, rlvr.models.lora): only the adapter trains and sits in the optimizer; the
weight sync and the Hugging Face export stream the merged weights under the model's own names;
checkpoints hold the adapter and its optimizer state, not the frozen base (it is the stage's input
model, reloaded on resume); `base_scorer()` scores with the adapter switched off (the reference).
"""

from __future__ import annotations

import gc
import importlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from rlvr.config import BackendConfig, OptimConfig
from rlvr.models.lora import (
    AdapterOff,
    adapter_disabled,
    adapter_params,
    base_model,
    is_lora,
    merged_params,
    save_adapter,
)
from rlvr.models.scoring import TokenScorer, install_scoring_head, token_scorer
from rlvr.world import World


def lr_factor(step: int, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based): linear warm-up over `warmup`
    steps, then constant, cosine or linear decay to `min_ratio` at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return min_ratio + (1 - min_ratio) * (1 - progress)
    raise ValueError(f"unknown lr schedule {schedule!r}")


class _Schedule:
    """A picklable lr lambda (so LambdaLR's state_dict records it)."""

    def __init__(self, total: int, warmup: int, schedule: str, min_ratio: float):
        self.total, self.warmup, self.schedule, self.min_ratio = total, warmup, schedule, min_ratio

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total, self.warmup, self.schedule, self.min_ratio)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and norm weights (1-D tensors), as is standard. An empty group is left
    out (a LoRA adapter has only matrices): DeepSpeed drops it, and the lr schedule must see the same groups."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def init_deepspeed(world: World) -> None:
    """Initialise deepspeed.comm on top of the world (single process included)."""
    import deepspeed

    if not torch.cuda.is_available():
        # Skip the ~25 s JIT build of the optional shared-memory comm op on CPU (environment.md §2).
        importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None
    if not world.distributed and not torch.distributed.is_initialized():
        # One process: an in-memory store, no TCP port (a "free" port picked in advance can be taken by
        # another process before it is bound: EADDRINUSE under parallel jobs). DeepSpeed adopts the group.
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("LOCAL_RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
        torch.distributed.init_process_group(world.dist_backend, store=torch.distributed.HashStore(), rank=0,
                                             world_size=1)
    world.init()
    deepspeed.init_distributed(dist_backend=world.dist_backend, auto_mpi_discovery=False)


_DS_DTYPE = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def grad_accum_dtype(config: BackendConfig, dtype: str) -> str:
    """DeepSpeed's `data_types.grad_accum_dtype` for backend.grad_accum_dtype and a model dtype. DeepSpeed
    0.19.8 sums a 16-bit model's gradients in fp32 only under ZeRO (stage 1: its BF16_Optimizer; stages 2
    and 3: fp32 gradient partitions); without ZeRO it raises NotImplementedError for any dtype other than
    the model's (engine._do_optimizer_sanity_check)."""
    model = _DS_DTYPE[dtype]
    if config.grad_accum_dtype == "auto":
        return "fp32" if config.zero_stage >= 1 else model
    if config.grad_accum_dtype != model and (config.grad_accum_dtype != "fp32" or config.zero_stage == 0):
        raise ValueError(f"backend.grad_accum_dtype={config.grad_accum_dtype} with a {dtype} model at "
                         f"backend.zero_stage={config.zero_stage}: DeepSpeed sums gradients in the model dtype, or in "
                         "fp32 with zero_stage >= 1; use auto")
    return config.grad_accum_dtype


@dataclass
class StepStats:
    lr: float
    grad_norm: float | None


class DeepSpeedBackend:
    """One model under DeepSpeed with its optimizer and lr schedule."""

    def __init__(self, engine: Any, world: World, zero_stage: int, grad_accum: int, micro_batch_size: int,
                 logits_chunk_tokens: int | None = None, token_scores: bool = True):
        """`logits_chunk_tokens`: positions per LM-head chunk of the token scorer (0: full logits; None: the
        config's default for the model's vocabulary). `token_scores=False`: a model with no LM head (a value
        model, rlvr.models.value), so no scorer (`scorer` is None)."""
        self.engine = engine
        self.world = world
        self.zero_stage = zero_stage
        self.grad_accum = grad_accum
        self.micro_batch_size = micro_batch_size
        self._micro = 0
        self._expected = grad_accum  # backward calls in the current step (accumulate() may change it)
        self.lora = is_lora(engine.module)
        """The module is a PEFT LoRA model: the adapter trains, the base weights are frozen."""
        self.scorer = (token_scorer(self.forward, engine.module, logits_chunk_tokens, partitioned=self.partitioned)
                       if token_scores else None)
        """Scores tokens with the trainer (rlvr.models.scoring.TokenScorer): log-probs and entropy in LM-head
        chunks, inside the model's forward, so ZeRO-3 gathers the head like any layer."""
        if self.scorer is not None and self.scorer.fallback:
            world.print0(f"[backend] token scores from full-vocabulary logits, not LM-head chunks: {self.scorer.fallback}")

    @classmethod
    def wrap(cls, model: torch.nn.Module, *, world: World, config: BackendConfig, optim: OptimConfig,
             dtype: str, total_steps: int, micro_batch_size: int | None = None,
             grad_accum: int | None = None, token_scores: bool = True) -> DeepSpeedBackend:
        import deepspeed

        init_deepspeed(world)
        micro = micro_batch_size or config.micro_batch_size
        gas = grad_accum or config.grad_accum
        zero: dict[str, Any] = {"stage": config.zero_stage}
        if config.zero_stage == 3:
            zero["stage3_gather_16bit_weights_on_model_save"] = True
        if config.offload_optimizer:
            zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
        ds_config = {
            "train_micro_batch_size_per_gpu": micro,
            "gradient_accumulation_steps": gas,
            "train_batch_size": micro * gas * world.world_size,
            "gradient_clipping": optim.grad_clip,
            "zero_optimization": zero,
            "bf16": {"enabled": dtype == "bfloat16"},
            "fp16": {"enabled": dtype == "float16", "auto_cast": False},
            "data_types": {"grad_accum_dtype": grad_accum_dtype(config, dtype)},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        if config.communication_data_type != "auto":
            ds_config["communication_data_type"] = config.communication_data_type
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.config.use_cache = False
        if token_scores:
            install_scoring_head(model)  # before DeepSpeed registers its hooks (same module and parameters either way)
        optimizer = torch.optim.AdamW(
            _param_groups(model, optim.weight_decay), lr=optim.lr, betas=optim.betas, eps=optim.eps
        )
        warmup = int(round(optim.warmup_ratio * total_steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _Schedule(total_steps, warmup, optim.schedule, optim.min_lr_ratio)
        )
        engine, _, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config
        )
        return cls(engine, world, config.zero_stage, gas, micro, config.logits_chunk(model.config.vocab_size),
                   token_scores=token_scores)

    # ------------------------------------------------------------------ training verbs
    @property
    def module(self) -> torch.nn.Module:
        return self.engine.module

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def partitioned(self) -> bool:
        """ZeRO-3: outside a module's forward its parameters are partitions, not full tensors."""
        return self.zero_stage == 3

    def train(self, mode: bool = True) -> None:
        self.engine.train(mode)

    def forward(self, **inputs: Any) -> Any:
        return self.engine(**inputs)

    def accumulate(self, micro_batches: int) -> None:
        """Declare that the next optimizer step takes `micro_batches` backward calls instead of grad_accum:
        token-budget micro-batches (rlvr.rl.batching) vary in number from step to step. Every rank must
        declare the same number. Call before the step's first backward."""
        if self._micro:
            raise RuntimeError("accumulate() after a backward call of the current step")
        if micro_batches < 1:
            raise ValueError(f"a step needs at least one micro-batch, got {micro_batches}")
        self._expected = micro_batches

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of one micro-batch whose loss is normalised by the step's global denominator."""
        if self._micro >= self._expected:
            raise RuntimeError(f"backward called more than {self._expected} times (grad_accum, or accumulate()) "
                               "before step()")
        # the boundary is set explicitly, so a step may take any number of micro-batches (accumulate())
        self.engine.set_gradient_accumulation_boundary(self._micro + 1 == self._expected)
        self.engine.backward(loss * self.world.world_size, scale_wrt_gas=False)
        self._micro += 1
        if self._micro < self._expected:
            self.engine.step()  # not a boundary: DeepSpeed only advances its micro-step counter

    def step(self) -> StepStats:
        """Optimizer and lr-schedule update, after exactly grad_accum backward calls (or the number given
        to accumulate())."""
        if self._micro != self._expected:
            raise RuntimeError(f"step() after {self._micro} backward calls; expected {self._expected}")
        # DeepSpeed's ZeRO and mixed-precision optimizers keep the pre-clip norm they compute; the bare
        # client optimizer (ZeRO-0, fp32) keeps none: DeepSpeed clips through a helper whose returned norm
        # it discards, so get_global_grad_norm() stays None. Measure it here, before the step clips.
        own_norm = None if hasattr(self.engine.optimizer, "_global_grad_norm") else self._module_grad_norm()
        self.engine.step()
        self._micro, self._expected = 0, self.grad_accum
        norm = own_norm if own_norm is not None else self.engine.get_global_grad_norm()
        norm = float(norm) if norm is not None else None
        return StepStats(lr=self.lr, grad_norm=norm)

    def _module_grad_norm(self) -> float:
        """Global 2-norm of the module's gradients. Valid only without ZeRO partitioning: after the
        boundary backward every rank holds the full all-reduced gradient, so no collective is needed."""
        norms = [p.grad.detach().float().norm() for p in self.engine.module.parameters() if p.grad is not None]
        return float(torch.stack(norms).norm()) if norms else 0.0

    @property
    def lr(self) -> float:
        return float(self.engine.lr_scheduler.get_last_lr()[0])

    # ------------------------------------------------------------------ state
    def save_state(self, directory: str | Path) -> None:
        """Resumable state (sharded weights, optimizer, lr schedule) into `directory` (all ranks call)."""
        # LoRA: the frozen base is the stage's input model, reloaded on resume; only the adapter is saved
        self.engine.save_checkpoint(str(directory), tag="deepspeed", client_state={}, save_latest=False,
                                    exclude_frozen_parameters=self.lora)
        if self.lora:
            self._save_adapter(Path(directory) / "adapter")  # for users: the same adapter, in PEFT's format

    def load_state(self, directory: str | Path) -> None:
        path, _ = self.engine.load_checkpoint(
            str(directory), tag="deepspeed", load_optimizer_states=True, load_lr_scheduler_states=True,
            load_module_strict=not self.lora,  # LoRA: the checkpoint holds the adapter, not the frozen base
        )
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed state under {directory}")

    def _gather(self, params: list[torch.nn.Parameter]):
        """A context in which `params` are whole (ZeRO-3: gathered, re-partitioned on exit). Collective."""
        import deepspeed

        return deepspeed.zero.GatheredParameters(params, enabled=self.zero_stage == 3)

    def iter_full_params(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Full (unsharded) parameters and persistent buffers one at a time, as CPU tensors.
        Under ZeRO-3 each parameter is gathered on its own and re-partitioned right after, so the
        whole model never sits twice in memory. Every rank must iterate (the gathers are
        collective); every rank receives the tensors. With LoRA: the merged model (W + (alpha/r) B A
        for each adapted layer) under the Hugging Face names, no adapter tensors: what the engine
        loads and what final/ holds."""
        module = self.engine.module
        if self.lora:
            yield from merged_params(module, self._gather)
            return
        for name, param in module.named_parameters():
            with self._gather([param]):
                yield name, param.detach().to("cpu", copy=True)
        persistent = set(module.state_dict().keys())
        for name, buf in module.named_buffers():
            if name in persistent:
                yield name, buf.detach().to("cpu", copy=True)

    def adapter_disabled(self):
        """A context in which the module computes its base model (LoRA adapter off): the input model, the
        DPO and KL reference, without a second copy of its weights. A no-op without LoRA."""
        return adapter_disabled(self.engine.module)

    def base_scorer(self) -> TokenScorer | None:
        """With LoRA, a TokenScorer of the base model (this engine's forward with the adapter off, the
        same chunked LM head); None without LoRA (the reference is then a separate copy)."""
        if not self.lora:
            return None
        return replace(self.scorer, forward=AdapterOff(self.forward, self.engine.module))

    def _save_adapter(self, directory: Path) -> None:
        """The adapter in PEFT's format into `directory` (rank 0 writes; every rank gathers)."""
        state = {}
        for name, tensor in adapter_params(self.engine.module, self._gather):
            if self.world.is_main:
                state[name] = tensor
        if self.world.is_main:
            save_adapter(self.engine.module, state, directory)

    def export_hf(self, directory: str | Path, tokenizer: Any) -> None:
        """A Hugging Face checkpoint (safetensors + config + tokenizer) of the current weights;
        rank 0 writes it, every rank takes part in gathering. With LoRA: the merged model, and the
        adapter in PEFT's format in `directory`/adapter/."""
        state = {}
        for name, tensor in self.iter_full_params():
            if self.world.is_main:
                state[name] = tensor
        if self.world.is_main:
            out = Path(directory)
            out.mkdir(parents=True, exist_ok=True)
            base_model(self.engine.module).save_pretrained(out, state_dict=state, safe_serialization=True)
            tokenizer.save_pretrained(out)
        if self.lora:
            self._save_adapter(Path(directory) / "adapter")
        self.world.barrier()

    def close(self) -> None:
        """Free the engine (before the process group goes away; avoids the ZeRO-3 exit abort)."""
        if self.engine is not None:
            self.engine.destroy()
            self.engine = None
            gc.collect()
