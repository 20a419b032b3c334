"""Typed recipe schema and recipe loading.

A recipe is one YAML file: `name`, `seed`, `run_dir`, `model`, `tracking`, `backend` and an ordered
list of `stages`. Every section is a pydantic model with `extra="forbid"`, so a misspelt key is an
error, and every default lives in a schema: this module's, or the one beside the package a section
configures (`data` in rlvr/data/config.py, evaluation options in rlvr/eval/options.py, `generation`
and `verifier` in rlvr/generate/config.py and rlvr/verify/config.py). `load_recipe` applies `--set`
overrides and reports *all* problems at once as `path.to.key: message` lines (ConfigError, from the
leaf rlvr/schema.py), before anything heavy is imported.

Imports only pydantic, yaml and those schema modules: it must stay cheap (the CLI validates before torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from rlvr.data.config import DataConfig
from rlvr.eval.options import EvalOptions, RlvrValidation
from rlvr.generate.config import GenerationConfig
from rlvr.models.config import LoraConfig
from rlvr.schema import ConfigError, Strict, apply_override, format_validation_error, read_yaml_mapping
from rlvr.verify.config import VerifierConfig
from rlvr.verify.policy import POLICIES

# --------------------------------------------------------------------------------------------------
# model, tracking, backend


class TinyModelSpec(Strict):
    """A Qwen2-architecture model and byte-level BPE tokenizer built locally and deterministically."""

    hidden_size: int = Field(128, ge=32)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(384, ge=1)
    max_position_embeddings: int = Field(1024, ge=64)
    vocab_size: int = Field(512, ge=300, le=8192)
    """Target BPE vocabulary (special tokens included)."""
    embedding_size: int | None = Field(None, ge=300, le=262144)
    """Rows of the embedding and LM head (default: the tokenizer's size). Set a real model's vocabulary,
    e.g. 151936 (Qwen2.5), 128256 (Llama-3.2), 200064 (Phi-4-mini), to run any recipe at that vocabulary
    on CPU: Qwen2.5 pads its 151,665 tokens to 151,936 the same way. Must be at least vocab_size (the
    tokenizer's exact size is checked when the model is built). The tokenizer's rows and every weight but the last layer's
    v_proj bias are the default model's. The padded rows (ids the tokenizer never produces) are never sampled, like a real
    model's trained padded rows: the last layer's v_proj bias adds a constant direction c to the residual
    and each padded LM-head row is -16 c/|c|, so their logits sit 50 or more below the best real token's
    (total probability < 1e-19 at initialisation; the real tokens' distribution moves by KL < 0.015
    nats). Zero or random padded rows would not do: ~151k logits near 0 take 99.7 % of the probability,
    an untrained model samples almost only padded ids (vLLM and HF decode them as empty text), and 60
    Adam steps of next-token training only bring that to 79 %."""
    seed: int = 0

    @model_validator(mode="after")
    def _heads(self) -> TinyModelSpec:
        problems = []
        if self.hidden_size % self.num_heads:
            problems.append(f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}")
        elif self.hidden_size // self.num_heads < 32:
            problems.append(
                f"head size {self.hidden_size // self.num_heads} < 32: vLLM's CPU attention needs head size "
                f">= 32 (use fewer heads or a larger hidden_size)"
            )
        if self.num_heads % self.num_kv_heads:
            problems.append(f"num_heads {self.num_heads} must be divisible by num_kv_heads {self.num_kv_heads}")
        if self.embedding_size is not None and self.embedding_size < self.vocab_size:
            # vocab_size bounds the tokenizer's size from above; the exact size is checked at build time
            problems.append(f"embedding_size {self.embedding_size} < vocab_size {self.vocab_size}: the embedding "
                            f"needs a row per token (use at least {self.vocab_size}, or leave it unset)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ModelConfig(Strict):
    """The starting model: a hub id or local path (`name`), or a locally built `tiny` model."""

    name: str | None = None
    """Hugging Face hub id (e.g. Qwen/Qwen2.5-Math-1.5B) or a local directory."""
    tiny: TinyModelSpec | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    """Training precision. bfloat16 trains with fp32 master weights in the optimizer."""
    revision: str | None = None
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if (self.name is None) == (self.tiny is None):
            raise ValueError("give exactly one of `name` (hub id or local path) or `tiny` (a local tiny model)")
        return self


class TrackingConfig(Strict):
    project: str = "rlvr"
    entity: str | None = None
    mode: Literal["online", "offline", "disabled"] = "disabled"
    """wandb mode; metrics.jsonl and the console are always written."""
    log_every: int = Field(1, ge=1)


class BackendConfig(Strict):
    """DeepSpeed settings shared by all stages (a stage may override micro_batch_size/grad_accum)."""

    zero_stage: Literal[0, 1, 2, 3] = 2
    gradient_checkpointing: bool = False
    micro_batch_size: int = Field(4, ge=1)
    """Sequences per rank per forward/backward."""
    grad_accum: int = Field(1, ge=1)
    """Micro-batches per optimizer step. Global batch = micro_batch_size * grad_accum * world size."""
    offload_optimizer: bool = False
    """ZeRO-Offload of optimizer state to CPU (GPU only; DeepSpeed's CPU Adam is JIT-built on first use)."""
    logits_chunk_tokens: int | None = Field(None, ge=0)
    """Positions per LM-head chunk when a stage scores tokens (log-probs, entropy, NLL): the head runs on
    this many positions at a time, in forward and again in backward, so at most one chunk of
    full-vocabulary logits exists (docs/memory.md). Unset: as many as fit in `logits_chunk_mib` of fp32
    logits (441 positions at Qwen2.5's 151,936-row vocabulary, 335 at Phi-4-mini's 200,064; a whole
    micro-batch at a tiny vocabulary). 0: the whole [B, T, V] logits at once (the path before chunking,
    several times the memory)."""
    logits_chunk_mib: float = Field(256.0, gt=0)
    """With logits_chunk_tokens unset: the fp32 size of one chunk of logits, [positions, V] x 4 bytes. The
    scorer holds about two such buffers at once (bench/README.md, Memory)."""

    def logits_chunk(self, vocab: int) -> int:
        """Positions per LM-head chunk for a head of `vocab` rows (0: unchunked)."""
        if self.logits_chunk_tokens is not None:
            return self.logits_chunk_tokens
        return max(1, int(self.logits_chunk_mib * 2**20) // (4 * vocab))
    grad_accum_dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Dtype the gradients of a step's micro-batches are summed in (DeepSpeed `data_types.grad_accum_dtype`).
    auto: fp32 at ZeRO 1-3 (a bf16 sum of 16 micro-batches loses ~3x one bf16 rounding; verl and OpenRLHF
    sum in fp32), the model dtype at ZeRO-0, where DeepSpeed 0.19.8 sums in the model dtype only. fp32 with
    a 16-bit model needs zero_stage >= 1; bf16/fp16 must equal the model dtype."""
    communication_data_type: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Dtype of the gradient all-reduce / reduce-scatter between ranks (DeepSpeed `communication_data_type`).
    auto: DeepSpeed's default, the model dtype. fp32 doubles the gradient traffic of a bf16 model and
    removes its rounding from the sum over ranks."""


# --------------------------------------------------------------------------------------------------
# pieces shared by stages


class OptimConfig(Strict):
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    grad_clip: float = Field(1.0, ge=0)
    """Max global grad norm; 0 disables clipping."""
    schedule: Literal["constant", "cosine", "linear"] = "cosine"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    """Fraction of the stage's steps spent in linear warm-up."""
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    """For cosine/linear decay: the final lr as a fraction of lr."""


class _StageCommon(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    init: str = "previous"
    """Input model: `previous` (the previous stage's output, or the recipe model for the first
    stage), `base` (the recipe model), another stage's name, or a model path / hub id."""
    max_steps: int | None = Field(None, ge=1)
    """Optimizer steps; when unset, derived from `epochs`."""
    epochs: float = Field(1.0, gt=0)
    micro_batch_size: int | None = Field(None, ge=1)
    """Overrides backend.micro_batch_size for this stage."""
    grad_accum: int | None = Field(None, ge=1)
    """Overrides backend.grad_accum for this stage."""
    global_batch_size: int | None = Field(None, ge=1)
    """Rows per optimizer step over all ranks (sequences; DPO: pairs). Set, the accumulation is derived as
    global_batch_size / (ranks x micro_batch_size) and a run whose ranks cannot split it exactly stops with a
    message, so the paper's batch holds on any number of nodes. Unset: micro_batch_size x grad_accum x ranks.
    (An rlvr stage's batch is `prompts_per_step`, already over all ranks.)"""
    save_every: int = Field(0, ge=0)
    """Write a resumable checkpoint every N steps (0: only at the end of the stage)."""
    keep_checkpoints: int = Field(2, ge=1)
    """How many step checkpoints to keep (oldest are deleted)."""
    export_every: int = Field(0, ge=0)
    """Also write a Hugging Face export every N steps to stages/<name>/exports/step-<N>/ (0: off), all
    kept, for "score vs step" sweeps (`rlvr eval` finds them in the run directory). final/ is the last."""
    optim: OptimConfig = Field(default_factory=OptimConfig)
    lora: LoraConfig | None = None
    """Train a LoRA adapter instead of every weight (rlvr.models.config.LoraConfig; `lora: {}` takes the
    defaults). final/ then holds the merged model and final/adapter/ the adapter; the DPO and KL reference
    is the input model itself, with the adapter switched off (README, LoRA)."""

    @model_validator(mode="after")
    def _one_batch_rule(self) -> _StageCommon:
        if self.global_batch_size is not None and self.grad_accum is not None:
            raise ValueError("give global_batch_size (the accumulation is derived from it) or grad_accum, not both")
        return self


class MidtrainStage(_StageCommon):
    """Causal-LM mid-training on long chain-of-thought text, packed to fixed-length sequences."""

    type: Literal["midtrain"]
    data: DataConfig
    seq_len: int = Field(2048, ge=16)
    packing: bool = True
    """Pack documents into seq_len rows (attention stays within each document)."""
    max_tokens_per_micro_batch: int | None = Field(None, ge=1)
    """Per rank: micro-batches of at most this many token positions instead of micro_batch_size rows
    (packed rows are seq_len long, so this gives budget // seq_len rows; unpacked documents are
    length-sorted and packed up to it, verl's dynamic batch size). Must hold one seq_len row."""

    @model_validator(mode="after")
    def _budget(self) -> MidtrainStage:
        if self.max_tokens_per_micro_batch is not None and self.max_tokens_per_micro_batch < self.seq_len:
            raise ValueError(f"max_tokens_per_micro_batch {self.max_tokens_per_micro_batch} < seq_len {self.seq_len}: "
                             "a micro-batch must hold one row (raise it or lower seq_len)")
        return self


class SftStage(_StageCommon):
    """Supervised fine-tuning on chat-formatted prompt -> response, loss on response tokens only."""

    type: Literal["sft"]
    data: DataConfig
    max_len: int = Field(2048, ge=16)
    """Examples longer than this are dropped (counted and reported), never silently cut."""
    packing: bool = False
    """Off by default, as in Phi-4-Mini-Reasoning's SFT, so the model learns where to stop."""
    system_prompt: str | None = None
    max_tokens_per_micro_batch: int | None = Field(None, ge=1)
    """Per rank: instead of micro_batch_size sequences, cut each rank's share of the step into micro-batches
    of length-sorted sequences (packed rows when packing) holding at most this many token positions (padding included; verl's dynamic
    batch size). The number of micro-batches then varies by step (every rank runs the largest); the loss
    stays normalised by the whole step, so the update is the same. Must hold one example of max_len tokens."""

    @model_validator(mode="after")
    def _budget(self) -> SftStage:
        if self.max_tokens_per_micro_batch is not None and self.max_tokens_per_micro_batch < self.max_len:
            raise ValueError(f"max_tokens_per_micro_batch {self.max_tokens_per_micro_batch} < max_len {self.max_len}: "
                             "a micro-batch must hold the longest example (raise it or lower max_len)")
        return self


class TemperatureSchedule(Strict):
    """Linear anneal from `start` to `end` over the first `anneal_fraction` of the stage's steps, then
    constant (Phi-4-Mini-Reasoning: 1.0 -> 0.6 over the first half)."""

    start: float = Field(1.0, gt=0)
    end: float = Field(0.6, gt=0)
    anneal_fraction: float = Field(0.5, gt=0, le=1)


class KLConfig(Strict):
    coef: float = Field(0.0, ge=0)
    """0 disables the KL term and no reference model is loaded."""
    kind: Literal["k1", "k2", "k3"] = "k3"
    """Estimator (docs/algorithms.md); k3 = verl's low_var_kl."""
    placement: Literal["loss", "reward"] = "loss"
    """loss: + coef * aggregate(KL) in the loss (1-shot RLVR). reward: r - coef * sum_t KL_t before
    advantages (classic RLHF)."""


class OverlongConfig(Strict):
    """DAPO's overlong handling of responses that hit max_response_tokens."""

    filter: bool = False
    """Truncated responses carry no loss (their group statistics still count them)."""
    buffer: int = Field(0, ge=0)
    """Soft penalty: responses longer than max_response_tokens - buffer lose up to `penalty`, linearly."""
    penalty: float = Field(1.0, ge=0)


class DynamicSamplingConfig(Strict):
    """DAPO dynamic sampling: drop groups whose rewards are all equal (no gradient) and refill with
    fresh prompts, up to `max_rounds` generation rounds per step."""

    enabled: bool = False
    max_rounds: int = Field(3, ge=1)


class RewardConfig(Strict):
    kind: Literal["correctness", "format", "random", "incorrect_label"] = "correctness"
    """rlvr.rl.rewards.REWARDS. correctness: the verifier's verdict. The 1-shot RLVR controls: format
    (`correct` whenever an answer can be extracted and the response was not cut off, right or wrong),
    random (a seeded Bernoulli(random_p) draw, whatever the response), incorrect_label (the verdict
    against `label` instead of the data's answer)."""
    random_p: float = Field(0.5, ge=0, le=1)
    """kind random: the probability of the `correct` reward."""
    label: str | None = None
    """kind incorrect_label: the gold every rollout is judged against (1-shot RLVR Table 5: 12.7, 4,
    9292725 for pi_1's 12.8)."""
    correct: float = 1.0
    incorrect: float = 0.0
    """Phi-4-Mini-Reasoning uses +1 / -1."""
    policy: Literal[tuple(POLICIES)] | None = None  # type: ignore[valid-type]
    """The verifier policy that judges the reward (docs/verifier.md; 1-shot RLVR: one_shot_reward); None =
    the recipe `verifier`'s, which still judges validation and eval stages. When the two differ, each step
    also logs reward/audit_disagree (rlvr.verify.graders.RewardAudit)."""
    grade_after: str | None = Field(None, min_length=1)
    """Grade only the text after this delimiter (up to a second one); without it the rollout gets no
    answer, so `incorrect`. "</think>": 1-shot RLVR's reward for R1-Distill (rlvr.verify.segments)."""

    @model_validator(mode="after")
    def _label(self) -> RewardConfig:
        if (self.kind == "incorrect_label") != (self.label is not None):
            raise ValueError("reward.label is the gold of kind incorrect_label: give both or neither")
        return self


class PromptFilterConfig(Strict):
    """Phi-4-Mini-Reasoning's prompt filters, applied to each step's groups (filtered groups carry
    no loss)."""

    max_accuracy: float | None = Field(None, ge=0, le=1)
    """Drop groups whose accuracy is above this (Phi-4: 0.5)."""
    max_length_cv: float | None = Field(None, gt=0)
    """Drop groups whose response lengths vary more than this (std / mean): keep uniform-length prompts."""


class CriticConfig(Strict):
    """PPO's value model (`advantage: gae`): its weights, optimizer and GAE/value-loss settings. Defaults are
    verl's (ppo_trainer.yaml: critic.optim, algorithm.gamma/lam, critic.cliprange_value, trainer.critic_warmup)."""

    init: str | None = None
    """null: the policy's input weights (the stage's `init`) with a fresh scalar head (nn.Linear(hidden, 1),
    normal(0, initializer_range), bias 0, as verl's AutoModelForTokenClassification head); or a path to a
    causal LM (fresh head) or to a critic export (stages/<name>/critic/, head kept)."""
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=1e-5, schedule="constant", weight_decay=0.01))
    """The critic's own optimizer; verl's critic.optim defaults: lr 1e-5, constant, weight_decay 0.01."""
    gamma: float = Field(1.0, ge=0, le=1)
    """GAE discount (verl algorithm.gamma 1.0)."""
    lam: float = Field(1.0, ge=0, le=1)
    """GAE lambda (verl algorithm.lam 1.0)."""
    value_clip: float = Field(0.5, gt=0)
    """Value clipping around the rollout-time values (verl critic.cliprange_value 0.5)."""
    warmup_steps: int = Field(0, ge=0)
    """The policy is not updated during the first N steps; the critic is (verl trainer.critic_warmup 0)."""
    loss_agg: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = "token-mean"
    """Aggregation of the value loss (verl critic.loss_agg_mode: the actor's, token-mean by default)."""


class RlvrStage(_StageCommon):
    """RL with verifiable reward: GRPO-family policy gradient on verifier-judged rollouts."""

    type: Literal["rlvr"]
    data: DataConfig
    system_prompt: str | None = None
    prompt_suffix: str = ""
    """Appended to each problem (1-shot RLVR: " Let's think step by step and output the final answer within \\boxed{}.")."""
    prompts_per_step: int = Field(128, ge=1)
    """Prompts (groups) per rollout step, over all ranks. One example repeated fills it (1-shot RLVR)."""
    rollouts_per_prompt: int = Field(8, ge=1)
    temperature: float | TemperatureSchedule = 1.0
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = -1
    max_prompt_tokens: int = Field(1024, ge=1)
    """Longer prompts are dropped from the dataset (counted), never cut."""
    max_response_tokens: int = Field(3072, ge=1)
    mini_batch_prompts: int | None = Field(None, ge=1)
    """Prompts per optimizer update; unset = all of the step's prompts, i.e. one update per rollout
    step (1-shot RLVR's released code). prompts_per_step / mini_batch_prompts updates otherwise."""
    ppo_epochs: int = Field(1, ge=1)
    objective: Literal["grpo", "gspo", "cispo"] = "grpo"
    """The per-micro-batch loss, from rlvr.rl.objectives.OBJECTIVES: `grpo` = PPO clip (+ truncated IS)
    + KL in the loss - entropy bonus, the GRPO family's; `gspo` = the same with one clipped ratio per
    response (gspo_clip_low/high); `cispo` = REINFORCE weighted by the IS ratio capped at
    1 + cispo_clip_high, no gradient through it (docs/algorithms.md)."""
    gspo_clip_low: float = Field(3e-4, ge=0, lt=1)
    gspo_clip_high: float = Field(4e-4, ge=0)
    """GSPO's sequence-ratio clip range [1 - low, 1 + high] (objective: gspo; clip_low/high are grpo's).
    Defaults: the GSPO paper's 3e-4 / 4e-4 (sec. 5.1), ~1e3 times smaller than PPO's, since the ratio is a
    per-token geometric mean."""
    cispo_clip_high: float = Field(0.2, gt=0)
    """CISPO's cap on the IS weight, 1 + this (objective: cispo; no lower bound, as MiniMax-M1). Default:
    verl's CISPO example (the paper gives no value)."""
    max_tokens_per_micro_batch: int | None = Field(None, ge=1)
    """Per rank: instead of micro_batch_size sequences, cut each rank's share of the step into micro-batches
    of length-sorted rollouts holding at most this many token positions (padding included; verl's dynamic
    batch size). The number of micro-batches then varies by step (every rank runs the largest); the loss
    stays normalised by the whole step, so the update is the same. Must hold one rollout of max_prompt_tokens + max_response_tokens."""
    prompt_sharing: bool = True
    """Trainer forwards run each distinct prompt of a micro-batch once; its rollouts attend to its
    cached keys/values (the same log-probs and gradients, less compute: the n rollouts of a group
    share one prompt forward). Applied to micro-batches with at most half as many distinct prompts as
    rows; not under gradient checkpointing (transformers drops the cache), ZeRO-3, or for models with
    sliding-window attention layers."""
    clip_low: float = Field(0.2, ge=0, lt=1)
    clip_high: float = Field(0.2, ge=0)
    """> clip_low gives DAPO's clip-higher (e.g. 0.28)."""
    loss_agg: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = "token-mean"
    advantage: Literal["grpo", "dr_grpo", "rloo", "reinforce_pp_baseline", "gae"] = "grpo"
    """An outcome estimator of rlvr.rl.advantages.ESTIMATORS, or `gae`: PPO with a value model (the `critic`
    section), per-token advantages and returns from GAE (docs/algorithms.md, PPO)."""
    critic: CriticConfig | None = None
    """The value model; required by, and only allowed with, `advantage: gae`."""
    kl: KLConfig = Field(default_factory=KLConfig)
    entropy_coef: float = 0.0
    """> 0 raises entropy: loss -= entropy_coef * aggregate(H) on temperature-scaled logits
    (1-shot RLVR: 0.001, which its paper writes as alpha = -0.001)."""
    pg_coef: float = Field(1.0, ge=0)
    """The policy-gradient term's weight in the loss: pg_coef * policy term + KL - entropy. 0 trains on
    the entropy (and KL) terms alone (1-shot RLVR Table 5 rows 8-10 and Table 13's entropy-only run)."""
    tis_cap: float | None = Field(None, gt=0)
    """Truncated importance sampling between trainer and engine log-probs, capped at this value."""
    dynamic_sampling: DynamicSamplingConfig = Field(default_factory=DynamicSamplingConfig)
    overlong: OverlongConfig = Field(default_factory=OverlongConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    rebalance: bool = False
    """Phi-4 reward rebalancing: per group keep every positive and an equal number of random negatives."""
    prompt_filter: PromptFilterConfig = Field(default_factory=PromptFilterConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    validation: RlvrValidation | None = None
    """Score the policy during training with the stage's own engine (docs/evaluation.md, Validation
    during RL), e.g. {every: 20, protocol: one_shot_rlvr, benchmarks: {math500: {}}}. None: off."""

    @model_validator(mode="after")
    def _sizes(self) -> RlvrStage:
        problems = []
        if self.grad_accum is not None:
            problems.append("grad_accum is derived for rlvr stages (mini_batch_prompts * rollouts_per_prompt / "
                            "(micro_batch_size * ranks)); remove it")
        if self.global_batch_size is not None:
            problems.append("global_batch_size: an rlvr stage's batch is prompts_per_step (prompts over all ranks); "
                            "set that instead")
        if self.mini_batch_prompts is not None and self.prompts_per_step % self.mini_batch_prompts:
            problems.append(f"prompts_per_step {self.prompts_per_step} must be a multiple of mini_batch_prompts "
                            f"{self.mini_batch_prompts}")
        if self.clip_high < self.clip_low:
            problems.append(f"clip_high {self.clip_high} < clip_low {self.clip_low}; clip-higher means clip_high >= clip_low")
        longest = self.max_prompt_tokens + self.max_response_tokens
        if self.max_tokens_per_micro_batch is not None and self.max_tokens_per_micro_batch < longest:
            problems.append(f"max_tokens_per_micro_batch {self.max_tokens_per_micro_batch} < max_prompt_tokens + "
                            f"max_response_tokens = {longest}: a micro-batch must hold the longest rollout")
        if self.validation is not None and self.validation.max_tokens() >= self.generation.max_model_len:
            problems.append(f"validation: max_tokens {self.validation.max_tokens()} leaves no room for the prompt in "
                            f"generation.max_model_len {self.generation.max_model_len} (validation uses the stage's "
                            "engine); lower validation.settings.max_tokens or raise generation.max_model_len")
        if self.advantage == "gae" and self.critic is None:
            problems.append("advantage: gae needs a value model: add a `critic:` section (e.g. critic: {})")
        if self.critic is not None and self.advantage != "gae":
            problems.append(f"critic: is used only by advantage: gae (advantage is {self.advantage}); remove the "
                            "critic section or set advantage: gae")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PairsConfig(Strict):
    """How rollout-DPO preference pairs are built: chosen = a verifier-correct response, rejected = an
    incorrect response to the same prompt."""

    source: Literal["policy", "file"] = "policy"
    """policy: sample from the stage's input model (the stage's `data` gives prompts and golds).
    file: teacher rollouts from `path` (Phi-4-Mini-Reasoning's setting: the teacher's correct vs
    incorrect samples)."""
    path: str | None = None
    """file source: JSONL/JSON/parquet rows with `prompt`, `completion`, and `gold` and/or a boolean
    `correct` (judged by the verifier when absent)."""
    fields: dict[str, str] = Field(default_factory=dict)
    """file source: rename columns, e.g. {prompt: question, completion: response, gold: answer}."""
    rollouts_per_prompt: int = Field(8, ge=2)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_response_tokens: int = Field(1024, ge=1)
    chosen: Literal["correct_rollout", "reference"] = "correct_rollout"
    """policy source: the chosen side is a rollout the verifier judges correct (correct_rollout), or
    the data row's reference solution (`response`; e.g. the toy task's worked solution), paired with
    the policy's incorrect rollouts of that prompt (self-play style: gold vs the model's own mistakes)."""
    pairs_per_prompt: int = Field(1, ge=1)
    """Distinct (chosen, rejected) pairs per prompt, at most #correct x #incorrect."""
    allow_truncated_rejected: bool = True
    """May a truncated (unfinished) response be the rejected one? Never the chosen one."""
    max_len: int = Field(2048, ge=16)
    """Pairs whose prompt + longer response exceed this many tokens are dropped (counted)."""


class DpoStage(_StageCommon):
    """Rollout DPO: build verifier-judged preference pairs, then train with a DPO loss."""

    type: Literal["dpo"]
    data: DataConfig | None = None
    """Prompts (`prompt`) and golds (`answer`) for pairs.source = policy."""
    pairs: PairsConfig = Field(default_factory=PairsConfig)
    pairs_from: str | None = None
    """Reuse pairs and skip generation and judging: the name of an earlier `distill` (or `dpo`) stage of this
    recipe (its stages/<name>/pairs.jsonl), or a pairs.jsonl file (a value with a '/' or a .jsonl/.json
    suffix), e.g. one written by an earlier run."""
    system_prompt: str | None = None
    prompt_suffix: str = ""
    beta: float = Field(0.1, gt=0)
    loss: Literal["sigmoid", "cdpo", "ipo"] = "sigmoid"
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    """cdpo's epsilon (probability that a preference label is flipped)."""
    span: Literal["response", "divergent_step"] = "response"
    """Which response tokens the DPO log-probs (and the nll_coef term) sum over. response: all of
    them (standard DPO). divergent_step: only the line where chosen and rejected first differ, on each
    side (Step-DPO's preference on the first wrong step, Lai et al. 2024): the shared prefix cancels
    anyway, and the rejected response's later steps are not pushed down."""
    max_tokens_per_micro_batch: int | None = Field(None, ge=1)
    """Per rank: instead of micro_batch_size sequences, cut each rank's share of the step into micro-batches
    of length-sorted pairs (2 sequences each) holding at most this many token positions (padding included; verl's dynamic
    batch size). The number of micro-batches then varies by step (every rank runs the largest); the loss
    stays normalised by the whole step, so the update is the same. Must hold one pair: 2 x pairs.max_len."""
    nll_coef: float = Field(0.0, ge=0)
    """Add nll_coef x the chosen response's per-token NLL (Iterative RPO, Pang et al. 2024) against
    DPO's likelihood displacement (chosen and rejected log-probs both falling). On the tiny toy model,
    greedy held-out accuracy went 0.45 -> 0.125 after plain DPO and 0.45 -> 0.40 with nll_coef 1."""
    generation: GenerationConfig = Field(default_factory=GenerationConfig)

    @model_validator(mode="after")
    def _source(self) -> DpoStage:
        if self.pairs_from is None:
            if self.pairs.source == "policy" and self.data is None:
                raise ValueError("pairs.source 'policy' needs `data` (prompts with answers), or give pairs_from")
            if self.pairs.source == "file" and self.pairs.path is None:
                raise ValueError("pairs.source 'file' needs pairs.path (teacher rollouts), or give pairs_from")
            if self.pairs.source == "file" and self.pairs.chosen == "reference":
                raise ValueError("pairs.chosen 'reference' needs pairs.source 'policy' (the data's reference solutions)")
        if self.max_tokens_per_micro_batch is not None and self.max_tokens_per_micro_batch < 2 * self.pairs.max_len:
            raise ValueError(f"max_tokens_per_micro_batch {self.max_tokens_per_micro_batch} < 2 x pairs.max_len = "
                             f"{2 * self.pairs.max_len}: a micro-batch must hold the longest pair (chosen and rejected)")
        return self


class DistillSelection(Strict):
    """Phi-4-Mini-Reasoning's selection of teacher data, applied to sft.jsonl and pairs.jsonl (rollouts.jsonl
    keeps every sample). Each filter judges a prompt on all of its k samples; the counts of prompts each
    one dropped go to the stage's summary metrics."""

    drop_never_solved: bool = True
    """Drop prompts none of whose samples the verifier judges correct (no correct response to imitate or
    to prefer; counted so that a too-hard prompt set shows)."""
    drop_always_solved: bool = False
    """Drop prompts all of whose samples are correct: the student learns little from what the teacher
    never gets wrong (Phi-4 keeps the prompts that discriminate)."""
    max_length_cv: float | None = Field(None, gt=0)
    """Drop prompts whose k response lengths (tokens) vary more than this (std / mean): the length-uniformity
    filter, computed as the rlvr stage's prompt_filter.max_length_cv."""


class DistillStage(Strict):
    """Teacher rollouts judged by the verifier: k samples per prompt from `teacher`, written as
    stages/<name>/rollouts.jsonl (every sample, verdict and reason), sft.jsonl (the correct responses) and
    pairs.jsonl (correct vs incorrect, the dpo stage's format). Later stages read them by name
    (`data: {from_stage: NAME, part: sft}`, `pairs_from: NAME`). It produces no model."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    type: Literal["distill"]
    teacher: str = "previous"
    """The teacher: an earlier training stage's name (its final/), `previous` (the latest training stage's
    output, or the recipe model), `base` (the recipe model), a local Hugging Face checkpoint directory or a
    hub id. Rollouts are fingerprinted by the teacher's files (their bytes; a hub id by the snapshot in the
    local cache, else by the id), so another teacher never reuses them."""
    data: DataConfig
    """Prompts (`prompt`) and golds (`answer`)."""
    samples_per_prompt: int = Field(8, ge=1)
    """k: samples drawn per prompt (pairs need k >= 2)."""
    temperature: float = Field(0.8, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_response_tokens: int = Field(1024, ge=1)
    """A sample that reaches it is truncated: never kept for SFT nor chosen in a pair."""
    system_prompt: str | None = None
    prompt_suffix: str = ""
    """Appended to each problem; the written `prompt`/`problem` fields include it, so the student is trained
    on the prompt the teacher saw."""
    chunk_size: int = Field(64, ge=1)
    """Prompts per generation chunk: each finished chunk is appended (fsync'ed) to the stage's cache, so a
    killed stage resumes at the first unfinished chunk."""
    keep: Literal["all", "shortest", "one_per_prompt"] = "all"
    """sft.jsonl: every correct response, the shortest correct one per prompt, or one random correct one."""
    pairs_per_prompt: int = Field(1, ge=1)
    """pairs.jsonl: distinct (correct, incorrect) pairs per prompt, at most #correct x #incorrect."""
    allow_truncated_rejected: bool = True
    """May a truncated (unfinished) response be the rejected side of a pair? Never the chosen one."""
    selection: DistillSelection = Field(default_factory=DistillSelection)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)

    @property
    def init(self) -> str:
        """The model the runner loads for this stage: the teacher."""
        return self.teacher


class EvalStage(EvalOptions):
    """Evaluate the stage's input model with a protocol (the same sweep as `rlvr eval`), writing
    stages/<name>/eval/ (cache, scores.json). It produces no model: a later stage's `init: previous`
    is the previous training stage's output. The recipe's `verifier` judges."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    type: Literal["eval"]
    init: str = "previous"
    """The model to evaluate: previous (the latest training stage's output, or the recipe model),
    base, a stage name, or a path / hub id."""


AnyStage = MidtrainStage | SftStage | RlvrStage | DpoStage | EvalStage | DistillStage
Stage = Annotated[AnyStage, Field(discriminator="type")]
STAGE_TYPES = ("midtrain", "sft", "dpo", "rlvr", "eval", "distill")
TRAINING_STAGE_TYPES = ("midtrain", "sft", "dpo", "rlvr")


def _model_stage(stages: list[AnyStage], i: int) -> int | None:
    """Index of the stage whose final/ stage i loads (the runner's rule: an eval stage hands on its own
    input model, a distill stage the model before it), or None for the recipe model or a path / hub id."""
    names = [s.name for s in stages]
    init = stages[i].init
    if init == "base" or (init == "previous" and i == 0):
        return None
    j = i - 1 if init == "previous" else names.index(init) if init in names else None
    if j is None or j >= i:
        return None
    if stages[j].type == "distill":
        return _handed_on(stages, j - 1) if j > 0 else None
    return _model_stage(stages, j) if stages[j].type == "eval" else j


def _handed_on(stages: list[AnyStage], j: int) -> int | None:
    """The stage whose final/ stage j hands on (None: the recipe model or a path)."""
    if stages[j].type == "distill":
        return _handed_on(stages, j - 1) if j > 0 else None
    return _model_stage(stages, j) if stages[j].type == "eval" else j


def _earlier_stage(stages: list[AnyStage], i: int, name: str, kinds: tuple[str, ...], key: str) -> str | None:
    """The problem with stage i reading the output of stage `name`, which must be an earlier stage of one of
    `kinds`; None when it is."""
    names = [s.name for s in stages]
    if name not in names:
        return f"stages[{i}].{key}: no stage named '{name}' (stages: {', '.join(names)})"
    j = names.index(name)
    if stages[j].type not in kinds:
        return f"stages[{i}].{key}: stage '{name}' is of type {stages[j].type}; it must name a {' or '.join(kinds)} stage"
    if j >= i:
        return f"stages[{i}].{key}: stage '{name}' runs later; a stage can read only an earlier stage's output"
    return None


def distill_references(stages: list[AnyStage]) -> list[str]:
    """Problems with the references to distill stages: `data.from_stage` and `pairs_from` must name an earlier
    distill stage (pairs_from: or dpo stage; a value with a '/' or a .jsonl/.json suffix is a file), and no
    stage may name a distill stage as its model: it makes data, not a model (`init: previous` right after
    one loads the model before it, as after an eval stage)."""
    problems = []
    for i, s in enumerate(stages):
        data = None if isinstance(s, EvalStage) else s.data
        if data is not None and data.from_stage is not None:
            if s.type == "rlvr":
                problems.append(f"stages[{i}].data.from_stage: rlvr stages read prompts from toy, rows, path, hub or "
                                "spec only; give the distill stage's file as data.path")
            else:
                problems.append(_earlier_stage(stages, i, data.from_stage, ("distill",), "data.from_stage"))
        pairs_from = s.pairs_from if isinstance(s, DpoStage) else None
        if pairs_from is not None and "/" not in pairs_from and not pairs_from.endswith((".jsonl", ".json")):
            problems.append(_earlier_stage(stages, i, pairs_from, ("distill", "dpo"), "pairs_from"))
        named = next((t for t in stages[:i] if t.name == s.init), None)
        if named is not None and named.type == "distill":
            key = "teacher" if s.type == "distill" else "init"
            problems.append(f"stages[{i}].{key}: '{s.init}' is a distill stage, which makes data, not a model; name "
                            f"the model to load ({key}: previous, base, a training stage's name, or a path)")
    return [p for p in problems if p]


class Recipe(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    run_dir: str = "runs/{name}-{time}"
    """Run directory; `{name}` and `{time}` (YYYYmmdd-HHMMSS) are filled in. --run-dir overrides it."""
    model: ModelConfig
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    backend: BackendConfig = Field(default_factory=BackendConfig)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)
    """The one math verifier behind every reward, DPO pair and evaluation of this recipe (docs/verifier.md)."""
    stages: list[Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _stage_names(self) -> Recipe:
        seen: dict[str, int] = {}
        problems = []
        for i, stage in enumerate(self.stages):
            if stage.name in seen:
                problems.append(f"stages[{i}].name: duplicate stage name '{stage.name}' (also stages[{seen[stage.name]}])")
            seen.setdefault(stage.name, i)
            later = {s.name: j for j, s in reversed(list(enumerate(self.stages)))}  # a name's first stage
            if stage.init not in ("previous", "base") and stage.init in later and later[stage.init] >= i:
                key = "teacher" if stage.type == "distill" else "init"
                problems.append(f"stages[{i}].{key}: stage '{stage.init}' runs later; a stage can start only from an earlier one")
        names = [s.name for s in self.stages]
        for i, stage in enumerate(self.stages):
            if stage.init not in ("previous", "base", *names) and "/" not in stage.init and not Path(stage.init).exists():
                key = "teacher" if stage.type == "distill" else "init"
                problems.append(f"stages[{i}].{key}: '{stage.init}' is not a stage of this recipe ({', '.join(names)}), "
                                "previous, base, nor an existing path; for a hub model give its full id (org/name)")
        problems += distill_references(self.stages)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def stage(self, name: str) -> AnyStage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)


# --------------------------------------------------------------------------------------------------
# loading, overrides, error formatting

def load_recipe_data(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe's YAML mapping, with `extends: OTHER.yaml` (a path relative to this file) resolved:
    OTHER's mapping updated by this one's, sections merged key by key and `stages` by name (a stage
    named in both is merged; a new name is appended). So an ablation is the keys it changes."""
    path = Path(path)
    data = read_yaml_mapping(path, "a recipe must be a YAML mapping with name, model and stages")
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError([f"extends: expected the path of a recipe, got {base!r}"], path)
    parent = (path.parent / base).resolve()
    if parent in _seen or parent == path.resolve():
        raise ConfigError([f"extends: {base} extends this recipe again (a cycle)"], path)
    return _merge_recipes(load_recipe_data(parent, (*_seen, path.resolve())), data)


def _merge_recipes(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if key == "stages" and isinstance(value, list) and isinstance(base.get("stages"), list):
            stages = [dict(s) if isinstance(s, dict) else s for s in base["stages"]]
            names = [s.get("name") if isinstance(s, dict) else None for s in stages]
            for s in value:
                name = s.get("name") if isinstance(s, dict) else None
                if name is not None and name in names:
                    i = names.index(name)
                    stages[i] = _merge_recipes(stages[i], s)
                else:
                    stages.append(s)
            out["stages"] = stages
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merge_recipes(base[key], value)
        else:
            out[key] = value
    return out


def _raw_duplicate_names(data: dict[str, Any]) -> list[str]:
    """Duplicate stage names, found on the raw data so they are reported with every other problem
    (pydantic skips the model validator when a field fails)."""
    seen: dict[str, int] = {}
    problems = []
    for i, stage in enumerate(data.get("stages") or []):
        name = stage.get("name") if isinstance(stage, dict) else None
        if isinstance(name, str):
            if name in seen:
                problems.append(f"stages[{i}].name: duplicate stage name '{name}' (also stages[{seen[name]}])")
            seen.setdefault(name, i)
    return problems


def validate_recipe(data: dict[str, Any], source: str | Path = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        problems = format_validation_error(exc, data, kind_name="stage type", kinds=STAGE_TYPES)
        problems += [p for p in _raw_duplicate_names(data) if p not in problems]
        raise ConfigError(problems, source) from None


def looks_local(ref: str) -> bool:
    """A model or data reference that can only be a local path (a hub id is `org/name`)."""
    return ref.startswith(("/", ".", "~")) or ref.count("/") > 1


def missing_inputs(recipe: Recipe) -> list[str]:
    """The local files and directories the recipe reads that do not exist, as `key: problem` lines
    (`rlvr validate` and `rlvr run` report them before anything runs; paths are relative to the
    current directory, as at run time)."""
    problems = []
    if recipe.model.name is not None and looks_local(recipe.model.name) and not Path(recipe.model.name).expanduser().exists():
        problems.append(f"model.name: local model not found: {recipe.model.name} (a hub id is org/name)")
    names = {s.name for s in recipe.stages}
    for i, stage in enumerate(recipe.stages):
        if stage.init not in ("previous", "base", *names) and looks_local(stage.init) \
                and not Path(stage.init).expanduser().exists():
            problems.append(f"stages[{i}].init: model path not found: {stage.init}")
        files = []
        data = stage.data if isinstance(stage, MidtrainStage | SftStage | RlvrStage | DpoStage) else None
        if data is not None and data.path is not None:
            files.append(("data.path", data.path))
        if isinstance(stage, DpoStage) and stage.pairs_from is not None:
            if "/" in stage.pairs_from or stage.pairs_from.endswith((".jsonl", ".json")):  # else a stage's name
                files.append(("pairs_from", stage.pairs_from))
        elif isinstance(stage, DpoStage) and stage.pairs.source == "file" and stage.pairs.path is not None:
            files.append(("pairs.path", stage.pairs.path))
        for key, path in files:
            if not Path(path).expanduser().is_file():
                problems.append(f"stages[{i}].{key}: file not found: {path} (relative to {Path.cwd()})")
    return problems


def find_data_spec(spec: str, base: Path | None = None) -> Path | None:
    """A dataset spec by path, or by name in a `data/` folder (beside the recipe's folder, the
    current directory, or the rlvr checkout)."""
    candidates = [Path(spec)]
    if base is not None:
        candidates.append(base / spec)
    if not spec.endswith((".yaml", ".yml")) and "/" not in spec:
        for root in ([base.parent] if base is not None else []) + [Path.cwd(), Path(__file__).resolve().parents[1]]:
            candidates.append(root / "data" / f"{spec}.yaml")
    return next((c for c in candidates if c.is_file()), None)


def _expand_data_specs(data: dict[str, Any], base: Path | None, problems: list[str]) -> None:
    """Replace `data: {spec: NAME, ...}` by the spec file's keys, updated with the other keys given."""
    stages = data.get("stages")
    if not isinstance(stages, list):
        return
    for i, stage in enumerate(stages):
        block = stage.get("data") if isinstance(stage, dict) else None
        if not isinstance(block, dict) or not isinstance(block.get("spec"), str):
            continue
        found = find_data_spec(block["spec"], base)
        if found is None:
            problems.append(f"stages[{i}].data.spec: dataset spec '{block['spec']}' not found (looked for a path, then data/{block['spec']}.yaml)")
            continue
        spec = yaml.safe_load(found.read_text()) or {}
        if not isinstance(spec, dict):
            problems.append(f"stages[{i}].data.spec: {found} is not a YAML mapping")
            continue
        spec.pop("description", None)
        stage["data"] = {**spec, **{k: v for k, v in block.items() if k != "spec"}}


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override and validate a recipe; raises ConfigError listing every problem."""
    data = load_recipe_data(path)
    problems: list[str] = []
    for assignment in overrides:
        try:
            apply_override(data, assignment)
        except ValueError as err:
            problems.append(str(err))
    _expand_data_specs(data, Path(path).resolve().parent, problems)
    if problems:
        raise ConfigError(problems, path)
    return validate_recipe(data, path)


def dump_recipe(recipe: Recipe) -> str:
    """The fully resolved recipe (every default filled in) as YAML."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
