"""How the trainer lays out a micro-batch of rollouts to score their completion tokens, and how a
mini-batch is cut into micro-batches. The layout and the cut change only the cost, never the values:
log-probs, entropies and gradients equal each rollout's own unpadded forward (tests/test_rlvr.py), and
the losses are normalised by the whole step's counts.

A row is anything with `prompt_ids` and `completion_ids` (the RL stage's Rollout). The scorer is a
rlvr.models.scoring.TokenScorer: the model's forward with its LM head in chunks (rlvr.rl.logprobs).
Shapes: B rows, P longest prompt, T longest completion, H hidden size.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from rlvr.rl.batching import pack_by_budget


class Row(Protocol):
    prompt_ids: list[int]
    completion_ids: list[int]


def chunks(items: list[Any], n_chunks: int, size: int) -> list[list[Any]]:
    """Exactly n_chunks consecutive chunks of at most `size` items (trailing ones may be empty), so
    every rank runs the same number of forwards/backwards (ZeRO-3 gathers are collective)."""
    return [items[i * size:(i + 1) * size] for i in range(n_chunks)]


def forward_response(scorer, batch: list[Row], pad_id: int, device, temp: float, with_entropy: bool,
                     entropy_grad: bool = True, share_prompts: bool = False):
    """Trainer log-probs (and entropy) of each rollout's completion tokens, from a TokenScorer
    (rlvr.models.scoring: the LM head applied in chunks, never [B, T, V] logits at once).
    Returns logp [B,T], mask [B,T], entropy [B,T] or None; T = longest completion in the chunk.
    The layout is `score_padded`, or `score_shared` when share_prompts is set and the batch has at most
    half as many distinct prompts as rows (same log-probs and gradients, less compute; with fewer
    repeats the second forward costs more than it saves).
    `entropy_grad=False` computes the entropy without a graph (when it is only logged)."""
    distinct = len({tuple(r.prompt_ids) for r in batch})
    layout = score_shared if share_prompts and worth_sharing(distinct, len(batch)) else score_padded
    return layout(scorer, batch, pad_id, device, temp, with_entropy, entropy_grad)


def score_padded(scorer, batch: list[Row], pad_id: int, device, temp: float, with_entropy: bool,
                 entropy_grad: bool):
    """One forward over [B, P+T]: prompts left-padded to the longest prompt P, completions right-padded
    to T, so every row's completion starts at column P and the positions predicting it are columns
    P-1 .. P+T-2 of every row. The LM head scores those T columns only (`logits_to_keep`), with
    explicit position ids, so the padding shifts no position. Returns logp [B,T], mask [B,T] (fp32),
    entropy [B,T] or None."""
    ids, attn, pos, P, T = padded_inputs(batch, pad_id, device)
    keep = torch.arange(P - 1, P + T - 1, device=device)
    logp, ent = scorer(ids[:, P:], temperature=temp, with_entropy=with_entropy, entropy_grad=entropy_grad,
                       input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False, logits_to_keep=keep)
    return logp, attn[:, P:].to(torch.float32), ent


def padded_inputs(batch: list[Row], pad_id: int, device):
    """`score_padded`'s layout: (ids [B, P+T], attention mask [B, P+T], position ids [B, P+T], P, T), prompts
    left-padded to the longest prompt P, completions right-padded to T, every completion starting at column P."""
    P, T = max(len(r.prompt_ids) for r in batch), max(len(r.completion_ids) for r in batch)
    ids = [[pad_id] * (P - len(r.prompt_ids)) + r.prompt_ids + r.completion_ids + [pad_id] * (T - len(r.completion_ids))
           for r in batch]
    attn = [[0] * (P - len(r.prompt_ids)) + [1] * (len(r.prompt_ids) + len(r.completion_ids))
            + [0] * (T - len(r.completion_ids)) for r in batch]
    ids, attn = torch.tensor(ids, device=device), torch.tensor(attn, device=device)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    return ids, attn, pos, P, T


def forward_values(forward, batch: list[Row], pad_id: int, device):
    """A value model's V(s_t) for each completion token t: the state *before* the token, i.e. the value read
    from the hidden state at the position that predicts it, columns P-1 .. P+T-2 of `score_padded`'s layout
    (verl's critic: `values[:, -response_length - 1 : -1]`). `forward` runs the value model (a backend's
    forward, or the module) and returns values at every position [B, P+T]. Returns (values [B,T] fp32, with a
    graph when grad is on; mask [B,T] fp32). No prompt sharing: the critic's forward is the padded one."""
    ids, attn, pos, P, T = padded_inputs(batch, pad_id, device)
    values = forward(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False)  # [B, P+T]
    return values[:, P - 1:P + T - 1].float(), attn[:, P:].to(torch.float32)


