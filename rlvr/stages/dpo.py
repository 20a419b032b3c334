"""Rollout DPO (Phi-4-Mini-Reasoning's stage 3): verifier-judged preference pairs, then DPO.

Pairs, as implemented: for each prompt, chosen = a response the shared verifier judges correct,
rejected = one it judges incorrect, `pairs_per_prompt` distinct pairs at most; prompts with no
correct or no incorrect response are dropped; a truncated response can be rejected (option) but
never chosen. Sources: `policy` samples `rollouts_per_prompt` responses from the stage's input
model through the Generator; `file` reads teacher rollouts (the paper's setting: the teacher's
correct vs incorrect samples), judging rows that carry no `correct` flag. With `pairs.chosen:
reference` (policy source) the chosen side is the data row's reference solution instead, against
the policy's incorrect rollouts. The pairs, with the verifier's
reasons, are written to RUN_DIR/stages/<name>/pairs.jsonl; `pairs_from:` reuses such a file, or
an earlier distill stage's pairs (`pairs_from: <distill stage name>`, the same format).

Training: loss = mean over the global batch of pairs of DPO_LOSSES[loss](...) (rlvr/rl/dpo.py) on
summed response log-probs (all response tokens; with `span: divergent_step` only the line where
chosen and rejected first differ, as in Step-DPO), plus nll_coef x the chosen response's per-token
NLL when set (RPO). The reference is the input model: its log-probs are computed once, before the
first update, with the same weights the policy starts from, and cached for the stage.

Launch: `rlvr run RECIPE` or `torchrun --nproc_per_node N -m rlvr run RECIPE`.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import torch

from rlvr.data.lm import IGNORE, Example, chat_messages, collate, sft_example
from rlvr.data.order import EpochOrder
from rlvr.data.sources import load_rows, map_rows
from rlvr.rl.batching import pack_by_budget, pad_parts, padded_positions
from rlvr.rl.dpo import dpo_loss
from rlvr.schema import UserError
from rlvr.stages.causal_lm import token_nll
from rlvr.stages.context import StageContext, StageResult, fingerprint
from rlvr.tracking import progress


# ------------------------------------------------------------------------------------ pairs
def judged_groups_from_policy(ctx: StageContext, tokenizer: Any) -> list[dict[str, Any]]:
    """Every rank samples its share of the prompts; the verifier judges; groups are gathered."""
    from rlvr.generate import Request, Sampling, build_generator
    from rlvr.verify import Verifier

    cfg, world = ctx.cfg, ctx.world
    needs = ("prompt", "answer", "response") if cfg.pairs.chosen == "reference" else ("prompt", "answer")
    rows = load_rows(cfg.data, needs=needs, run=ctx.run)
    mine = rows[world.rank::world.world_size]
    prompts = [r["prompt"] + cfg.prompt_suffix for r in mine]
    generator = build_generator(cfg.generation, ctx.input_model, world, dtype=ctx.recipe.model.dtype,
                                seed=ctx.recipe.seed)
    if generator.dp_size != world.world_size:
        generator.close()
        raise UserError(f"stage {cfg.name}: generation.tensor_parallel_size > 1 is not supported by this stage yet "
                         "(it shards prompts one engine per rank); use tensor_parallel_size: 1")
    sampling = Sampling(n=cfg.pairs.rollouts_per_prompt, temperature=cfg.pairs.temperature, top_p=cfg.pairs.top_p,
                        max_tokens=cfg.pairs.max_response_tokens, seed=ctx.recipe.seed,
                        stop_token_ids=[tokenizer.eos_token_id])
    requests = [Request(messages=chat_messages({"prompt": p, "response": ""}, cfg.system_prompt)[:-1]) for p in prompts]
    outs = generator.generate(requests, sampling)
    generator.close()
    texts = [c.text for cs in outs for c in cs]
    golds = [r["answer"] for r, cs in zip(mine, outs, strict=True) for _ in cs]
    truncated = [c.finish_reason == "length" for cs in outs for c in cs]
    with Verifier(ctx.recipe.verifier) as verifier:
        verdicts = iter(verifier.verify_batch(texts, golds, truncated=truncated))
    groups = []
    for p, r, cs in zip(prompts, mine, outs, strict=True):
        responses = []
        for c in cs:
            v = next(verdicts)
            responses.append({"text": c.text, "correct": v.score == 1.0, "reason": v.reason,
                              "truncated": c.finish_reason == "length"})
        groups.append({"prompt": p, "gold": r["answer"], "reference": r.get("response"), "responses": responses})
    return [g for part in world.all_gather_object(groups) for g in part]


def judged_groups_from_file(ctx: StageContext) -> list[dict[str, Any]]:
    """Teacher rollouts grouped by prompt; rows without a `correct` flag are judged by the verifier."""
    from rlvr.data.sources import read_local
    from rlvr.verify import Verifier

    cfg = ctx.cfg
    path = Path(cfg.pairs.path)
    mapping = {"prompt": "prompt", "completion": "completion", "gold": "gold", "correct": "correct", **cfg.pairs.fields}
    rows = map_rows(read_local(path), mapping, str(path), required={"prompt", "completion"})
    need = [i for i, r in enumerate(rows) if r.get("correct", "") == ""]
    missing_gold = [i for i in need if not rows[i].get("gold")]
    if missing_gold:
        raise UserError(f"{path}: row {missing_gold[0]} has neither a `correct` flag nor a `gold` answer to judge against")
    with Verifier(ctx.recipe.verifier) as verifier:
        verdicts = verifier.verify_batch([rows[i]["completion"] for i in need], [rows[i]["gold"] for i in need])
    judged = {i: v for i, v in zip(need, verdicts, strict=True)}
    by_prompt: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(rows):
        if i in judged:
            correct, reason = judged[i].score == 1.0, judged[i].reason
        else:
            correct, reason = str(r["correct"]).lower() in ("true", "1", "yes"), "labelled"
        group = by_prompt.setdefault(r["prompt"], {"prompt": r["prompt"], "gold": r.get("gold", ""), "responses": []})
        group["responses"].append({"text": r["completion"], "correct": correct, "reason": reason,
                                   "truncated": reason == "truncated"})
    return list(by_prompt.values())


def make_pairs(groups: list[dict[str, Any]], cfg: Any, seed: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(chosen correct, rejected incorrect) pairs of the same prompt, and counts of what was dropped."""
    rng = random.Random(f"{seed}|pairs")
    pairs, stats = [], {"prompts": len(groups), "no_correct": 0, "no_incorrect": 0}
    for g in groups:
        if cfg.pairs.chosen == "reference":  # the data's reference solution, not a sampled one
            pos = [{"text": g["reference"], "reason": "reference"}] if g.get("reference") else []
        else:
            pos = [r for r in g["responses"] if r["correct"] and not r["truncated"]]
        neg = [r for r in g["responses"] if not r["correct"] and (cfg.pairs.allow_truncated_rejected or not r["truncated"])]
        if not pos or not neg:
            stats["no_correct" if not pos else "no_incorrect"] += 1
            continue
        combos = [(a, b) for a in range(len(pos)) for b in range(len(neg))]
        for a, b in rng.sample(combos, min(cfg.pairs.pairs_per_prompt, len(combos))):
            pairs.append({"prompt": g["prompt"], "gold": g["gold"], "chosen": pos[a]["text"], "rejected": neg[b]["text"],
                          "chosen_reason": pos[a]["reason"], "rejected_reason": neg[b]["reason"]})
    return pairs, stats


