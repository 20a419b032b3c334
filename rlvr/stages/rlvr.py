"""RL with verifiable reward: the GRPO family with KL and entropy terms (1-shot RLVR, DAPO, Dr. GRPO,
Phi-4-Mini-Reasoning's RL fixes), and PPO with a value model (`advantage: gae`).

One step, as implemented:
  1. each rank takes its share of the step's prompts (`prompts_per_step` over all ranks; a dataset of
     one example repeated fills the batch, each row its own group) and samples `rollouts_per_prompt`
     completions per prompt from its colocated engine (vLLM, or HF) at the step's temperature;
  2. the shared verifier scores each completion with the reward policy (`reward.policy`, default the recipe's
     `verifier`; under `math` truncated completions are never correct, under one_shot_reward they can be) -> reward;
     DAPO dynamic sampling regenerates to replace groups with all-equal rewards;
  3. old log-probs (a no-grad pass, needed only when a step makes several updates) and reference
     log-probs (only when kl.coef > 0) from the trainer: before the rewards are final, because the
     KL-in-reward term reads them; PPO: the critic's values V(s_t) of every response token (no grad);
  4. rewards shaped (DAPO's overlong penalty, KL in the reward), then advantages from the rewards of
     *all* ranks (rlvr.rl.advantages.ESTIMATORS), so group and batch statistics never depend on where a
     rollout was generated. PPO instead: token rewards (the outcome on the last token, KL per token when
     it is in the reward), GAE(gamma, lam) advantages and returns per rollout, the advantages whitened
     with the mean and variance of the whole step's tokens on all ranks;
  5. selection: overlong filtering, Phi-4's prompt filters and reward rebalancing decide which rollouts
     carry loss;
  6. `ppo_epochs` passes over `prompts_per_step / mini_batch_prompts` mini-batches, one optimizer step
     each, the loss rlvr.rl.objectives.OBJECTIVES[objective] (grpo: policy_loss(clip_low, clip_high,
     loss_agg) + kl.coef * KL - entropy_coef * H), every term aggregated with the mini-batch's global
     token/sequence counts (micro-batch and rank invariant). PPO: the same over the same mini-batches
     for the critic, with rlvr.rl.losses.value_loss against the returns (clipped at critic.value_clip
     around the step-3 values); the policy is not updated in the first critic.warmup_steps steps;
  7. weight sync into the engine, then the probe: a few fixed sequences scored by trainer and engine;
     a gap above the dtype's limit, or an engine closer to the previous weights than to the new ones, or
     one that did not move with the trainer, stops the run (stale or garbage weights; rlvr.generate.probe,
     docs/generation.md). The hf backend
     under ZeRO 0-2 shares the trainer's parameter tensors instead: nothing to push or probe, the sync
     only checks that the tensors are still shared;
  8. validation when due (`validation`: every N steps, at step 0, at the last step; the same engine
     scores benchmarks through rlvr.eval's sweep code), metrics, per-example accuracy
     (stages/<name>/examples.jsonl, rlvr.rl.example_log), checkpoint, preemption check.
Departures from the papers are options, documented in docs/algorithms.md; the 1-shot recipe makes one
update per step (the released code) although the paper's text says 8.

Launch: `rlvr run RECIPE` (one process, in-process vLLM) or `torchrun --nproc_per_node N -m rlvr run
RECIPE` (one engine per rank, external_launcher).
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import torch

from rlvr.config import CriticConfig, RlvrStage, TemperatureSchedule
from rlvr.data.lm import chat_messages, render_prompt
from rlvr.data.order import EpochOrder
from rlvr.data.sources import load_rows
from rlvr.eval.validation import Validation
from rlvr.models.scoring import can_share_prompts
from rlvr.rl.advantages import ESTIMATORS, gae, whiten
from rlvr.rl.batching import pad_parts
from rlvr.rl.example_log import ExampleLog, count_examples
from rlvr.rl.layouts import forward_response, forward_values, micro_batch_splitter, micro_batches, pad_rows
from rlvr.rl.losses import kl, value_loss
from rlvr.rl.objectives import OBJECTIVES, ObjectiveConfig, ObjectiveInputs
from rlvr.rl.rewards import REWARDS, Judged, reward_draw
from rlvr.schema import UserError
from rlvr.stages.context import StageContext, StageResult, fingerprint
from rlvr.tracking import progress
from rlvr.verify.graders import RewardAudit, grader_config
from rlvr.verify.segments import graded_part


@dataclass(frozen=True)
class Rollout:
    """One sampled completion. Generation and the verifier fill the first fields; the training fields
    (reward after shaping, advantage, train, old/ref log-probs) are the returns of the step's later
    functions, attached in `main` with `dataclasses.replace`. Never edited in place."""

    group: int  # global id of the prompt's group in this step
    prompt_ids: list[int]
    completion_ids: list[int]
    rollout_logp: list[float]  # the engine's log-probs of the sampled tokens
    truncated: bool
    reward: float = 0.0
    correct: bool = False
    reason: str = ""
    train: bool = True  # False: kept for statistics, no loss (filtered, rebalanced away, overlong)
    advantage: float = 0.0
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    example: int | str = -1  # the prompt's example id in the data (examples.jsonl)
    # PPO (advantage: gae), per completion token [n]: GAE advantages (`advantage` is then their mean, for
    # statistics), the critic's values when the rollout was scored, and the returns it regresses on
    token_advantages: torch.Tensor | None = None
    old_values: torch.Tensor | None = None
    returns: torch.Tensor | None = None


@dataclass
class Plan:
    prompts_local: int
    updates: int  # optimizer updates per epoch of a step
    mini_local: int  # prompts per update on this rank
    grad_accum: int
    total_steps: int


# ------------------------------------------------------------------------------------ setup
def build_prompts(cfg: RlvrStage, world: Any, tokenizer: Any) -> list[dict[str, Any]]:
    """The stage's prompts as token ids (chat template, system prompt, suffix) with their gold answers;
    prompts longer than max_prompt_tokens are dropped, and counted."""
    prompts, too_long = [], 0
    for row in load_rows(cfg.data, needs=("prompt", "answer"), with_ids=True):
        messages = chat_messages({"prompt": row["prompt"] + cfg.prompt_suffix, "response": ""}, cfg.system_prompt)[:-1]
        ids = tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]
        if len(ids) > cfg.max_prompt_tokens:
            too_long += 1
            continue
        prompts.append({"ids": ids, "answer": row["answer"], "id": row["id"]})
    if too_long:
        world.print0(f"[{cfg.name}] dropped {too_long} prompts longer than max_prompt_tokens={cfg.max_prompt_tokens}")
    if not prompts:
        raise UserError(f"stage {cfg.name}: no prompt fits max_prompt_tokens={cfg.max_prompt_tokens}")
    return prompts


def plan_batches(cfg: RlvrStage, W: int, micro_batch_size: int, n_prompts: int) -> Plan:
    """How a step's prompts become optimizer updates on `W` ranks."""
    mini = cfg.mini_batch_prompts or cfg.prompts_per_step
    if cfg.prompts_per_step % W or mini % W:
        raise UserError(f"stage {cfg.name}: prompts_per_step ({cfg.prompts_per_step}) and mini_batch_prompts "
                         f"({mini}) must be multiples of the number of ranks ({W})")
    seqs = mini // W * cfg.rollouts_per_prompt
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * n_prompts / cfg.prompts_per_step))
    return Plan(prompts_local=cfg.prompts_per_step // W, updates=cfg.prompts_per_step // mini, mini_local=mini // W,
                grad_accum=math.ceil(seqs / micro_batch_size), total_steps=total)