def score_shared(scorer, batch: list[Row], pad_id: int, device, temp: float, with_entropy: bool,
                 entropy_grad: bool):
    """The same scores as `score_padded`, with each distinct prompt run through the model once (the n
    rollouts of a group, or every row of a 1-shot batch, share theirs). Two forwards, both returning
    final hidden states (the scorer's `hidden`), which are assembled per row and then scored in chunks:
    1. the U distinct prompts [U, P], left-padded, returning their key/value cache and the hidden state
       at the last prompt position (which predicts each completion's first token);
    2. the completions [B, T-1] (all but the last token), attending to their prompt's cached keys and
       values, selected per row by index, so gradients flow back into the one shared prompt forward.
    Needs the model's KV cache in training mode (transformers drops it under gradient checkpointing)
    and the head's full weight outside forward (not ZeRO-3): rlvr.models.scoring.can_share_prompts checks both.
    Returns logp [B,T], mask [B,T] (fp32), entropy [B,T] or None."""
    from transformers import DynamicCache

    index: dict[tuple[int, ...], int] = {}
    row_prompt = torch.tensor([index.setdefault(tuple(r.prompt_ids), len(index)) for r in batch], device=device)  # [B]
    prompts = list(index)
    P, T = max(map(len, prompts)), max(len(r.completion_ids) for r in batch)
    p_ids = torch.tensor([[pad_id] * (P - len(p)) + list(p) for p in prompts], device=device)  # [U,P]
    p_attn = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts], device=device)  # [U,P]
    p_pos = (p_attn.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    first = scorer.hidden(input_ids=p_ids, attention_mask=p_attn, position_ids=p_pos, past_key_values=cache,
                          use_cache=True, logits_to_keep=1).logits[:, -1]  # [U,H]
    tokens = torch.tensor([r.completion_ids + [pad_id] * (T - len(r.completion_ids)) for r in batch], device=device)
    mask = torch.tensor([[1] * len(r.completion_ids) + [0] * (T - len(r.completion_ids)) for r in batch], device=device)
    hidden = first[row_prompt].unsqueeze(1)  # [B,1,H]
    if T > 1:
        for layer in cache.layers:  # [U, kv, P, D] -> [B, kv, P, D]; the gradient sums back per prompt
            layer.keys, layer.values = layer.keys[row_prompt], layer.values[row_prompt]
        attn = torch.cat([p_attn[row_prompt], mask[:, :-1]], dim=1)  # [B, P+T-1]
        pos = p_pos[row_prompt][:, -1:] + 1 + torch.arange(T - 1, device=device)  # [B, T-1]
        rest = scorer.hidden(input_ids=tokens[:, :-1], attention_mask=attn, position_ids=pos, past_key_values=cache,
                             use_cache=True).logits  # [B, T-1, H]: position t predicts completion token t+1
        hidden = torch.cat([hidden, rest], dim=1)
    logp, ent = scorer.score_hidden(hidden, tokens, temperature=temp, with_entropy=with_entropy,
                                    entropy_grad=entropy_grad)
    return logp, mask.to(torch.float32), ent


def worth_sharing(distinct_prompts: int, rows: int) -> bool:
    return 2 * distinct_prompts <= rows


def forward_positions(part: list[Row], share: bool) -> int:
    """Token positions the trainer's forwards process for one micro-batch: rows x (P + T) padded, or with
    prompt sharing (worth it) U x P prompt positions plus rows x T completion positions."""
    if not part:
        return 0
    prompts = {tuple(r.prompt_ids) for r in part}
    P, T = max(map(len, prompts)), max(len(r.completion_ids) for r in part)
    return len(prompts) * P + len(part) * T if share and worth_sharing(len(prompts), len(part)) else len(part) * (P + T)


def micro_batch_splitter(budget: int | None, micro: int, n_chunks: int, share: bool):
    """How an ordered list of rollouts is cut into micro-batches: at most `budget` forward positions each
    (max_tokens_per_micro_batch; rlvr.rl.batching.pack_by_budget, their number varies), or exactly
    `n_chunks` of `micro` rows (trailing ones may be empty)."""
    if budget:
        return lambda order: pack_by_budget(order, budget, lambda p: forward_positions(p, share))
    return lambda order: chunks(order, n_chunks, micro)


def micro_batches(rollouts: list[Row], split, share: bool) -> list[list[Row]]:
    """This rank's micro-batches of `rollouts`, cut by `split` from the cheaper of two orders. The loss of
    a micro-batch is normalised by the whole mini-batch's counts (n_tokens, n_seqs), so the split changes
    only the cost, never the update. The candidates, the one whose forwards process fewer token positions
    winning (ties go to the length order):
    - by length (completion, then prompt): rollouts of like width are padded together;
    - with prompt sharing possible, by prompt: a group's rollouts stay together and share one prompt
      forward, groups ordered by their longest completion."""
    by_length = sorted(rollouts, key=lambda r: (len(r.completion_ids), len(r.prompt_ids)))
    if not share:
        return split(by_length)
    longest: dict[tuple[int, ...], int] = {}
    for r in rollouts:
        key = tuple(r.prompt_ids)
        longest[key] = max(longest.get(key, 0), len(r.completion_ids))
    by_prompt = sorted(rollouts, key=lambda r: (longest[tuple(r.prompt_ids)], tuple(r.prompt_ids), len(r.completion_ids)))
    return min((split(by_length), split(by_prompt)), key=lambda parts: sum(forward_positions(p, share) for p in parts))


def pad_rows(rows: list[torch.Tensor | None], T: int, device) -> torch.Tensor:
    """Per-row values [n_i] (None: zeros) right-padded with zeros into [B, T]."""
    out = torch.zeros((len(rows), T), device=device)
    for b, x in enumerate(rows):
        if x is not None:
            out[b, : len(x)] = x.to(device)
    return out
