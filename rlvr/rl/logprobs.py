"""Per-token log-probs and entropy from hidden states, without full-vocabulary logits.

Every place that scores tokens (the RL update and its old/reference log-probs, DPO, SFT and
mid-training NLL, the weight-sync probe) needs, per position, log p(token) and sometimes the entropy
of the temperature-scaled distribution. Computing them from `[B, T, V]` logits costs several fp32
copies of that tensor (logits, log-softmax, probabilities, and what backward keeps): about 75 GB at
1-shot RLVR's micro-batch (8 x 3,072 tokens, V = 151,936). Here the LM head is applied to `chunk`
positions at a time, in forward and again in backward (recomputed, never stored), so no more than one
chunk's logits exist at once. verl, TRL and prime-rl compute these quantities in chunks or fused
kernels for the same reason.

Shapes: N positions (any leading shape, flattened), H hidden size, V vocabulary rows of the LM head.
With z = (hidden @ W^T + b) / temperature (logits in the weight's dtype, then fp32, as the unchunked
path computes them):

    logp_n = z_n[target_n] - logsumexp(z_n)                      log-prob of the target token
    H_n    = -sum_v p_nv log p_nv,  p = softmax(z_n)              entropy of the scaled distribution

Gradients, per position (derived from the two definitions):

    d logp / dz_v = 1[v = target] - p_v
    d H    / dz_v = -p_v (log p_v + H)

and dz/dhidden = W / temperature, dz/dW = hidden / temperature. The weight's gradient is accumulated
over chunks in fp32 (a bf16 running sum would round once per chunk).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def full_vocab_token_scores(logits: Tensor, targets: Tensor, temperature: float = 1.0, with_entropy: bool = False,
                            entropy_grad: bool = True) -> tuple[Tensor, Tensor | None]:
    """The unchunked reference: one fp32 log_softmax over the whole [..., V] logits serves both.
    logits [..., V], targets [...] -> (logp [...], entropy [...] or None), fp32. Entropy as
    -sum p log p (no logsumexp - sum p z cancellation); `entropy_grad=False` computes it without a graph."""
    logp_all = torch.log_softmax(_at_least_fp32(logits) / temperature, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    ent = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            ent = -(logp_all.exp() * logp_all).sum(-1)
    return logp, ent


def _at_least_fp32(x: Tensor) -> Tensor:
    """bf16/fp16 -> fp32; fp32 and fp64 unchanged (fp64 lets tests check the algebra exactly)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _chunk_logits(hidden: Tensor, weight: Tensor, bias: Tensor | None, temperature: float) -> Tensor:
    """z = linear(hidden, W, b) in the weight's dtype, then fp32 / temperature. [c,H] -> [c,V]."""
    z = _at_least_fp32(F.linear(hidden, weight, bias))
    return z.div_(temperature) if temperature != 1.0 else z