def pairs_file(ctx: StageContext) -> Path:
    """pairs_from: an earlier distill or dpo stage's stages/<name>/pairs.jsonl, or a file path."""
    name = ctx.cfg.pairs_from
    if name in [s.name for s in ctx.recipe.stages]:
        src = ctx.run.stage(name) / "pairs.jsonl"
        if not src.is_file():
            raise FileNotFoundError(f"stage {ctx.cfg.name}: pairs_from '{name}': {src} not found; run stage '{name}' first")
        return src
    return Path(name)


def build_pairs(ctx: StageContext, tokenizer: Any) -> list[dict[str, Any]]:
    cfg, world = ctx.cfg, ctx.world
    out = ctx.run.stage(cfg.name) / "pairs.jsonl"
    if cfg.pairs_from:
        src = pairs_file(ctx)
        pairs = [json.loads(x) for x in src.read_text().split("\n") if x.strip()]
        world.print0(f"[{cfg.name}] reusing {len(pairs)} pairs from {src}")
    else:
        groups = judged_groups_from_policy(ctx, tokenizer) if cfg.pairs.source == "policy" else judged_groups_from_file(ctx)
        pairs, stats = make_pairs(groups, cfg, ctx.recipe.seed)
        world.print0(f"[{cfg.name}] {len(pairs)} pairs from {stats['prompts']} prompts "
                     f"(dropped: {stats['no_correct']} with no correct, {stats['no_incorrect']} with no incorrect response)")
    if world.is_main:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    if not pairs:
        raise UserError(f"stage {cfg.name}: no preference pairs (every prompt had only correct or only incorrect "
                         "responses); sample more rollouts per prompt, or use harder/easier prompts")
    return pairs