def temperature_at(setting: float | TemperatureSchedule, step: int, total: int) -> float:
    """Constant, or linear from start to end over the first anneal_fraction of the steps."""
    if not isinstance(setting, TemperatureSchedule):
        return float(setting)
    span = max(1, round(setting.anneal_fraction * total))
    frac = min(1.0, step / span)
    return setting.start + (setting.end - setting.start) * frac


# ------------------------------------------------------------------------------------ rollouts
@dataclass(frozen=True)
class RolloutSource:
    """What steps 1-2 draw on: the stage's prompts and their two orders (the step's prompts, and the
    refills of dynamic sampling), the engine and the verifier."""

    cfg: RlvrStage
    world: Any
    generator: Any
    verifier: Any
    prompts: list[dict[str, Any]]
    orders: tuple[EpochOrder, EpochOrder]
    seed: int
    eos_id: int
    audit: RewardAudit | None = None  # judges each rollout again with the evaluation grader (reward/audit_*)


def generate_round(src: RolloutSource, rows: list[int], round_: int, step: int, temp: float) -> tuple[list[Rollout], float]:
    """Sample and score this rank's share of `rows` (global prompt indices of the step); returns the
    rollouts and the seconds spent verifying."""
    from rlvr.generate import Request, Sampling

    cfg, world, prompts, P = src.cfg, src.world, src.prompts, src.cfg.prompts_per_step
    local = range(world.rank * len(rows) // world.world_size, (world.rank + 1) * len(rows) // world.world_size)
    requests = [Request(prompt_ids=prompts[rows[j]]["ids"]) for j in local]
    sampling = Sampling(n=cfg.rollouts_per_prompt, temperature=temp, top_p=cfg.top_p, top_k=cfg.top_k,
                        max_tokens=cfg.max_response_tokens, seed=src.seed * 1_000_003 + step * 97 + round_,
                        logprobs=True, stop_token_ids=[src.eos_id])
    outs = src.generator.generate(requests, sampling)
    sampled = [(round_ * P + j, c) for j, completions in zip(local, outs, strict=True) for c in completions]
    truncated = [c.finish_reason == "length" for _, c in sampled]
    golds = [cfg.reward.label if cfg.reward.kind == "incorrect_label" else prompts[rows[j]]["answer"]
             for j in local for _ in range(cfg.rollouts_per_prompt)]
    t0 = time.perf_counter()
    texts = [graded_part(c.text, cfg.reward.grade_after) for _, c in sampled]
    results = src.verifier.verify_batch(texts, golds, truncated=truncated)
    if src.audit is not None:
        src.audit.record(texts, golds, truncated, results)
    verify_s = time.perf_counter() - t0
    rollouts = []
    for i, ((group, c), cut, res) in enumerate(zip(sampled, truncated, results, strict=True)):
        correct = res.score == 1.0
        judged = Judged(correct=correct, answered=res.answer is not None, truncated=cut,
                        u=reward_draw(src.seed, step, round_, world.rank, i))
        hit = REWARDS[cfg.reward.kind](judged, cfg.reward.random_p)
        rollouts.append(Rollout(group=group, prompt_ids=c.prompt_ids, completion_ids=c.completion_ids,
                                rollout_logp=list(c.logprobs or []), truncated=cut,
                                reward=cfg.reward.correct if hit else cfg.reward.incorrect, correct=correct,
                                reason=res.reason, example=prompts[rows[group % P]]["id"]))
    return rollouts, verify_s


def collect_rollouts(src: RolloutSource, step: int, temp: float) -> tuple[list[Rollout], list[Rollout], dict[str, float]]:
    """(rollouts to train on, every rollout generated, their metrics). Round 0 takes the step's prompts;
    with dynamic sampling, groups whose rewards are all equal are dropped and later rounds (fresh prompts
    from a separate, resumable order) refill them; all ranks run the same number of rounds."""
    cfg, world, P = src.cfg, src.world, src.cfg.prompts_per_step
    main_order, refill_order = src.orders
    rounds = cfg.dynamic_sampling.max_rounds if cfg.dynamic_sampling.enabled else 1
    kept: list[list[Rollout]] = []
    generated: list[Rollout] = []
    verify_s = 0.0
    for round_ in range(rounds):
        rows = main_order.global_batch(step, P) if round_ == 0 else refill_order.global_batch(step * rounds + round_, P)
        rollouts, seconds = generate_round(src, rows, round_, step, temp)
        verify_s += seconds
        generated += rollouts
        for g in _groups(rollouts):
            if not cfg.dynamic_sampling.enabled or len({r.reward for r in g}) > 1:
                kept.append(g)
        short = world.all_reduce_sum(max(0, P // world.world_size - len(kept)))
        if not cfg.dynamic_sampling.enabled or short == 0:
            break
    kept = kept[: P // world.world_size]
    stats = {"rollout/rounds": round_ + 1, "rollout/groups_kept": world.all_reduce_sum(len(kept)),
             "rollout/generated": world.all_reduce_sum(len(generated)), "time/verify": verify_s,
             **(src.audit.metrics(world.all_reduce_sum) if src.audit is not None else {})}
    return [r for g in kept for r in g], generated, stats


def _groups(rollouts: list[Rollout]) -> list[list[Rollout]]:
    by: dict[int, list[Rollout]] = {}
    for r in rollouts:
        by.setdefault(r.group, []).append(r)
    return list(by.values())


def shape_rewards(cfg: RlvrStage, rollouts: list[Rollout], old: list[torch.Tensor | None],
                  ref: list[torch.Tensor | None]) -> list[float]:
    """The verifier's rewards after DAPO's soft overlong penalty and the KL-in-reward term (which needs the
    old and reference log-probs: hence step 4 before this one). One reward per rollout."""
    rewards = [r.reward for r in rollouts]
    ov = cfg.overlong
    if ov.buffer:
        limit = cfg.max_response_tokens - ov.buffer
        for i, r in enumerate(rollouts):
            over = len(r.completion_ids) - limit
            if over > 0:
                rewards[i] -= ov.penalty * min(1.0, over / ov.buffer)
    if cfg.kl.coef > 0 and cfg.kl.placement == "reward" and cfg.advantage != "gae":  # gae: per token, token_rewards
        for i, r in enumerate(rollouts):
            lp = old[i] if old[i] is not None else torch.tensor(r.rollout_logp)
            rewards[i] -= cfg.kl.coef * float(kl(lp, ref[i], cfg.kl.kind).sum())
    return rewards


def compute_advantages(world, estimator: str, rewards: list[float], groups: list[int]) -> list[float]:
    """This rank's advantages, computed over the whole batch: the rewards and group ids of every rank are
    gathered first, so group and batch statistics never depend on where a rollout was generated."""
    gathered = world.all_gather_object(list(zip(rewards, groups, strict=True)))
    offset = sum(len(g) for g in gathered[: world.rank])
    everyone = torch.tensor([x[0] for g in gathered for x in g], dtype=torch.float64)
    group_ids = torch.tensor([x[1] for g in gathered for x in g], dtype=torch.long)
    adv = ESTIMATORS[estimator](everyone, group_ids) if len(everyone) else everyone
    return [float(adv[offset + i]) for i in range(len(rewards))]


# ------------------------------------------------------------------------------------ PPO's critic
def load_critic(ctx: StageContext, cfg: RlvrStage, total_steps: int, grad_accum: int) -> Any:
    """The value model (critic.init, or the policy's input weights with a fresh head) under its own
    backend and optimizer, checkpointed, resumed and exported (stages/<name>/critic/) with the policy."""
    from rlvr.models.value import load_value_model

    model = load_value_model(cfg.critic.init or ctx.input_model, dtype=ctx.recipe.model.dtype,
                             trust_remote_code=ctx.recipe.model.trust_remote_code, seed=ctx.recipe.seed)
    critic = ctx.wrap(model, total_steps, grad_accum=grad_accum, optim=cfg.critic.optim, token_scores=False)
    ctx.also_checkpoint("critic", critic)
    return critic


@torch.no_grad()
def critic_values(cfg: RlvrStage, world: Any, critic: Any, rollouts: list[Rollout], micro: int,
                  pad_id: int) -> list[torch.Tensor]:
    """Per rollout, the critic's V(s_t) [n] before each completion token (rl.layouts.forward_values), no
    grad, in micro-batches of `micro` rollouts (or max_tokens_per_micro_batch positions)."""
    index = {id(r): i for i, r in enumerate(rollouts)}
    out: list[torch.Tensor] = [torch.zeros(0)] * len(rollouts)
    n_chunks = world.all_reduce_max(math.ceil(len(rollouts) / micro))
    parts = micro_batches(rollouts, micro_batch_splitter(cfg.max_tokens_per_micro_batch, micro, n_chunks, False), False)
    for part in pad_parts(parts, world.all_reduce_max(len(parts))):  # the same number of forwards on every rank
        values, _ = forward_values(critic.forward, part or [_dummy(pad_id)], pad_id, critic.device)
        for r, v in zip(part, values, strict=False):
            out[index[id(r)]] = v[: len(r.completion_ids)].detach().cpu()
    return out


def token_rewards(cfg: RlvrStage, rollouts: list[Rollout], rewards: list[float], old: list[torch.Tensor | None],
                  ref: list[torch.Tensor | None]) -> list[torch.Tensor]:
    """Per rollout [n]: its shaped outcome reward on the last completion token, and, when kl.placement is
    reward, - kl.coef * KL_t on every token t (verl's apply_kl_penalty: token_level_scores - beta * kld,
    KL from the old, else the engine's, log-probs against the reference's)."""
    out = []
    for i, r in enumerate(rollouts):
        t = torch.zeros(len(r.completion_ids))
        if len(t):
            t[-1] = rewards[i]
        if cfg.kl.coef > 0 and cfg.kl.placement == "reward":
            lp = old[i] if old[i] is not None else torch.tensor(r.rollout_logp)
            t = t - cfg.kl.coef * kl(lp, ref[i], cfg.kl.kind).to(t.dtype)
        out.append(t)
    return out


def gae_advantages(world: Any, critic: CriticConfig, rewards: list[torch.Tensor],
                   values: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(advantages, returns) per rollout [n]: rl.advantages.gae(gamma, lam) on this rank's rollouts, then
    the advantages whitened with the mean and unbiased variance of *every* rank's response tokens (verl
    whitens the whole step's batch), so they never depend on where a rollout was generated."""
    lengths = [len(r) for r in rewards]
    T = max(lengths, default=0)
    R, V = pad_rows(rewards, T, "cpu"), pad_rows(values, T, "cpu")  # [B,T]
    M = (torch.arange(T).unsqueeze(0) < torch.tensor(lengths, dtype=torch.long).unsqueeze(-1)).float()  # [B,T]
    adv, ret = gae(R, V, M, critic.gamma, critic.lam, whiten=False)
    n = world.all_reduce_sum(float(M.sum()))
    mean = world.all_reduce_sum(float((adv * M).sum(dtype=torch.float64))) / max(n, 1.0)
    var = world.all_reduce_sum(float((((adv.double() - mean) ** 2) * M).sum())) / max(n - 1, 1.0)
    adv = whiten(adv, M, mean, var)
    return [adv[b, :k] for b, k in enumerate(lengths)], [ret[b, :k] for b, k in enumerate(lengths)]


def select_for_training(cfg: RlvrStage, rollouts: list[Rollout], rewards: list[float], rng: random.Random) -> list[bool]:
    """Which rollouts carry loss (the others are kept for statistics): overlong filtering, Phi-4's prompt
    filters (accuracy, length uniformity) and reward rebalancing (every positive and as many random
    negatives per group, judged on the shaped rewards)."""
    train = [True] * len(rollouts)
    index = {id(r): i for i, r in enumerate(rollouts)}
    for g in _groups(rollouts):
        acc = sum(r.correct for r in g) / len(g)
        lengths = [len(r.completion_ids) for r in g]
        mean_len = sum(lengths) / len(lengths)
        cv = (sum((x - mean_len) ** 2 for x in lengths) / len(lengths)) ** 0.5 / max(mean_len, 1)
        drop = (cfg.prompt_filter.max_accuracy is not None and acc > cfg.prompt_filter.max_accuracy) or \
               (cfg.prompt_filter.max_length_cv is not None and cv > cfg.prompt_filter.max_length_cv)
        for r in g:
            train[index[id(r)]] = not drop and not (cfg.overlong.filter and r.truncated)
        if cfg.rebalance and not drop:
            pos = [r for r in g if rewards[index[id(r)]] > cfg.reward.incorrect]
            neg = [r for r in g if rewards[index[id(r)]] <= cfg.reward.incorrect]
            for r in neg:
                train[index[id(r)]] = False
            for r in rng.sample(neg, min(len(pos), len(neg))):
                train[index[id(r)]] = not (cfg.overlong.filter and r.truncated)
    return train


# ------------------------------------------------------------------------------------ log-probs
# (layouts and micro-batch cuts: rlvr.rl.layouts)
def _dummy(pad_id: int) -> Rollout:
    """A row with no loss, for a micro-batch this rank has no rollouts for (ZeRO-3 gathers are collective)."""
    return Rollout(group=-1, prompt_ids=[pad_id], completion_ids=[pad_id], rollout_logp=[0.0], truncated=False, train=False)


@torch.no_grad()
def precompute_logprobs(cfg: RlvrStage, world: Any, backend: Any, reference: Any, rollouts: list[Rollout],
                        micro: int, pad_id: int, temp: float,
                        need_old: bool) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
    """(old, ref): per rollout, its completion's log-probs [n] under the current policy (when several
    updates follow) and under the frozen reference (when the KL term is on), else None; computed micro-batch
    by micro-batch of `micro` rollouts (or cfg.max_tokens_per_micro_batch tokens)."""
    index = {id(r): i for i, r in enumerate(rollouts)}
    old: list[torch.Tensor | None] = [None] * len(rollouts)
    ref: list[torch.Tensor | None] = [None] * len(rollouts)
    n_chunks = world.all_reduce_max(math.ceil(len(rollouts) / micro))
    share = cfg.prompt_sharing and can_share_prompts(backend.module, backend.scorer)
    parts = micro_batches(rollouts, micro_batch_splitter(cfg.max_tokens_per_micro_batch, micro, n_chunks, share),
                          share)
    for part in pad_parts(parts, world.all_reduce_max(len(parts))):  # the same number of forwards on every rank
        batch = part or [_dummy(pad_id)]
        if need_old:
            logp, _, _ = forward_response(backend.scorer, batch, pad_id, backend.device, temp, False,
                                          share_prompts=share)
            for r, lp in zip(part, logp, strict=False):
                old[index[id(r)]] = lp[: len(r.completion_ids)].detach().cpu()
        if reference is not None:  # also on an empty part: a LoRA reference is the ZeRO-3 engine (collective)
            logp, _, _ = forward_response(reference, batch, pad_id, backend.device, temp, False,
                                          # the reference's scorer runs the module itself: forward is the module
                                          share_prompts=cfg.prompt_sharing and can_share_prompts(reference.forward, reference))
            for r, lp in zip(part, logp, strict=False):
                ref[index[id(r)]] = lp[: len(r.completion_ids)].detach().cpu()
    return old, ref


# ------------------------------------------------------------------------------------ the update
def objective_config(cfg: RlvrStage) -> ObjectiveConfig:
    return ObjectiveConfig(clip_low=cfg.clip_low, clip_high=cfg.clip_high, loss_agg=cfg.loss_agg,
                           entropy_coef=cfg.entropy_coef, kl_coef=cfg.kl.coef, kl_kind=cfg.kl.kind,
                           kl_in_loss=cfg.kl.placement == "loss", tis_cap=cfg.tis_cap, gspo_clip_low=cfg.gspo_clip_low,
                           gspo_clip_high=cfg.gspo_clip_high, cispo_clip_high=cfg.cispo_clip_high,
                           pg_coef=cfg.pg_coef)


def train_on(cfg: RlvrStage, world: Any, backend: Any, rollouts: list[Rollout], plan: Plan, micro: int, pad_id: int,
             temp: float, single_update: bool) -> dict[str, float]:
    """ppo_epochs x updates optimizer steps over this step's rollouts, in micro-batches of `micro`
    rollouts (or cfg.max_tokens_per_micro_batch tokens); returns summed metrics."""
    sums: Counter = Counter()
    objective, objective_cfg = OBJECTIVES[cfg.objective], objective_config(cfg)
    share = cfg.prompt_sharing and can_share_prompts(backend.module, backend.scorer)
    by_prompt = _groups(rollouts)
    backend.train()
    for _ in range(cfg.ppo_epochs):
        for u in range(plan.updates):
            mini = [r for g in by_prompt[u * plan.mini_local:(u + 1) * plan.mini_local] for r in g]
            parts = micro_batches(mini, micro_batch_splitter(cfg.max_tokens_per_micro_batch, micro, plan.grad_accum, share),
                                  share)
            # every rank runs the same number of micro-batches, at least one: a step whose rollouts were
            # all dropped (dynamic sampling) still takes its optimizer step on an empty micro-batch
            parts = pad_parts(parts, max(1, world.all_reduce_max(len(parts))))
            backend.accumulate(len(parts))
            n_tokens = world.all_reduce_sum(sum(len(r.completion_ids) for r in mini if r.train))
            n_seqs = world.all_reduce_sum(sum(r.train for r in mini))
            counts = {"n_tokens": max(n_tokens, 1.0), "n_seqs": max(n_seqs, 1.0), "norm_len": cfg.max_response_tokens}
            for part in parts:
                batch = part or [_dummy(pad_id)]
                # entropy_coef 0: entropy is logged only, so no graph through the full-vocabulary softmax
                logp, mask, ent = forward_response(backend.scorer, batch, pad_id, backend.device, temp,
                                                   with_entropy=True, entropy_grad=bool(cfg.entropy_coef),
                                                   share_prompts=share)
                T, dev = logp.shape[1], logp.device
                inputs = ObjectiveInputs(
                    logp=logp,
                    old_logp=logp.detach() if single_update else pad_rows([r.old_logp for r in batch], T, dev),
                    advantages=(pad_rows([r.token_advantages for r in batch], T, dev) if cfg.advantage == "gae"
                                else torch.tensor([r.advantage for r in batch], device=dev)),  # [B,T] or [B]
                    mask=mask * torch.tensor([float(r.train) for r in batch], device=dev).unsqueeze(-1),
                    entropy=ent,
                    ref_logp=pad_rows([r.ref_logp for r in batch], T, dev) if cfg.kl.coef > 0 else None,
                    rollout_logp=(pad_rows([torch.tensor(r.rollout_logp) for r in batch], T, dev)
                                  if cfg.tis_cap is not None else None),
                    **counts)
                loss, m = objective(inputs, objective_cfg)
                backend.backward(loss)
                n_tok = float(inputs.mask.sum())
                sums.update({"pg_loss": float(m["pg_loss"].detach()), "entropy": float(m["entropy"].detach()),
                             "kl": float(m["kl"].detach()), "clip_frac_tok": float(m["clip_frac"]) * n_tok,
                             "approx_kl_tok": float(m["approx_kl"]) * n_tok, "tok": n_tok})
            stats = backend.step()
            sums.update({"grad_norm": stats.grad_norm or 0.0, "updates": 1})
            sums["lr"] = stats.lr
    return dict(sums)


def train_critic(cfg: RlvrStage, world: Any, critic: Any, rollouts: list[Rollout], plan: Plan, micro: int,
                 pad_id: int) -> dict[str, float]:
    """PPO's critic update: the policy's ppo_epochs x updates optimizer steps over the same mini-batches,
    each rl.losses.value_loss(V, old V, returns, clip=critic.value_clip, critic.loss_agg) with the
    mini-batch's global counts (micro-batch and rank invariant); returns summed metrics."""
    sums: Counter = Counter()
    by_prompt = _groups(rollouts)
    critic.train()
    for _ in range(cfg.ppo_epochs):
        for u in range(plan.updates):
            mini = [r for g in by_prompt[u * plan.mini_local:(u + 1) * plan.mini_local] for r in g]
            parts = micro_batches(mini, micro_batch_splitter(cfg.max_tokens_per_micro_batch, micro, plan.grad_accum,
                                                             False), False)
            parts = pad_parts(parts, max(1, world.all_reduce_max(len(parts))))
            critic.accumulate(len(parts))
            n_tokens = world.all_reduce_sum(sum(len(r.completion_ids) for r in mini if r.train))
            n_seqs = world.all_reduce_sum(sum(r.train for r in mini))
            counts = {"n_tokens": max(n_tokens, 1.0), "n_seqs": max(n_seqs, 1.0), "norm_len": cfg.max_response_tokens}
            for part in parts:
                batch = part or [_dummy(pad_id)]
                values, mask = forward_values(critic.forward, batch, pad_id, critic.device)  # [B,T]
                T, dev = values.shape[1], values.device
                mask = mask * torch.tensor([float(r.train) for r in batch], device=dev).unsqueeze(-1)
                loss, clipped = value_loss(values, pad_rows([r.old_values for r in batch], T, dev),
                                           pad_rows([r.returns for r in batch], T, dev), mask, cfg.critic.value_clip,
                                           cfg.critic.loss_agg, **counts)
                critic.backward(loss)
                n_tok = float(mask.sum())
                sums.update({"value_loss": float(loss.detach()), "clip_frac_tok": float(clipped) * n_tok, "tok": n_tok})
            stats = critic.step()
            sums.update({"grad_norm": stats.grad_norm or 0.0, "updates": 1})
    return dict(sums)


# ------------------------------------------------------------------------------------ metrics
def critic_metrics(world: Any, rollouts: list[Rollout], sums: dict[str, float]) -> dict[str, float]:
    """critic/*: value loss per update and clip fraction per trained token (train_critic's sums), and over
    every response token of all ranks the mean step-3 value, mean return, and explained variance
    1 - Var(R - V) / Var(R) (verl's critic/vf_explained_var)."""
    v = torch.cat([r.old_values for r in rollouts] or [torch.zeros(0)]).double()
    ret = torch.cat([r.returns for r in rollouts] or [torch.zeros(0)]).double()
    s = lambda x: world.all_reduce_sum(float(x))  # noqa: E731
    n = max(s(len(v)), 1.0)
    mean_ret, mean_d = s(ret.sum()) / n, s((ret - v).sum()) / n
    var_ret, var_d = s(((ret - mean_ret) ** 2).sum()) / n, s(((ret - v - mean_d) ** 2).sum()) / n
    updates, tok = sums.get("updates", 1), world.all_reduce_sum(sums.get("tok", 0.0))
    return {"critic/value_loss": world.all_reduce_sum(sums.get("value_loss", 0.0)) / updates,
            "critic/clip_frac": world.all_reduce_sum(sums.get("clip_frac_tok", 0.0)) / max(tok, 1),
            "critic/explained_variance": 1.0 - var_d / (var_ret + 1e-5),  # verl compute_data_metrics
            "critic/value_mean": s(v.sum()) / n, "critic/return_mean": mean_ret,
            "critic/grad_norm": sums.get("grad_norm", 0.0) / updates}


def rollout_metrics(world, rollouts: list[Rollout]) -> dict[str, float]:
    n = world.all_reduce_sum(len(rollouts))
    s = lambda f: world.all_reduce_sum(sum(f(r) for r in rollouts))  # noqa: E731
    mean_r = s(lambda r: r.reward) / n
    var_r = s(lambda r: (r.reward - mean_r) ** 2) / max(n - 1, 1)
    lengths = [len(r.completion_ids) for r in rollouts]
    max_len = max(world.all_gather_object(max(lengths, default=0)))
    out = {
        "reward/mean": mean_r, "reward/std": var_r ** 0.5, "accuracy": s(lambda r: r.correct) / n,
        "adv/mean": s(lambda r: r.advantage) / n, "adv/abs_mean": s(lambda r: abs(r.advantage)) / n,
        "response/length_mean": s(lambda r: len(r.completion_ids)) / n, "response/length_max": max_len,
        "response/truncated": s(lambda r: r.truncated) / n,
    }
    reasons = Counter(r.reason for r in rollouts)
    for reason in sorted({x for c in world.all_gather_object(dict(reasons)) for x in c}):
        out[f"verify/{reason}"] = world.all_reduce_sum(reasons.get(reason, 0))
    return out


def update_metrics(world: Any, sums: dict[str, float]) -> dict[str, float]:
    """Losses per update and clip/approx-KL per trained token, over all ranks, from train_on's sums."""
    tok, updates = world.all_reduce_sum(sums.get("tok", 0.0)), sums.get("updates", 1)
    return {"pg_loss": world.all_reduce_sum(sums.get("pg_loss", 0.0)) / updates,
            "entropy": world.all_reduce_sum(sums.get("entropy", 0.0)) / updates,
            "kl": world.all_reduce_sum(sums.get("kl", 0.0)) / updates,
            "clip_frac": world.all_reduce_sum(sums.get("clip_frac_tok", 0.0)) / max(tok, 1),
            "approx_kl": world.all_reduce_sum(sums.get("approx_kl_tok", 0.0)) / max(tok, 1),
            "grad_norm": sums.get("grad_norm", 0.0) / updates, "lr": sums.get("lr", 0.0)}


# ------------------------------------------------------------------------------------ the stage
def main(ctx: StageContext) -> StageResult:
    from rlvr.generate import build_generator
    from rlvr.generate.probe import WeightProbe, probe_dtype, probe_sequences
    from rlvr.verify import Verifier

    cfg: RlvrStage = ctx.cfg
    world, micro = ctx.world, ctx.micro_batch_size
    tokenizer, model = ctx.load_policy()
    prompts = build_prompts(cfg, world, tokenizer)
    plan = plan_batches(cfg, world.world_size, micro, len(prompts))
    data_id = fingerprint([[p["ids"] for p in prompts[:64]], len(prompts), cfg.prompts_per_step])
    backend = ctx.wrap(model, plan.total_steps, grad_accum=plan.grad_accum)
    critic = load_critic(ctx, cfg, plan.total_steps, plan.grad_accum) if cfg.advantage == "gae" else None
    # LoRA: the reference is the trainer's own model with the adapter off (no second copy of the weights)
    reference = (backend.base_scorer() or load_reference(ctx, backend.device)) if cfg.kl.coef > 0 else None
    generator = build_generator(cfg.generation, ctx.input_model, world, dtype=ctx.recipe.model.dtype, seed=ctx.recipe.seed)
    if generator.dp_size != world.world_size:
        generator.close()
        raise UserError(f"stage {cfg.name}: generation.tensor_parallel_size > 1 is not supported by this stage yet "
                         "(it shards prompts one engine per rank); use tensor_parallel_size: 1")
    verifier = Verifier(grader_config(ctx.recipe.verifier, cfg.reward.policy or ctx.recipe.verifier.policy))
    verifier.start()  # its fallback workers start (sympy imports) during setup, not inside the first step that needs them
    start = ctx.resume_from(backend, data_id)
    examples = ExampleLog(ctx.run.stage(ctx.name) / "examples.jsonl", start, enabled=world.is_main)
    probe = WeightProbe(probe_sequences(tokenizer, cfg.generation.probe_sequences, cfg.generation.probe_length),
                        dtype=probe_dtype(ctx.recipe.model.dtype, cfg.generation.dtype),
                        threshold=cfg.generation.probe_threshold)
    # hf backend, ZeRO 0-2: the generator's parameters become the trainer's own tensors, so there is no
    # copy to push or to probe; its sync_weights then only checks that the tensors are still shared
    shared = not backend.partitioned and generator.share_weights(backend.module)
    generator.sync_weights(backend.iter_full_params())  # the engine must start from the trainer's weights
    if not shared:
        probe.check(generator, backend)
    source = RolloutSource(cfg, world, generator, verifier, prompts, seed=ctx.recipe.seed, eos_id=tokenizer.eos_token_id,
                           orders=(EpochOrder(len(prompts), ctx.recipe.seed), EpochOrder(len(prompts), ctx.recipe.seed + 7919)),
                           audit=RewardAudit.between(verifier.config, ctx.recipe.verifier))
    pad = tokenizer.pad_token_id
    single_update = plan.updates == 1 and cfg.ppo_epochs == 1
    split = (f"micro-batches of <= {cfg.max_tokens_per_micro_batch} tokens" if cfg.max_tokens_per_micro_batch
             else f"grad_accum {plan.grad_accum}")
    world.print0(f"[{cfg.name}] {len(prompts)} prompts; {cfg.prompts_per_step} prompts x {cfg.rollouts_per_prompt} "
                 f"rollouts per step, {plan.updates * cfg.ppo_epochs} update(s) per step, {split}"
                 f"{', generating from the trainer weights' if shared else ''}; "
                 f"steps {start}->{plan.total_steps}")
    validation = None if cfg.validation is None else Validation(
        cfg.validation, world, ctx.run.stage(cfg.name) / "validation", stage=cfg.name, run_name=ctx.recipe.name,
        step_offset=ctx.step_offset, start=start, verifier=ctx.recipe.verifier, generation=cfg.generation,
        dtype=ctx.recipe.model.dtype)
    if validation is not None and start == 0 and validation.due(0, plan.total_steps):
        ctx.tracker.log(cfg.name, 0, validation.run(generator, verifier, 0))
    bar = progress(plan.total_steps, cfg.name, enabled=world.is_main, initial=start)
    history = ctx.history(start)  # the steps before a resume: the summary covers the whole stage
    for step in range(start, plan.total_steps):
        t0 = time.perf_counter()
        temp = temperature_at(cfg.temperature, step, plan.total_steps)

        rollouts, generated, rollout_stats = collect_rollouts(source, step, temp)                # 1-2
        gen_stats = dict(generator.last_stats)
        generator.sleep()
        t_gen = time.perf_counter()

        old, ref = precompute_logprobs(cfg, world, backend, reference, rollouts, micro, pad, temp,
                                       need_old=not single_update)                               # 3
        rewards = shape_rewards(cfg, rollouts, old, ref)                                         # 4
        if critic is None:
            advantages = compute_advantages(world, cfg.advantage, rewards, [r.group for r in rollouts])
            ppo = {}
        else:  # PPO: token-level rewards, the critic's values, GAE
            values = critic_values(cfg, world, critic, rollouts, micro, pad)
            token_adv, returns = gae_advantages(world, cfg.critic, token_rewards(cfg, rollouts, rewards, old, ref),
                                                values)
            advantages = [float(a.mean()) if len(a) else 0.0 for a in token_adv]  # statistics only
            ppo = {id(r): {"token_advantages": a, "old_values": v, "returns": g}
                   for r, a, v, g in zip(rollouts, token_adv, values, returns, strict=True)}
        train = select_for_training(cfg, rollouts, rewards,
                                    random.Random(f"{ctx.recipe.seed}|rebalance|{step}|{world.rank}"))  # 5
        batch = [replace(r, reward=rw, advantage=a, train=t, old_logp=o, ref_logp=f, **ppo.get(id(r), {}))
                 for r, rw, a, t, o, f in zip(rollouts, rewards, advantages, train, old, ref, strict=True)]
        t_prep = time.perf_counter()

        # PPO's critic warm-up: the critic alone learns first (verl's trainer.critic_warmup)
        update_policy = critic is None or step >= cfg.critic.warmup_steps
        sums = train_on(cfg, world, backend, batch, plan, micro, pad, temp, single_update) if update_policy else {}  # 6
        critic_sums = train_critic(cfg, world, critic, batch, plan, micro, pad) if critic is not None else None
        t_train = time.perf_counter()

        generator.wake()
        sync_s = generator.sync_weights(backend.iter_full_params())                             # 7
        gap = {} if shared else probe.check(generator, backend)
        t_sync = time.perf_counter()

        trained = {id(r): b for r, b in zip(rollouts, batch, strict=True)}
        generated = [trained.get(id(r), r) for r in generated]  # statistics: every rollout, shaped where trained
        metrics = {**rollout_metrics(world, generated), **gap, **rollout_stats,
                   "rollout/train_fraction": world.all_reduce_sum(sum(r.train for r in batch))
                   / max(1.0, world.all_reduce_sum(len(generated))),
                   **update_metrics(world, sums),
                   **(critic_metrics(world, batch, critic_sums) if critic is not None else {}),
                   "temperature": temp, "gen/tokens_per_s": gen_stats.get("gen/tokens_per_s", 0.0),
                   "time/generate": t_gen - t0, "time/prepare": t_prep - t_gen, "time/train": t_train - t_prep,
                   "time/sync": t_sync - t_train, "time/sync_push": sync_s, "time/step": t_sync - t0}
        if validation is not None and validation.due(step + 1, plan.total_steps):
            metrics.update(validation.run(generator, verifier, step + 1))                     # 8
        examples.append(step + 1, world.all_gather_object(count_examples((r.example, r.correct) for r in generated)))
        ctx.tracker.log(cfg.name, step + 1, metrics)
        history.append(metrics)
        bar.update(1)
        bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}", acc=f"{metrics['accuracy']:.3f}",
                        ent=f"{metrics['entropy']:.3f}", kl=f"{metrics['kl']:.4f}", s=f"{metrics['time/step']:.1f}",
                        refresh=False)
        ctx.after_step(backend, step + 1, plan.total_steps, data_id)
    bar.close()
    final = ctx.finish(backend, tokenizer, start, plan.total_steps, data_id)
    generator.close()
    verifier.close()
    if validation is not None:
        validation.report()
    return StageResult(steps=plan.total_steps, metrics=summarize(history), output=str(final))


def load_reference(ctx: StageContext, device) -> Any:
    """The frozen input model for the KL term (a plain module on every rank, no optimizer), as a
    TokenScorer with the recipe's LM-head chunking."""
    from rlvr.models.load import load_model
    from rlvr.models.scoring import token_scorer

    ref = load_model(ctx.input_model, dtype=ctx.recipe.model.dtype).to(device).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return token_scorer(ref, ref, ctx.recipe.backend.logits_chunk(ref.config.vocab_size))


def summarize(history: list[dict[str, float]]) -> dict[str, float]:
    if not history:
        return {}
    k = max(1, len(history) // 4)
    first, last = history[:k], history[-k:]
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    out = {"reward_first": mean(first, "reward/mean"), "reward_last": mean(last, "reward/mean"),
           "accuracy_first": mean(first, "accuracy"), "accuracy_last": mean(last, "accuracy"),
           "gap_max": max(r.get("gen/logprob_gap_max", 0.0) for r in history)}
    validated = [r["val/accuracy"] for r in history if "val/accuracy" in r]
    if validated:
        out["val_accuracy_last"] = validated[-1]
    return out
