"""The causal-LM training loop shared by mid-training and SFT: the objective is the same (mean
next-token NLL over loss tokens), only the data differs, and that lives in each stage file.

Normalisation: the loss of one optimizer step is sum(token NLL) / (number of loss tokens in the whole
global batch, all micro-batches on all ranks). Each micro-batch contributes its token sum divided by
that global count, and the backend undoes DeepSpeed's 1/grad_accum and 1/world averaging, so the
update does not depend on how the global batch is split (tests/test_invariance.py).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from rlvr.data.lm import IGNORE, Example, collate
from rlvr.data.order import EpochOrder
from rlvr.rl.batching import pack_by_budget, pad_parts, padded_positions
from rlvr.stages.context import StageContext, StageResult, fingerprint
from rlvr.tracking import progress


def token_nll(scorer: Any, targets: torch.Tensor, **inputs: Any) -> torch.Tensor:
    """Per-token negative log-likelihood of `targets` [B,T] (IGNORE = no loss) under the model run by
    `scorer` (a rlvr.models.scoring.TokenScorer: the LM head in chunks, no [B,T,V] logits) on `inputs`
    -> [B,T], fp32, 0 at ignored positions."""
    loss = targets != IGNORE
    logp, _ = scorer(targets.masked_fill(~loss, 0), **inputs)
    return -logp * loss


def micro_batches(rows: list[int], examples: list[Example], micro: int, gas: int, budget: int | None,
                  world: Any) -> list[list[int]]:
    """This rank's step rows as micro-batches: `gas` slices of `micro` rows, or (a token budget)
    length-sorted rows packed up to `budget` padded positions each, then empty micro-batches up to the
    largest count of any rank. The loss is normalised by the step's global token count either way."""
    if not budget:
        return [rows[k * micro:(k + 1) * micro] for k in range(gas)]
    by_length = sorted(rows, key=lambda i: len(examples[i]))
    parts = pack_by_budget(by_length, budget, lambda p: padded_positions([len(examples[i]) for i in p]))
    return pad_parts(parts, world.all_reduce_max(len(parts)))


def train_causal_lm(ctx: StageContext, tokenizer: Any, model: Any, examples: list[Example],
                    packed: bool) -> StageResult:
    cfg, world = ctx.cfg, ctx.world
    micro, gas, G = ctx.micro_batch_size, ctx.grad_accum, ctx.global_batch
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(examples) / G))
    data_id = fingerprint([len(examples), [e.input_ids[:64] for e in examples[:64]], G])
    pad = tokenizer.pad_token_id

    backend = ctx.wrap(model, total)
    start = ctx.resume_from(backend, data_id)
    order = EpochOrder(len(examples), ctx.recipe.seed)
    split = (f"micro-batches of <= {cfg.max_tokens_per_micro_batch} tokens" if cfg.max_tokens_per_micro_batch
             else f"{micro} x {gas} accum")
    world.print0(f"[{ctx.name}] {len(examples)} sequences, global batch {G} "
                 f"({split} x {world.world_size} ranks), steps {start}->{total}")
    bar = progress(total, ctx.name, enabled=world.is_main, initial=start)
    history = ctx.history(start)  # the steps before a resume: the summary covers the whole stage
    backend.train()
    for step in range(start, total):
        t0 = time.perf_counter()
        rows = order.global_batch(step, G)
        mine = rows[world.rank * micro * gas:(world.rank + 1) * micro * gas]
        n_tokens = world.all_reduce_sum(sum(examples[i].n_loss_tokens for i in mine))
        denom = max(1.0, n_tokens)  # the global denominator of this step
        parts = micro_batches(mine, examples, micro, gas, cfg.max_tokens_per_micro_batch, world)
        backend.accumulate(len(parts))
        nll_sum = 0.0
        for part in parts:
            # an empty micro-batch (token budget: another rank has more) still runs: ZeRO-3 gathers are collective
            batch = collate([examples[i] for i in part] or [Example([pad], [IGNORE], [0])], pad, packed)
            batch = {key: v.to(backend.device) for key, v in batch.items()}
            targets = batch.pop("targets")
            nll = token_nll(backend.scorer, targets, **batch, use_cache=False)  # [B,T]
            backend.backward(nll.sum() / denom)
            nll_sum += float(nll.detach().sum())
        stats = backend.step()
        loss = world.all_reduce_sum(nll_sum) / denom
        seconds = time.perf_counter() - t0
        row = {"loss": loss, "lr": stats.lr, "grad_norm": stats.grad_norm, "tokens": n_tokens,
               "step_seconds": seconds, "tokens_per_s": n_tokens / seconds}
        ctx.tracker.log(ctx.name, step + 1, row)
        history.append(row)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{stats.lr:.2e}", refresh=False)
        ctx.after_step(backend, step + 1, total, data_id)
    bar.close()
    final = ctx.finish(backend, tokenizer, start, total, data_id)
    metrics = {"sequences": len(examples)}
    if history:
        metrics.update(loss_first=history[0]["loss"], loss_last=history[-1]["loss"])
    return StageResult(steps=total, metrics=metrics, output=str(final))