def divergent_step(chosen: Example, rejected: Example, ends_step) -> tuple[Example, Example] | None:
    """Step-DPO's span: keep the loss only on the step where the two responses first differ, from the
    first differing token to the end of its line (`ends_step(token_id)`: the token holds a newline or
    ends the turn), on each side. Tokens before it are shared (same context, same tokens: their
    log-probs cancel in the margin) and tokens after it are left alone, so a rejected response's steps
    after its first error (often faithful copies of the wrong value) are not pushed down.
    None when a side has no token in that step (one response is a prefix of the other)."""
    a, b = chosen.targets, rejected.targets
    start = next(t for t, x in enumerate(a) if x != IGNORE)  # the prompt is shared: same start on both sides
    d = next((t for t in range(start, max(len(a), len(b)))
              if t >= len(a) or t >= len(b) or a[t] != b[t]), None)

    def keep(ex: Example) -> Example | None:
        if d is None or d >= len(ex.targets) or ex.targets[d] == IGNORE:
            return None
        e = d
        while e + 1 < len(ex.targets) and ex.targets[e + 1] != IGNORE and not ends_step(ex.targets[e]):
            e += 1
        targets = [x if d <= t <= e else IGNORE for t, x in enumerate(ex.targets)]
        return Example(ex.input_ids, targets, ex.position_ids)

    c, r = keep(chosen), keep(rejected)
    return None if c is None or r is None else (c, r)


def tokenize_pairs(ctx: StageContext, tokenizer: Any, pairs: list[dict[str, Any]]) -> list[tuple[Example, Example]]:
    cfg = ctx.cfg
    out, too_long, no_step = [], 0, 0
    ends: dict[int, bool] = {}

    def ends_step(tok: int) -> bool:
        if tok not in ends:
            ends[tok] = tok == tokenizer.eos_token_id or "\n" in tokenizer.decode([tok])
        return ends[tok]

    for p in pairs:
        chosen = sft_example(tokenizer, {"prompt": p["prompt"], "response": p["chosen"]}, cfg.system_prompt)
        rejected = sft_example(tokenizer, {"prompt": p["prompt"], "response": p["rejected"]}, cfg.system_prompt)
        if max(len(chosen), len(rejected)) > cfg.pairs.max_len:
            too_long += 1
            continue
        if cfg.span == "divergent_step":
            step = divergent_step(chosen, rejected, ends_step)
            if step is None:
                no_step += 1
                continue
            chosen, rejected = step
        out.append((chosen, rejected))
    if too_long:
        ctx.world.print0(f"[{cfg.name}] dropped {too_long} pairs longer than pairs.max_len={cfg.pairs.max_len}")
    if no_step:
        ctx.world.print0(f"[{cfg.name}] dropped {no_step} pairs with no divergent step on one side (span: divergent_step)")
    if not out:
        raise UserError(f"stage {cfg.name}: no pair fits pairs.max_len={cfg.pairs.max_len}")
    return out


# ------------------------------------------------------------------------------------ training
def sequence_logps(scorer, examples: list[Example], pad_id: int, device) -> torch.Tensor:
    """Summed log-prob of each example's response tokens (its loss mask), scored by a TokenScorer
    (the LM head in chunks). [B]."""
    batch = collate(examples, pad_id, packed=False)
    targets = batch.pop("targets").to(device)
    return -token_nll(scorer, targets, **{k: v.to(device) for k, v in batch.items()}, use_cache=False).sum(-1)


