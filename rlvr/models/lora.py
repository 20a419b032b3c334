"""LoRA through PEFT: wrapping a model, the merged weights the engine receives, the adapter on disk, and
the base model (adapter off) as the DPO / KL reference.

    model = apply_lora(load_model(...), cfg.lora, seed)      # a PeftModel; only lora_A / lora_B train
    for name, w in merged_params(model, gather): ...         # HF names, W + (alpha/r) B A: what vLLM loads
    with adapter_disabled(model): ...                        # the input model, no second copy of it

Rollouts use the current adapter through merged weights pushed by the ordinary weight sync
(docs/generation.md, "LoRA"): the engine holds a plain model, so the probe compares it with the trainer's
forward (adapter on) after every sync like any other update. Parameter names inside the PeftModel are
`base_model.model.<hf name>` with `.base_layer` inserted before a target layer's own weight; `hf_name`
maps them back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlvr.models.config import LORA_TARGETS, LoraConfig
from rlvr.schema import UserError

ADAPTER = "default"  # PEFT's name of the one adapter
Gather = Callable[[list[nn.Parameter]], contextlib.AbstractContextManager]
"""Makes a list of parameters whole for the duration of a `with` (ZeRO-3 gathers; else a no-op)."""


def target_modules(cfg: LoraConfig, model: nn.Module) -> list[str]:
    """The configured targets, or LORA_TARGETS for the model's `model_type` (UserError when unknown)."""
    if cfg.target_modules != "auto":
        return list(cfg.target_modules)
    kind = getattr(model.config, "model_type", "")
    if kind not in LORA_TARGETS:
        raise UserError(f"lora.target_modules: no default for model_type {kind!r} (defaults for "
                        f"{', '.join(sorted(LORA_TARGETS))}); list the linear layers to adapt, e.g. "
                        "target_modules: [q_proj, v_proj]")
    return LORA_TARGETS[kind]


def apply_lora(model: nn.Module, cfg: LoraConfig, seed: int) -> nn.Module:
    """`model` inside a PEFT LoRA wrapper: base weights frozen, A initialised from `seed` (the same on
    every rank and in every run, whatever the global RNG), B zero. Every target must match a module."""
    import peft

    targets = target_modules(cfg, model)
    linear = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    if missing := [t for t in targets if t not in linear]:
        raise UserError(f"lora.target_modules: {missing} match no linear layer of this model "
                        f"(its linear layers: {sorted(linear)})")
    config = peft.LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                             bias="none", task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return peft.get_peft_model(model, config, autocast_adapter_dtype=False)


def is_lora(module: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(module, PeftModel)


def adapter_disabled(module: nn.Module) -> contextlib.AbstractContextManager:
    """Inside the `with`, `module` computes the base model (its adapter off); a no-op without LoRA."""
    return module.disable_adapter() if is_lora(module) else contextlib.nullcontext()


def hf_name(name: str) -> str:
    """A PeftModel parameter name as the Hugging Face model names it:
    base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight -> model.layers.0.self_attn.q_proj.weight."""
    return name.removeprefix("base_model.model.").replace(".base_layer.", ".")


def _lora_layers(module: nn.Module) -> dict[str, Any]:
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in module.named_modules() if isinstance(m, LoraLayer)}


def merged_params(module: nn.Module, gather: Gather) -> Iterator[tuple[str, torch.Tensor]]:
    """The merged model's parameters and persistent buffers, one at a time, as CPU tensors with Hugging
    Face names: a target layer's weight is W + (alpha / r) * B @ A, computed in fp32 and cast to W's
    dtype (PEFT's merge); no lora_ tensors. `gather` makes a layer's W, A and B whole together (ZeRO-3)."""
    layers = _lora_layers(module)
    for name, param in module.named_parameters():
        if ".lora_" in name:
            continue
        owner, _, leaf = name.rpartition(".")
        layer = layers.get(owner.removesuffix(".base_layer")) if owner.endswith(".base_layer") else None
        if layer is None or leaf != "weight":
            with gather([param]):
                yield hf_name(name), param.detach().to("cpu", copy=True)
            continue
        a, b = layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight  # [r, in], [out, r]
        with gather([param, a, b]):
            delta = b.detach().float() @ a.detach().float() * layer.scaling[ADAPTER]  # [out, in]
            if getattr(layer, "fan_in_fan_out", False):
                delta = delta.T
            yield hf_name(name), (param.detach().float() + delta).to(param.dtype).cpu()
    persistent = set(module.state_dict().keys())
    for name, buf in module.named_buffers():
        if name in persistent:
            yield hf_name(name), buf.detach().to("cpu", copy=True)


def adapter_params(module: nn.Module, gather: Gather) -> Iterator[tuple[str, torch.Tensor]]:
    """The adapter's parameters (module names, lora_ tensors only), whole, as CPU tensors."""
    for name, param in module.named_parameters():
        if ".lora_" in name:
            with gather([param]):
                yield name, param.detach().to("cpu", copy=True)


def save_adapter(module: nn.Module, state: dict[str, torch.Tensor], directory: str | Path) -> None:
    """The adapter in PEFT's format (adapter_config.json + adapter_model.safetensors), loadable with
    `PeftModel.from_pretrained(base, directory)`; `state` from adapter_params."""
    module.save_pretrained(str(directory), state_dict=state, safe_serialization=True)


def base_model(module: nn.Module) -> nn.Module:
    """The Hugging Face model inside a PeftModel (its config and save_pretrained); `module` itself otherwise."""
    return module.get_base_model() if is_lora(module) else module


class AdapterOff:
    """`forward` (the trainer's) run with `module`'s adapter off: the base model, as the forward of a
    TokenScorer. Module-like where the scorer's users look (`config`, `is_gradient_checkpointing`)."""

    def __init__(self, forward: Callable[..., Any], module: nn.Module):
        self.forward, self.module = forward, module

    def __call__(self, **inputs: Any) -> Any:
        with adapter_disabled(self.module):
            return self.forward(**inputs)

    @property
    def config(self) -> Any:
        return self.module.config

    @property
    def is_gradient_checkpointing(self) -> bool:
        return bool(getattr(self.module, "is_gradient_checkpointing", False))