class _ChunkedTokenScores(torch.autograd.Function):
    """(hidden [N,H], weight [V,H], bias [V] | None, targets [N]) -> (logp [N], entropy [N]), fp32
    (fp64 for an fp64 weight). Saves hidden, targets and per position the logits' max, the shifted
    logsumexp and the entropy ([N] each); backward recomputes each chunk's logits."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, chunk, with_entropy, entropy_grad):
        N = hidden.shape[0]
        dtype = torch.promote_types(weight.dtype, torch.float32)
        logp = torch.empty(N, dtype=dtype, device=hidden.device)
        zmax, lse = torch.empty_like(logp), torch.empty_like(logp)
        ent = torch.zeros_like(logp)
        for s in range(0, N, chunk):
            z = _chunk_logits(hidden[s:s + chunk], weight, bias, temperature)  # [c,V]
            # log p = (z - max) - log sum exp(z - max): log_softmax's own order of operations
            m = z.amax(dim=-1)  # [c]
            z.sub_(m[:, None])
            c = torch.logsumexp(z, dim=-1)  # [c]
            zmax[s:s + chunk], lse[s:s + chunk] = m, c
            logp[s:s + chunk] = z.gather(-1, targets[s:s + chunk, None]).squeeze(-1) - c
            if with_entropy or N <= chunk:
                z.sub_(c[:, None])  # log p, in place
            if with_entropy:
                ent[s:s + chunk] = -torch.linalg.vecdot(z.exp(), z)
        # one chunk: keep its log p for backward instead of recomputing it (still one chunk of logits)
        kept = z if N <= chunk else None
        del z
        ctx.save_for_backward(hidden, weight, bias, targets, zmax, lse, ent, kept)
        ctx.temperature, ctx.chunk = temperature, chunk
        ctx.set_materialize_grads(False)
        if not (with_entropy and entropy_grad):
            ctx.mark_non_differentiable(ent)
        return logp, ent

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        hidden, weight, bias, targets, zmax, lse, ent, kept = ctx.saved_tensors
        temp, chunk = ctx.temperature, ctx.chunk
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        if g_logp is None and g_ent is None:
            return None, None, None, None, None, None, None, None
        N = hidden.shape[0]
        g_hidden = torch.empty_like(hidden) if need_h else None
        one_chunk = N <= chunk
        # a single chunk writes the weight's gradient once, in its dtype; several accumulate in fp32
        acc_dtype = weight.dtype if one_chunk else torch.promote_types(weight.dtype, torch.float32)
        g_weight = None
        g_bias = torch.zeros(weight.shape[0], dtype=acc_dtype, device=weight.device) if need_b else None
        for s in range(0, N, chunk):
            e = min(N, s + chunk)
            h = hidden[s:e]
            if kept is not None:  # the single chunk's log p, saved by forward (read, never written: see below)
                logp_all = kept
            else:
                logp_all = _chunk_logits(h, weight, bias, temp).sub_(zmax[s:e, None]).sub_(lse[s:e, None])  # [c,V] log p
            p = logp_all.exp()  # [c,V]
            g = None  # dL/dz [c,V], built in the buffers already allocated
            if g_ent is not None:
                g = (logp_all + ent[s:e, None]).mul_(p).mul_(-g_ent[s:e, None])  # -p (log p + H) g_H
            if g_logp is not None:
                gl = g_logp[s:e, None]
                g = p.mul_(-gl) if g is None else g.sub_(p.mul_(gl))  # - p g_logp
                g.scatter_add_(-1, targets[s:e, None], gl)  # + 1[v = target] g_logp
            del p, logp_all
            if temp != 1.0:
                g.div_(temp)
            g_lin = g.to(weight.dtype)  # the gradient reaching linear()'s output, as autograd's .float() cast gives it
            if need_h:
                g_hidden[s:e] = g_lin @ weight
            if need_w:
                part = g_lin.t() @ h  # [V,H]
                if g_weight is None:
                    g_weight = part.to(acc_dtype)
                else:
                    g_weight += part
            if need_b:
                g_bias += g_lin.to(acc_dtype).sum(0)
            del g, g_lin
        if g_weight is not None:
            g_weight = g_weight.to(weight.dtype)
        if g_bias is not None:
            g_bias = g_bias.to(bias.dtype)
        return g_hidden, g_weight, g_bias, None, None, None, None, None


def chunked_token_scores(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, *,
                         temperature: float = 1.0, chunk: int = 1024, with_entropy: bool = False,
                         entropy_grad: bool = True) -> tuple[Tensor, Tensor | None]:
    """Log-probs of `targets` (and the entropy) under softmax((hidden @ W^T + b) / temperature),
    `chunk` positions at a time. hidden [..., H], weight [V, H], bias [V] or None, targets [...]
    (long, values in [0, V)) -> (logp [...], entropy [...] or None), fp32. Values and gradients
    equal `full_vocab_token_scores(F.linear(hidden, weight, bias), targets, ...)` (to fp32 rounding);
    peak memory is a few fp32 [chunk, V] buffers instead of several [..., V] ones.
    `entropy_grad=False` returns the entropy without a graph (when it is only logged)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    lead = targets.shape
    h = hidden.reshape(-1, hidden.shape[-1])
    t = targets.reshape(-1)
    logp, ent = _ChunkedTokenScores.apply(h, weight, bias, t, float(temperature), int(chunk), with_entropy,
                                          entropy_grad)
    return logp.reshape(lead), (ent.reshape(lead) if with_entropy else None)
