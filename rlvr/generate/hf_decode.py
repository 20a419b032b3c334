"""The HF backend's own decode loop for Llama-family decoders (Qwen2, Llama, Mistral): the prompt is
prefilled by the transformers model itself, then every new token goes through explicit tensor ops on
the model's own parameters with a preallocated KV cache, and is sampled in the same loop.

Why: for one new token per row, transformers' `generate` spends most of its time outside the matrix
products (mask building, cache concatenation, rotary per step, ~30 module calls per layer, logits
processors, `torch.multinomial`'s one exponential draw per vocabulary entry). This loop does the same
arithmetic in a few ops per layer: on the tiny CPU model it is ~2x faster per decode step (bench/README.md,
"RL step vs TRL"). Its logits equal the HF model's forward on the same sequence to ~1e-6 in fp32
(tests/generate/test_hf_decode.py checks them token by token), so nothing about the policy changes.

Anything the loop does not reproduce exactly (another architecture, sliding-window layers, RoPE types
that depend on the sequence length, a non-SiLU MLP) is refused by `unsupported_reason`, and the
generator uses transformers' `generate` instead.

Sampling definition, the same as vLLM's and `generate`'s: scores = logits / T, then top-k, then top-p
(HF's warpers' order and tie rules), then one draw from softmax(scores). The reported log-prob is
log_softmax(scores)[token], the "processed" log-prob. The draw is an inverse-CDF sample with one uniform
number per row (a seeded `torch.Generator`), not one exponential per vocabulary entry.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlvr.models.load import has_sliding_window

SUPPORTED_MODEL_TYPES = ("qwen2", "llama", "mistral")
STATIC_ROPE_TYPES = ("default", "linear", "llama3", "yarn")  # cos/sin depend on the position only


def unsupported_reason(model: torch.nn.Module) -> str | None:
    """None when `decode` reproduces this model's forward; otherwise why not (then use `generate`)."""
    cfg = model.config
    if cfg.model_type not in SUPPORTED_MODEL_TYPES:
        return f"model_type {cfg.model_type!r} (supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"hidden_act {cfg.hidden_act!r} (supported: silu)"
    if has_sliding_window(cfg):
        return "sliding-window attention layers"
    rope = (getattr(cfg, "rope_parameters", None) or {}).get("rope_type", "default")
    if rope not in STATIC_ROPE_TYPES:
        return f"rope_type {rope!r} (its cos/sin depend on the sequence length; supported: {', '.join(STATIC_ROPE_TYPES)})"
    inner = getattr(model, "model", None)
    needed = ("embed_tokens", "layers", "norm", "rotary_emb")
    if inner is None or any(not hasattr(inner, n) for n in needed) or not hasattr(model, "lm_head"):
        return "module layout is not model.{embed_tokens,layers,norm,rotary_emb} + lm_head"
    attn_parts = ("q_proj", "k_proj", "v_proj", "o_proj")
    for layer in inner.layers:
        if any(not hasattr(layer.self_attn, n) for n in attn_parts) or any(
                not hasattr(layer.mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
            return "a decoder layer without separate q/k/v/o and gate/up/down projections"
    return None


def filter_scores(scores: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """scores: [B, V] (already divided by the temperature) -> [B, V] with the tokens outside top-k, then
    outside the top-p nucleus, set to -inf. Same rules as transformers' TopKLogitsWarper and
    TopPLogitsWarper (and vLLM's sampler): top-k keeps every token tied with the k-th score; top-p sorts
    ascending and drops the tokens whose cumulative probability is <= 1 - top_p, always keeping the
    most probable one."""
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[..., -1:]  # [B, 1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, dim=-1)  # ascending
        cumulative = sorted_scores.softmax(-1).cumsum(-1)
        drop_sorted = cumulative <= 1 - top_p
        drop_sorted[..., -1] = False
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


def sample(logp: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """logp: [B, V] log-probabilities (-inf allowed) -> [B] token ids, one draw each from exp(logp).
    Inverse CDF: u ~ U(0, 1] scaled by the row's total mass, the first index whose cumulative mass
    reaches u. u > 0 keeps zero-probability tokens (equal cumulative mass to their left neighbour) from
    ever being chosen."""
    cdf = logp.exp().cumsum(-1)  # [B, V]
    u = 1.0 - torch.rand(logp.shape[0], 1, generator=generator, device=logp.device, dtype=cdf.dtype)
    return torch.searchsorted(cdf, u * cdf[:, -1:]).clamp_(max=logp.shape[1] - 1)[:, 0]


def _rms(x: torch.Tensor, norm: torch.nn.Module) -> torch.Tensor:
    """The HF RMSNorm: normalise in fp32, cast back, then scale by the weight."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * h.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on x: [B, H, D] with cos/sin: [B, 1, D] (rotate_half convention)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin


@torch.no_grad()
def decode(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, *, max_new_tokens: int,
           temperature: float, top_k: int, top_p: float, stop_ids: set[int], pad_id: int,
           generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """ids, mask: [B, P] left-padded prompts and their attention mask. Returns (tokens [B, S], logprobs
    [B, S]) with S <= max_new_tokens: S stops early once every row has emitted a stop id; a row's
    positions after its stop id hold pad_id and log-prob 0. temperature <= 0: greedy, with the
    log-probs of the unscaled distribution (as `generate` and vLLM report them). Rows that stopped
    leave the batch (and the KV cache) once they are a quarter of it, so the batch shrinks as it runs."""
    from transformers import DynamicCache

    if max_new_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_new_tokens}")
    inner, cfg = model.model, model.config
    B, P = ids.shape
    n_layers = len(inner.layers)
    attn0 = inner.layers[0].self_attn
    head_dim = attn0.head_dim
    kv_heads = cfg.num_key_value_heads
    groups = cfg.num_attention_heads // kv_heads
    device, dtype = ids.device, inner.embed_tokens.weight.dtype
    greedy = temperature <= 0
    scale_t = 1.0 if greedy else temperature
    stops = torch.tensor(sorted(stop_ids), device=device)

    # prefill by the model itself, once per distinct prompt (the n samples of a request share it); its
    # cache moves into one preallocated [layers, B, kv, P + S, D] pair
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [B, P]: left padding does not shift positions
    distinct, row_of = torch.unique(torch.cat([ids, mask], 1), dim=0, return_inverse=True)  # [U, 2P], [B]
    first = torch.full((len(distinct),), B, device=device).scatter_reduce_(
        0, row_of, torch.arange(B, device=device), reduce="amin")  # [U]: the first row with that prompt
    cache = DynamicCache(config=cfg)
    logits = model(input_ids=ids[first], attention_mask=mask[first], position_ids=positions[first],
                   past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1][row_of]  # [B, V]
    total = P + max_new_tokens
    keys = torch.zeros(n_layers, B, kv_heads, total, head_dim, device=device, dtype=dtype)
    values = torch.zeros_like(keys)
    for i, layer_cache in enumerate(cache.layers):
        keys[i, :, :, :P], values[i, :, :, :P] = layer_cache.keys[row_of], layer_cache.values[row_of]
    del cache
    valid = torch.zeros(B, total, dtype=torch.bool, device=device)  # [B, P + S]: key columns to attend to
    valid[:, :P] = mask.bool()
    cos_all, sin_all = inner.rotary_emb(keys[0, :, 0, :1], torch.arange(total, device=device)[None])  # [1, P+S, D]
    cos_all, sin_all = cos_all[0], sin_all[0]
    position = positions[:, -1] + 1  # [B]: the next token's position

    # rows that have stopped keep decoding (their output is ignored) until a quarter of the batch has
    # stopped; then every per-row tensor, the KV cache included, keeps only the running rows
    rows = torch.arange(B, device=device)  # [b]: the output row of each row still in the batch
    done = torch.zeros(B, dtype=torch.bool, device=device)  # [b]
    out_tokens = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
    out_logp = torch.zeros(B, max_new_tokens, device=device)
    for step in range(max_new_tokens):
        scores = logits.float() / scale_t
        if not greedy:
            scores = filter_scores(scores, top_k, top_p)
        logp = torch.log_softmax(scores, -1)  # [b, V]
        token = logp.argmax(-1) if greedy else sample(logp, generator)  # [b]
        out_tokens[rows, step] = token.masked_fill(done, pad_id)
        out_logp[rows, step] = logp.gather(-1, token[:, None])[:, 0].masked_fill(done, 0.0)
        done |= torch.isin(token, stops)
        n_done = int(done.sum())
        if step == max_new_tokens - 1 or n_done == len(rows):
            break
        if 4 * n_done >= len(rows):
            keep = ~done
            rows, token, position, done = rows[keep], token[keep], position[keep], done[keep]
            keys, values, valid = keys[:, keep], values[:, keep], valid[keep]
        b = len(rows)
        col = P + step  # the cache column of the token just sampled
        valid[:, col] = True
        x = inner.embed_tokens.weight[token]  # [b, H]
        cos, sin = cos_all[position][:, None], sin_all[position][:, None]  # [b, 1, D]
        for i, layer in enumerate(inner.layers):
            attn, mlp = layer.self_attn, layer.mlp
            h = _rms(x, layer.input_layernorm)
            q = F.linear(h, attn.q_proj.weight, attn.q_proj.bias).view(b, kv_heads * groups, head_dim)
            k = F.linear(h, attn.k_proj.weight, attn.k_proj.bias).view(b, kv_heads, head_dim)
            keys[i, :, :, col] = _rotate(k, cos, sin)
            values[i, :, :, col] = F.linear(h, attn.v_proj.weight, attn.v_proj.bias).view(b, kv_heads, head_dim)
            # grouped-query attention without repeating K/V: a kv head's query heads act as its G query rows
            q = _rotate(q, cos, sin).view(b, kv_heads, groups, head_dim)
            o = F.scaled_dot_product_attention(q, keys[i, :, :, :col + 1], values[i, :, :, :col + 1],
                                               attn_mask=valid[:, None, None, :col + 1], scale=attn.scaling)
            x = x + F.linear(o.reshape(b, -1), attn.o_proj.weight, attn.o_proj.bias)
            h = _rms(x, layer.post_attention_layernorm)
            x = x + F.linear(F.silu(F.linear(h, mlp.gate_proj.weight, mlp.gate_proj.bias))
                             * F.linear(h, mlp.up_proj.weight, mlp.up_proj.bias), mlp.down_proj.weight, mlp.down_proj.bias)
        logits = F.linear(_rms(x, inner.norm), model.lm_head.weight, model.lm_head.bias)
        position = position + 1
    return out_tokens[:, :step + 1], out_logp[:, :step + 1]
