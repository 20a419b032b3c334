"""`rlvr plan`: how much memory each stage of a recipe needs per GPU, before anything is submitted.

Estimates, not measurements: every term is a formula of the model's shape and the recipe's knobs,
written in the docstring of the function that computes it (docs/memory.md collects them with the
error measured by bench/plan_check.py). Sizes are bytes per GPU; `GiB` = 2**30 bytes.

A stage's peak is the larger of two phases:

    train   = weights + grads + optimizer + zero_buffers + activations + logits + reference
              (+ vLLM's share when its engine stays awake during training)
    rollout = weights + optimizer + zero_buffers + reference + vLLM's share
              (rlvr: the engine wakes after the trainer's temporaries are freed; gradients are freed by
              DeepSpeed's step)

This module imports only the recipe schema (pydantic, yaml) and the standard library: `rlvr plan`
answers without torch, DeepSpeed or vLLM. Nothing is downloaded: hub ids are read from the local
Hugging Face cache or a built-in table of shapes.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rlvr.config import (
    BackendConfig,
    DistillStage,
    DpoStage,
    EvalStage,
    MidtrainStage,
    Recipe,
    RlvrStage,
    SftStage,
)

GiB = 2**30
MiB = 2**20
DEFAULT_GPUS = 8
DEFAULT_GPU_MEMORY = "80GiB"

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

LOGITS_CHUNK_FACTOR = 3.0
"""fp32 [chunk, V] buffers alive at once in the chunked scorer (rlvr/rl/logprobs.py). Measured on CPU in
fp32 (bench/memory.py, bench/plan_check.py): 2 (the log-probabilities and the probabilities, or their
gradient). Counted as 3: with bf16 weights the bf16 logits exist beside their fp32 copy for a moment, and
a GPU logsumexp materialises its exponentials. To be replaced by a GPU measurement."""
FULL_LOGITS_FACTOR_ENTROPY = 5.0
"""logits_chunk_tokens 0, RL loss with an entropy term: fp32 [tokens, V] tensors at the peak (measured
5.0x one fp32 [B, T, V] tensor)."""
FULL_LOGITS_FACTOR_NLL = 3.0
"""logits_chunk_tokens 0, NLL only (SFT, mid-training, DPO, RL without entropy): fp32 logits,
log-softmax and its gradient."""
BACKWARD_WORKSPACE_LAYERS = 1.0
"""Gradients in flight while one decoder layer is differentiated, in units of that layer's saved
activations (bench/plan_check.py: without it the estimate was 13 % (no checkpointing) and 24 %
(checkpointing) under the measured peak of an activation-dominated step)."""
DS_REDUCE_BUCKET_ELEMENTS = 500_000_000
"""DeepSpeed's default zero_optimization.reduce_bucket_size (elements): ZeRO 1-2 allocate one
contiguous gradient bucket of this size; ZeRO-3 two (overlap_comm is on by default there)."""


class PlanError(Exception):
    """A user mistake found while planning (unknown model, bad --gpu-memory): exit 2, no traceback."""


# --------------------------------------------------------------------------------------------------
# model shapes


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a Llama-family decoder (Llama, Qwen2, Phi-3) that memory depends on."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    head_dim: int = 0
    """0: hidden / heads."""
    qkv_bias: bool = False
    source: str = ""
    """Where the shape came from (config.json path, HF cache, built-in table, tiny spec)."""

    @property
    def q_dim(self) -> int:
        return self.heads * (self.head_dim or self.hidden // self.heads)

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * (self.head_dim or self.hidden // self.heads)


# Public config.json values of the hub ids our recipes use (no download needed to plan them).
# Qwen2.5-Math-1.5B and Phi-4-mini-instruct match bench/configs/*.json (tests/test_plan.py checks).
KNOWN_SHAPES: dict[str, dict[str, Any]] = {
    "Qwen/Qwen2.5-Math-1.5B": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960,
                                   num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                                   vocab_size=151936, tie_word_embeddings=True),
    "Qwen/Qwen2.5-Math-7B": dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944,
                                 num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                                 vocab_size=152064, tie_word_embeddings=False),
    "microsoft/Phi-4-mini-instruct": dict(model_type="phi3", hidden_size=3072, intermediate_size=8192,
                                          num_hidden_layers=32, num_attention_heads=24, num_key_value_heads=8,
                                          vocab_size=200064, tie_word_embeddings=True),
    "meta-llama/Llama-3.2-3B-Instruct": dict(model_type="llama", hidden_size=3072, intermediate_size=8192,
                                             num_hidden_layers=28, num_attention_heads=24, num_key_value_heads=8,
                                             vocab_size=128256, tie_word_embeddings=True),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960,
                                                      num_hidden_layers=28, num_attention_heads=12,
                                                      num_key_value_heads=2, vocab_size=151936,
                                                      tie_word_embeddings=False),
}


def shape_from_config(cfg: dict[str, Any], source: str) -> ModelShape:
    """A ModelShape from a Hugging Face config.json mapping (text models of the Llama family)."""
    cfg = cfg.get("text_config", cfg) if "hidden_size" not in cfg else cfg
    try:
        heads = int(cfg["num_attention_heads"])
        return ModelShape(
            hidden=int(cfg["hidden_size"]), intermediate=int(cfg["intermediate_size"]),
            layers=int(cfg["num_hidden_layers"]), heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads), vocab=int(cfg["vocab_size"]),
            tied=bool(cfg.get("tie_word_embeddings", False)), head_dim=int(cfg.get("head_dim") or 0),
            qkv_bias=cfg.get("model_type") == "qwen2" or bool(cfg.get("attention_bias", False)),
            source=source,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise PlanError(f"{source}: not a decoder config rlvr plan can read (missing or bad {err})") from None


def hf_cache_config(repo_id: str, revision: str | None = None) -> Path | None:
    """config.json of `repo_id` in the local Hugging Face hub cache (HF_HUB_CACHE, HF_HOME/hub or
    ~/.cache/huggingface/hub), at `revision` (a ref such as main, or a commit), else any snapshot.
    Reads the cache layout directly: never downloads, never imports huggingface_hub."""
    root = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub")
    repo = Path(root) / f"models--{repo_id.replace('/', '--')}"
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / (revision or "main")
    commit = ref.read_text().strip() if ref.is_file() else (revision or "")
    if commit and (snapshots / commit / "config.json").is_file():
        return snapshots / commit / "config.json"
    found = sorted(snapshots.glob("*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return found[0] if found else None


def resolve_shape(recipe: Recipe) -> ModelShape:
    """The recipe model's shape: `model.tiny` (its spec), a local directory's config.json, the HF cache,
    or KNOWN_SHAPES; PlanError when none applies."""
    m = recipe.model
    if m.tiny is not None:
        t = m.tiny
        vocab = getattr(t, "embedding_size", None) or t.vocab_size
        return ModelShape(hidden=t.hidden_size, intermediate=t.intermediate_size, layers=t.num_layers,
                          heads=t.num_heads, kv_heads=t.num_kv_heads, vocab=vocab, tied=False, qkv_bias=True,
                          source="model.tiny")
    name = str(m.name)
    local = Path(name).expanduser()
    if local.is_dir():
        cfg = local / "config.json"
        if not cfg.is_file():
            raise PlanError(f"model.name {name}: the directory has no config.json")
        return shape_from_config(_read_json(cfg), str(cfg))
    cached = hf_cache_config(name, m.revision)
    if cached is not None:
        return shape_from_config(_read_json(cached), f"HF cache {cached}")
    if name in KNOWN_SHAPES:
        return shape_from_config(KNOWN_SHAPES[name], "built-in shape table")
    raise PlanError(f"model.name {name}: no config.json found (not a local directory, not in the Hugging Face "
                    f"cache, not one of the built-in shapes); pass a local path: --set model.name=/path/to/model")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise PlanError(f"{path}: cannot read it as JSON ({err})") from None
    if not isinstance(data, dict):
        raise PlanError(f"{path}: not a JSON object")
    return data


# --------------------------------------------------------------------------------------------------
# estimates (pure functions of shapes and knobs; bytes)


def parameter_count(shape: ModelShape) -> int:
    """N = V·H (embedding) + V·H (LM head, unless tied) + H (final norm)
         + L·(H·q + 2·H·kv + q·H  [+ q + 2·kv biases]  + 3·H·I  + 2·H)
    with q = heads·head_dim, kv = kv_heads·head_dim, I = intermediate (SwiGLU: gate, up, down).
    Qwen2.5-Math-1.5B: 1,543,714,304 (its safetensors hold 1.54 B)."""
    H, mlp, q, kv = shape.hidden, shape.intermediate, shape.q_dim, shape.kv_dim
    layer = H * q + 2 * H * kv + q * H + 3 * H * mlp + 2 * H + ((q + 2 * kv) if shape.qkv_bias else 0)
    return shape.vocab * H * (1 if shape.tied else 2) + H + shape.layers * layer


def model_state_bytes(n_params: int, dtype: str, zero_stage: int, world: int, offload_optimizer: bool = False,
                      grad_bytes: int | None = None) -> tuple[float, float, float, float]:
    """(weights, grads, optimizer on GPU, optimizer on CPU) per GPU for N parameters.

    bf16/fp16: weights 2·N, grads g·N (g = 2, or 4 when DeepSpeed accumulates in fp32:
    `grad_bytes`), optimizer 12·N (fp32 master copy + Adam m and v). fp32: 4·N, 4·N, 8·N (no master).
    ZeRO-1 divides the optimizer by the world size W, ZeRO-2 also the grads, ZeRO-3 also the weights;
    offload_optimizer moves the optimizer to CPU RAM (the per-rank partition, on the node's host)."""
    w = DTYPE_BYTES[dtype]
    g = grad_bytes or w
    opt = 8 if w == 4 else 12
    weights = w * n_params / (world if zero_stage >= 3 else 1)
    grads = g * n_params / (world if zero_stage >= 2 else 1)
    optim = opt * n_params / (world if zero_stage >= 1 else 1)
    return weights, grads, (0.0 if offload_optimizer else optim), (optim if offload_optimizer else 0.0)


def zero_buffer_bytes(shape: ModelShape, dtype: str, zero_stage: int, grad_bytes: int | None = None) -> float:
    """DeepSpeed's working buffers besides the states:
    ZeRO 1-2: one contiguous gradient bucket of reduce_bucket_size (5e8) elements, g bytes each
    (ZeRO-1 stages in fp32: 4); ZeRO-3: two such buckets (overlap_comm) plus the parameters gathered
    for the running module, taken as the largest module (the V·H embedding or LM head) plus one layer.
    ZeRO-0: none."""
    w = DTYPE_BYTES[dtype]
    g = grad_bytes or w
    if zero_stage == 0:
        return 0.0
    if zero_stage in (1, 2):
        return DS_REDUCE_BUCKET_ELEMENTS * (4 if zero_stage == 1 else g)
    layer = (parameter_count(shape) - shape.vocab * shape.hidden * (1 if shape.tied else 2)) / shape.layers
    return 2.0 * DS_REDUCE_BUCKET_ELEMENTS * g + w * (shape.vocab * shape.hidden + layer)


def layer_activation_bytes(shape: ModelShape, dtype: str) -> float:
    """Bytes one decoder layer keeps for backward, per token (transformers' Llama/Qwen2/Phi-3 layer,
    SDPA attention, no dropout), b = bytes of the training dtype:

        A = b·(3·q + 2·kv + 4·I) + 2·(4 + b)·H + 4·heads

    b·q rotated queries, b·2·kv keys and values and b·q output saved by SDPA, b·q the o_proj input;
    b·4·I SwiGLU's gate, up, silu(gate) and their product; each RMSNorm keeps its input in fp32 (4·H)
    and its normalised output in the training dtype (b·H); 4·heads SDPA's logsumexp. Korthikanti et
    al. 2022 count 34·H + 5·heads·s per token for GPT layers with a 4·H MLP in fp16; flash/SDPA
    attention drops the heads·s² score term, and SwiGLU with I = 5.8·H (Qwen2.5) makes the MLP the
    largest part. Not counted: transformers' repeat_kv when SDPA is given a padding mask (keys and
    values saved at q width: +2·b·(q - kv)), eager attention's b·2·heads·s per token."""
    b = DTYPE_BYTES[dtype]
    return b * (3 * shape.q_dim + 2 * shape.kv_dim + 4 * shape.intermediate) + 2 * (4 + b) * shape.hidden \
        + 4 * shape.heads


def activation_bytes(shape: ModelShape, tokens: int, dtype: str, checkpointing: bool) -> float:
    """Activations of one micro-batch of `tokens` tokens (per rank), at their peak in backward:

        no checkpointing:  tokens·(L·A + W·A + (4 + b)·H)
        checkpointing:     tokens·(L·b·H + A + W·A + (4 + b)·H)

    with A = layer_activation_bytes and W = BACKWARD_WORKSPACE_LAYERS. Checkpointing (per decoder
    layer, transformers' non-reentrant) keeps each layer's input and recomputes one layer's
    activations at a time in backward; W·A is the gradients of the intermediates of the layer being
    differentiated (each saved tensor gets a gradient of its size, not all at once); (4 + b)·H is the
    final norm. bench/plan_check.py measures the error (docs/memory.md)."""
    b = DTYPE_BYTES[dtype]
    A = layer_activation_bytes(shape, dtype)
    final = (4 + b) * shape.hidden + BACKWARD_WORKSPACE_LAYERS * A
    if checkpointing:
        return tokens * (shape.layers * b * shape.hidden + A + final)
    return tokens * (shape.layers * A + final)


def logits_bytes(shape: ModelShape, scored_tokens: int, chunk: int, dtype: str, entropy: bool) -> float:
    """Peak of scoring `scored_tokens` positions against the V-row LM head.

    chunk > 0 (backend.logits_chunk_tokens): LOGITS_CHUNK_FACTOR·min(chunk, tokens)·V·4, plus in
    backward an fp32 accumulator for the LM head's gradient, V·H·4, when the weights are not fp32 and
    there is more than one chunk. chunk = 0 (full logits): FULL_LOGITS_FACTOR_ENTROPY (RL with an
    entropy term) or FULL_LOGITS_FACTOR_NLL, times tokens·V·4."""
    if scored_tokens <= 0:
        return 0.0
    V = shape.vocab
    if chunk == 0:
        return (FULL_LOGITS_FACTOR_ENTROPY if entropy else FULL_LOGITS_FACTOR_NLL) * scored_tokens * V * 4
    acc = V * shape.hidden * 4 if DTYPE_BYTES[dtype] < 4 and scored_tokens > chunk else 0
    return LOGITS_CHUNK_FACTOR * min(chunk, scored_tokens) * V * 4 + acc


def engine_minimum_bytes(shape: ModelShape, dtype: str, max_model_len: int, tensor_parallel: int = 1) -> float:
    """What a vLLM engine needs at the least: its weights (N·b / tp) and the KV cache of one
    max_model_len sequence (2·L·kv·b per token / tp). A share below this fails at engine start."""
    b = DTYPE_BYTES[dtype]
    return (parameter_count(shape) * b + 2 * shape.layers * shape.kv_dim * b * max_model_len) / tensor_parallel


# --------------------------------------------------------------------------------------------------
# stages


@dataclass(frozen=True)
class StageSetup:
    """The knobs that move one stage's memory, read from the recipe by `stage_setup`."""

    name: str
    type: str
    dtype: str
    zero_stage: int
    offload_optimizer: bool
    gradient_checkpointing: bool
    logits_chunk_tokens: int
    micro_batch_size: int
    seq_len: int
    """Longest sequence of a micro-batch row (dpo: one side of a pair)."""
    tokens: int
    """Tokens per micro-batch per rank (0: the stage does not train)."""
    scored_fraction: float = 1.0
    """Share of `tokens` whose logits are scored (rlvr: the response columns only)."""
    entropy: bool = False
    reference: bool = False
    """A second full copy of the model on every rank (rlvr with kl.coef > 0)."""
    critic: bool = False
    """A value model with its own gradients and optimizer (rlvr with advantage: gae)."""
    vllm_utilization: float = 0.0
    """generation.gpu_memory_utilization when the stage generates with vllm, else 0."""
    vllm_awake_in_training: bool = False
    max_model_len: int = 0
    tensor_parallel: int = 1
    token_budget_field: str | None = None
    """The stage's `max_tokens_per_micro_batch` key when its schema has one."""
    generation_note: str = ""


def stage_setup(stage: Any, recipe: Recipe, vocab: int) -> StageSetup:
    """Read one stage's memory knobs. Tokens per micro-batch per rank: max_tokens_per_micro_batch when
    set, else micro_batch_size × the stage's sequence length (midtrain seq_len; sft max_len; dpo
    2 × pairs.max_len per pair; rlvr max_prompt_tokens + max_response_tokens)."""
    be = recipe.backend
    micro = getattr(stage, "micro_batch_size", None) or be.micro_batch_size
    budget = getattr(stage, "max_tokens_per_micro_batch", None)
    budget_field = (f"stages.{stage.name}.max_tokens_per_micro_batch"
                    if "max_tokens_per_micro_batch" in type(stage).model_fields else None)
    base = dict(name=stage.name, type=stage.type, dtype=recipe.model.dtype, zero_stage=be.zero_stage,
                offload_optimizer=be.offload_optimizer, gradient_checkpointing=be.gradient_checkpointing,
                logits_chunk_tokens=be.logits_chunk(vocab), micro_batch_size=micro,
                token_budget_field=budget_field)
    gen = getattr(stage, "generation", None)
    vllm = dict(vllm_utilization=gen.gpu_memory_utilization, max_model_len=gen.max_model_len,
                tensor_parallel=gen.tensor_parallel_size) if gen is not None and gen.backend == "vllm" else {}
    if isinstance(stage, MidtrainStage | SftStage):
        seq = stage.seq_len if isinstance(stage, MidtrainStage) else stage.max_len
        return StageSetup(**base, seq_len=seq, tokens=budget or micro * seq)
    if isinstance(stage, DpoStage):
        seq = stage.pairs.max_len
        generates = stage.pairs_from is None and stage.pairs.source == "policy"
        note = ("pairs are generated before training (engine closed before DeepSpeed starts)" if generates
                else "no generation (pairs from a file); the reference log-probs are precomputed by the policy")
        return StageSetup(**base, seq_len=seq, tokens=budget or micro * 2 * seq, generation_note=note,
                          **(vllm if generates else {}))
    if isinstance(stage, RlvrStage):
        seq = stage.max_prompt_tokens + stage.max_response_tokens
        awake = bool(vllm) and not gen.sleep_mode
        note = ("vLLM sleeps during training (sleep_mode, level "
                f"{gen.sleep_level}): its share counts in the rollout phase only" if vllm and not awake else
                "vLLM stays awake during training (sleep_mode false): its share counts in both phases" if vllm
                else "hf generation shares the trainer's weights (its KV cache is not counted)")
        return StageSetup(**base, seq_len=seq, tokens=budget or micro * seq,
                          scored_fraction=stage.max_response_tokens / seq, entropy=stage.entropy_coef != 0,
                          reference=stage.kl.coef > 0, critic=stage.advantage == "gae", vllm_awake_in_training=awake,
                          generation_note=note, **vllm)
    if isinstance(stage, EvalStage):
        return StageSetup(**base, seq_len=0, tokens=0, generation_note="evaluation only: no training", **vllm)
    if isinstance(stage, DistillStage):
        return StageSetup(**base, seq_len=0, tokens=0, generation_note="teacher sampling only: no training; "
                          "vLLM's share holds the teacher's weights (per tensor-parallel rank) and KV cache", **vllm)
    raise PlanError(f"stage {stage.name}: type {stage.type} is not known to rlvr plan")


@dataclass(frozen=True)
class StageMemory:
    """Bytes per GPU of one stage (see the module docstring for the two phases)."""

    weights: float
    grads: float
    optimizer: float
    optimizer_cpu: float
    zero_buffers: float
    activations: float
    activations_other: float
    """With the other gradient_checkpointing setting, for comparison (not in the totals)."""
    logits: float
    reference: float
    vllm: float
    train: float
    rollout: float
    critic: float = 0.0
    """PPO's value model: weights, gradients, optimizer and DeepSpeed buffers of its own engine (both phases)."""

    @property
    def peak(self) -> float:
        return max(self.train, self.rollout)


def stage_memory(shape: ModelShape, s: StageSetup, world: int, gpu_memory: float,
                 grad_bytes: int | None = None) -> StageMemory:
    """Per-GPU bytes of one stage: model states (model_state_bytes), DeepSpeed buffers, activations,
    logits, the reference copy (N·b on every rank) and vLLM's share (utilization × GPU memory)."""
    n = parameter_count(shape)
    vllm = s.vllm_utilization * gpu_memory
    if s.tokens == 0:  # evaluation: the engine holds the weights; hf generation: the model itself
        w = 0.0 if vllm else DTYPE_BYTES[s.dtype] * n
        return StageMemory(w, 0, 0, 0, 0, 0, 0, 0, 0, vllm, 0.0, w + vllm)
    weights, grads, optim, optim_cpu = model_state_bytes(n, s.dtype, s.zero_stage, world, s.offload_optimizer,
                                                         grad_bytes)
    buffers = zero_buffer_bytes(shape, s.dtype, s.zero_stage, grad_bytes)
    act = activation_bytes(shape, s.tokens, s.dtype, s.gradient_checkpointing)
    act_other = activation_bytes(shape, s.tokens, s.dtype, not s.gradient_checkpointing)
    logits = logits_bytes(shape, round(s.tokens * s.scored_fraction), s.logits_chunk_tokens, s.dtype, s.entropy)
    ref = DTYPE_BYTES[s.dtype] * n if s.reference else 0.0
    critic, critic_grads = critic_bytes(shape, s, world, grad_bytes) if s.critic else (0.0, 0.0)
    states = weights + optim + buffers + ref + critic
    train = states + grads + critic_grads + act + logits + (vllm if s.vllm_awake_in_training else 0.0)
    rollout = states + vllm if vllm else 0.0
    if s.type == "dpo":  # the policy's engine runs before DeepSpeed wraps the model
        rollout = vllm
    return StageMemory(weights, grads, optim, optim_cpu, buffers, act, act_other, logits, ref, vllm, train, rollout,
                       critic + critic_grads)


def critic_bytes(shape: ModelShape, s: StageSetup, world: int, grad_bytes: int | None = None) -> tuple[float, float]:
    """PPO's value model per GPU, (weights + optimizer + ZeRO buffers, gradients): the trunk (the policy without
    its LM head) plus a Linear(H, 1) head under its own engine. The first part is held in both phases (the
    engine is not put to sleep), the gradients while training, as the policy's. Its activations are not added:
    it trains after the policy's update has freed the policy's, on the same micro-batches, with no LM head."""
    n = parameter_count(replace(shape, tied=True)) + shape.hidden + 1
    weights, grads, optim, _ = model_state_bytes(n, s.dtype, s.zero_stage, world, s.offload_optimizer, grad_bytes)
    return weights + optim + zero_buffer_bytes(shape, s.dtype, s.zero_stage, grad_bytes), grads


@dataclass
class StagePlan:
    setup: StageSetup
    memory: StageMemory
    shape: ModelShape
    world: int
    gpu_memory: float
    problems: list[str] = field(default_factory=list)
    """Why the stage does not fit, with the knobs to turn; empty when it fits."""

    @property
    def fits(self) -> bool:
        return not self.problems


def advice(shape: ModelShape, s: StageSetup, world: int, gpu_memory: float) -> list[str]:
    """Knobs that lower the stage's peak, each with the peak it would give, best first."""
    peak = stage_memory(shape, s, world, gpu_memory).peak
    options: list[tuple[str, StageSetup]] = []
    if s.tokens and s.tokens > s.seq_len:
        smaller = _largest_fitting_tokens(shape, s, world, gpu_memory)
        if s.token_budget_field:
            options.append((f"lower {s.token_budget_field} to {smaller}", replace(s, tokens=smaller)))
        elif s.micro_batch_size > 1:
            per_row = s.tokens // s.micro_batch_size
            micro = max(1, smaller // per_row)
            options.append((f"lower stages.{s.name}.micro_batch_size to {micro}", replace(s, tokens=micro * per_row)))
    if s.tokens and not s.gradient_checkpointing:
        options.append(("set backend.gradient_checkpointing: true", replace(s, gradient_checkpointing=True)))
    if s.tokens and s.zero_stage < 3:
        options.append(("set backend.zero_stage: 3", replace(s, zero_stage=3)))
    if s.tokens and s.zero_stage >= 1 and not s.offload_optimizer:
        options.append(("set backend.offload_optimizer: true", replace(s, offload_optimizer=True)))
    if s.tokens and s.logits_chunk_tokens == 0:
        options.append(("unset backend.logits_chunk_tokens (chunked logits)",
                        replace(s, logits_chunk_tokens=BackendConfig().logits_chunk(shape.vocab))))
    if s.vllm_awake_in_training:
        options.append((f"set stages.{s.name}.generation.sleep_mode: true", replace(s, vllm_awake_in_training=False)))
    mem = stage_memory(shape, s, world, gpu_memory)
    if s.vllm_utilization and mem.rollout >= mem.train:
        room = (gpu_memory - (mem.rollout - mem.vllm)) / gpu_memory
        util = max(0.05, int(room * 20) / 20)
        if util < s.vllm_utilization:
            options.append((f"lower stages.{s.name}.generation.gpu_memory_utilization to {util:.2f}",
                            replace(s, vllm_utilization=util)))
    scored = [(stage_memory(shape, new, world, gpu_memory).peak, text) for text, new in options]
    scored = sorted((p, t) for p, t in scored if p < peak)
    return [f"{t} ({p / GiB:.1f} GiB{', fits' if p <= gpu_memory else ''})" for p, t in scored]


def _largest_fitting_tokens(shape: ModelShape, s: StageSetup, world: int, gpu_memory: float) -> int:
    """The largest token budget (a multiple of 1024, at least one sequence) under which the stage fits;
    one sequence when none does."""
    lo, hi = s.seq_len, s.tokens
    step = 1024
    best = lo
    for tokens in range((hi - 1) // step * step, lo - 1, -step):
        if stage_memory(shape, replace(s, tokens=tokens), world, gpu_memory).peak <= gpu_memory:
            best = tokens
            break
    return best


def accumulated_grad_bytes(recipe: Recipe) -> int:
    """Bytes per gradient element as DeepSpeed keeps them (backend.grad_accum_dtype; auto: fp32 at ZeRO 1-3,
    the model dtype at ZeRO-0, as rlvr.backend.grad_accum_dtype resolves it)."""
    be, model = recipe.backend, DTYPE_BYTES[recipe.model.dtype]
    if be.grad_accum_dtype == "auto":
        return 4 if be.zero_stage >= 1 else model
    return {"fp32": 4, "bf16": 2, "fp16": 2}[be.grad_accum_dtype]


def plan_recipe(recipe: Recipe, gpus: int, gpu_memory_bytes: float, grad_bytes: int | None = None) -> list[StagePlan]:
    """One StagePlan per stage of `recipe` on `gpus` GPUs of `gpu_memory_bytes` each. `grad_bytes`: bytes
    per gradient element (default: from backend.grad_accum_dtype)."""
    grad_bytes = grad_bytes or accumulated_grad_bytes(recipe)
    if gpus < 1:
        raise PlanError(f"--gpus must be >= 1, got {gpus}")
    if gpu_memory_bytes <= 0:
        raise PlanError(f"--gpu-memory must be > 0, got {gpu_memory_bytes}")
    shape = resolve_shape(recipe)
    plans = []
    for stage in recipe.stages:
        s = stage_setup(stage, recipe, shape.vocab)
        mem = stage_memory(shape, s, gpus, gpu_memory_bytes, grad_bytes)
        problems = []
        if mem.peak > gpu_memory_bytes:
            phase = "training" if mem.train >= mem.rollout else "rollout"
            knobs = advice(shape, s, gpus, gpu_memory_bytes)
            problems.append(f"stage {s.name}: {mem.peak / GiB:.1f} GiB planned ({phase} phase) > "
                            f"{_gib(gpu_memory_bytes)} GiB"
                            + (": " + ", or ".join(knobs) if knobs else ": no single knob is enough"))
        if s.vllm_utilization:
            need = engine_minimum_bytes(shape, s.dtype, s.max_model_len, s.tensor_parallel)
            if mem.vllm < need:
                problems.append(f"stage {s.name}: vLLM's share {mem.vllm / GiB:.1f} GiB cannot hold its weights and "
                                f"one {s.max_model_len}-token sequence's KV cache ({need / GiB:.1f} GiB): raise "
                                f"stages.{s.name}.generation.gpu_memory_utilization")
        plans.append(StagePlan(s, mem, shape, gpus, gpu_memory_bytes, problems))
    return plans


# --------------------------------------------------------------------------------------------------
# input and output

_UNITS = {"gib": GiB, "gb": GiB, "g": GiB, "mib": MiB, "mb": MiB, "m": MiB, "tib": 2**40, "tb": 2**40, "t": 2**40}
MEMORY_HELP = ("GPU memory per device: a number with GiB, GB or G (all 2**30 bytes: GPUs are sold in binary "
               "units, an '80GB' H100 has 80 GiB), MiB/MB/M or TiB/TB/T; a bare number is GiB")


def parse_memory(text: str) -> float:
    """'80GiB', '80GB', '80G', '80', '141 GiB', '81559MiB' -> bytes. GB and G mean GiB (see MEMORY_HELP)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if m is None or (unit and unit not in _UNITS):
        raise PlanError(f"--gpu-memory {text!r}: expected a size like 80GiB, 80GB, 80G or 81559MiB "
                        "(GiB/GB/G = 2**30 bytes, MiB/MB/M, TiB/TB/T; a bare number is GiB)")
    value = float(m.group(1)) * _UNITS[unit or "gib"]
    if value <= 0:
        raise PlanError(f"--gpu-memory {text!r}: must be > 0")
    return value


def _gib(x: float) -> str:
    return f"{x / GiB:.2f}" if x < 10 * GiB else f"{x / GiB:.1f}"


def _shape_line(shape: ModelShape) -> str:
    n = parameter_count(shape)
    size = f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"
    return (f"{size} parameters (hidden {shape.hidden}, {shape.layers} layers, {shape.heads}/{shape.kv_heads} "
            f"heads, MLP {shape.intermediate}, vocab {shape.vocab:,}{', tied head' if shape.tied else ''}) "
            f"[{shape.source}]")


def format_plan(plans: list[StagePlan], title: str) -> str:
    """The table `rlvr plan` prints: one row per stage, GiB per GPU, then one note per stage and the
    verdict."""
    if not plans:
        return title
    p0 = plans[0]
    s0 = p0.setup
    chunk = s0.logits_chunk_tokens
    lines = [
        f"{title} on {p0.world} GPU{'s' if p0.world != 1 else ''} x {_gib(p0.gpu_memory)} GiB",
        f"model: {_shape_line(p0.shape)}",
        f"backend: {s0.dtype}, ZeRO-{s0.zero_stage}, gradient checkpointing {'on' if s0.gradient_checkpointing else 'off'}, "
        f"optimizer on {'CPU (offload)' if s0.offload_optimizer else 'GPU'}, "
        + (f"logits in chunks of {chunk} tokens" if chunk else "full-vocabulary logits (logits_chunk_tokens 0)"),
        "",
        "GiB per GPU; act: activations with checkpointing on / off, * = the one counted; train and rollout are the",
        "two phases' totals, peak the larger.",
        "",
    ]
    head = ["stage", "tokens", "weights", "grads", "optim", "zero-buf", "act on", "act off", "logits", "ref",
            "train", "vllm", "rollout", "peak", "fits"]
    rows = []
    for p in plans:
        m, s = p.memory, p.setup
        ckpt_on, ckpt_off = (m.activations, m.activations_other) if s.gradient_checkpointing else \
            (m.activations_other, m.activations)
        star = (" *", "") if s.gradient_checkpointing else ("", " *")
        trains = s.tokens > 0
        cell = (lambda x: _gib(x)) if trains else (lambda x: "-")
        rows.append([
            s.name, f"{s.tokens:,}" if trains else "-", _gib(m.weights), cell(m.grads), cell(m.optimizer),
            cell(m.zero_buffers), (_gib(ckpt_on) + star[0]) if trains else "-",
            (_gib(ckpt_off) + star[1]) if trains else "-", cell(m.logits), cell(m.reference),
            cell(m.train), _gib(m.vllm) if m.vllm else "-", _gib(m.rollout) if m.rollout else "-",
            _gib(m.peak), "yes" if p.fits else "NO",
        ])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    lines += [fmt(head), fmt(["-" * w for w in widths]), *map(fmt, rows), ""]
    for p in plans:
        lines.append(f"{p.setup.name}: {_stage_note(p)}")
    lines.append("")
    problems = [q for p in plans for q in p.problems]
    if problems:
        lines += [f"WARNING {q}" for q in problems]
    else:
        lines.append(f"every stage fits in {_gib(p0.gpu_memory)} GiB (largest peak "
                     f"{_gib(max(p.memory.peak for p in plans))} GiB)")
    return "\n".join(lines)


def _stage_note(p: StagePlan) -> str:
    s, m = p.setup, p.memory
    parts = []
    if s.tokens:
        scored = round(s.tokens * s.scored_fraction)
        parts.append(f"{s.type}, {s.tokens:,} tokens per micro-batch per GPU"
                     + (f" ({scored:,} scored)" if scored != s.tokens else ""))
        if s.reference:
            parts.append(f"reference model for the KL term ({_gib(m.reference)} GiB, a full copy per GPU)")
        if s.critic:
            parts.append(f"critic (value model) with its optimizer ({_gib(m.critic)} GiB)")
        if m.optimizer_cpu:
            parts.append(f"optimizer states on CPU: {_gib(m.optimizer_cpu)} GiB per rank")
    else:
        parts.append(s.type)
    if s.vllm_utilization:
        parts.append(f"vLLM gpu_memory_utilization {s.vllm_utilization} = {_gib(m.vllm)} GiB")
    if s.generation_note:
        parts.append(s.generation_note)
    return "; ".join(parts)