def pair_logps(scorer, items: list[tuple[Example, Example]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) summed log-probs [B] each, in one forward of 2B sequences."""
    logps = sequence_logps(scorer, [c for c, _ in items] + [r for _, r in items], pad_id, device)
    return logps[: len(items)], logps[len(items):]


def pair_positions(items: list[tuple[Example, Example]]) -> int:
    """Token positions of one micro-batch of pairs: 2 rows per pair, right-padded to the longest side."""
    return padded_positions([max(len(c), len(r)) for c, r in items for _ in range(2)])


def pair_micro_batches(rows: list[int], items: list[tuple[Example, Example]], micro: int, gas: int,
                       budget: int | None) -> list[list[int]]:
    """Pair indices as micro-batches: `gas` slices of `micro` pairs, or (a token budget) pairs sorted by
    their longer side packed up to `budget` positions each (the caller pads the count across ranks)."""
    if not budget:
        return [rows[k * micro:(k + 1) * micro] for k in range(gas)]
    by_length = sorted(rows, key=lambda i: max(len(items[i][0]), len(items[i][1])))
    return pack_by_budget(by_length, budget, lambda part: pair_positions([items[i] for i in part]))


@torch.no_grad()
def reference_logps(ctx: StageContext, backend: Any, items: list[tuple[Example, Example]], pad_id: int) -> torch.Tensor:
    """[N, 2] reference log-probs of every pair, from the input weights (before any update). Every rank
    scores the same micro-batches so ZeRO-3's gathers stay collective."""
    micro, out = ctx.micro_batch_size, torch.zeros(len(items), 2)
    rows = list(range(len(items)))
    backend.train(False)
    for part in pair_micro_batches(rows, items, micro, math.ceil(len(items) / micro), ctx.cfg.max_tokens_per_micro_batch):
        chosen, rejected = pair_logps(backend.scorer, [items[i] for i in part], pad_id, backend.device)
        out[part] = torch.stack([chosen, rejected], -1).cpu()
    backend.train(True)
    return out


def main(ctx: StageContext) -> StageResult:
    cfg, world = ctx.cfg, ctx.world
    tokenizer, model = ctx.load_policy()
    pairs = build_pairs(ctx, tokenizer)
    items = tokenize_pairs(ctx, tokenizer, pairs)
    micro, gas, G = ctx.micro_batch_size, ctx.grad_accum, ctx.global_batch
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(items) / G))
    data_id = fingerprint([len(items), [c.input_ids[:32] for c, _ in items[:32]], G])
    pad = tokenizer.pad_token_id

    backend = ctx.wrap(model, total)
    with backend.adapter_disabled():  # LoRA: the base model is the reference (a no-op otherwise)
        ref = reference_logps(ctx, backend, items, pad)  # before resume: the input weights are the reference
    start = ctx.resume_from(backend, data_id)
    order = EpochOrder(len(items), ctx.recipe.seed)
    world.print0(f"[{cfg.name}] {len(items)} pairs, global batch {G} pairs, beta {cfg.beta}, loss {cfg.loss}; "
                 f"steps {start}->{total}")
    bar = progress(total, cfg.name, enabled=world.is_main, initial=start)
    history = ctx.history(start)  # the steps before a resume: the summary covers the whole stage
    for step in range(start, total):
        t0 = time.perf_counter()
        rows = order.global_batch(step, G)
        mine = rows[world.rank * micro * gas:(world.rank + 1) * micro * gas]
        sums = torch.zeros(5)  # loss, margin, chosen reward, rejected reward, accuracy (sums over pairs)
        parts = pair_micro_batches(mine, items, micro, gas, cfg.max_tokens_per_micro_batch)
        parts = pad_parts(parts, world.all_reduce_max(len(parts)))
        backend.accumulate(len(parts))
        for idx in parts:
            if not idx:  # token budget: another rank has more micro-batches; ZeRO-3 gathers are collective
                pol_w, pol_l = pair_logps(backend.scorer, [items[mine[0]]], pad, backend.device)
                backend.backward(0.0 * (pol_w + pol_l).sum())
                continue
            pol_w, pol_l = pair_logps(backend.scorer, [items[i] for i in idx], pad, backend.device)
            r = ref[idx].to(backend.device)
            n_w = torch.tensor([float(items[i][0].n_loss_tokens) for i in idx], device=backend.device)
            losses, m = dpo_loss(cfg.loss, pol_w, pol_l, r[:, 0], r[:, 1], cfg.beta, cfg.label_smoothing,
                                 nll_coef=cfg.nll_coef, chosen_tokens=n_w)
            backend.backward(losses.sum() / G)  # mean over the global batch of pairs
            sums += torch.tensor([float(losses.detach().sum()), float(m["margin"].sum()), float(m["reward_chosen"].sum()),
                                  float(m["reward_rejected"].sum()), float(m["accuracy"].sum())])
        stats = backend.step()
        means = [world.all_reduce_sum(float(x)) / G for x in sums]
        metrics = dict(zip(("loss", "margin", "reward_chosen", "reward_rejected", "accuracy"), means, strict=True))
        metrics.update(lr=stats.lr, grad_norm=stats.grad_norm, step_seconds=time.perf_counter() - t0)
        ctx.tracker.log(cfg.name, step + 1, metrics)
        history.append(metrics)
        bar.update(1)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", margin=f"{metrics['margin']:.3f}", refresh=False)
        ctx.after_step(backend, step + 1, total, data_id)
    bar.close()
    final = ctx.finish(backend, tokenizer, start, total, data_id)
    k = max(1, len(history) // 4)
    summary = {"pairs": len(items)}
    if history:
        summary.update(margin_first=sum(h["margin"] for h in history[:k]) / k,
                       margin_last=sum(h["margin"] for h in history[-k:]) / k,
                       pair_accuracy_last=sum(h["accuracy"] for h in history[-k:]) / k,
                       loss_last=history[-1]["loss"])
    return StageResult(steps=total, metrics=summary, output=str(final))
