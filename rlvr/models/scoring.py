"""Scoring tokens through a model's own forward, without full-vocabulary logits.

A Hugging Face causal LM ends with `logits = self.lm_head(hidden_states[:, keep])`. `install_scoring_head`
turns that `lm_head` (an `nn.Linear`) into a `ScoringHead`: the same module object with the same
parameters (so names, tied embeddings, DeepSpeed's hooks and the weight sync are untouched) whose
forward, while a scoring request is active, returns per-position (log p(target), entropy) computed by
`rlvr.rl.logprobs.chunked_token_scores` instead of `[B, T, V]` logits. Because the scoring runs inside
the head's own forward, ZeRO-3 gathers the head's weight as it does for any layer: once for the
forward of a micro-batch and once for its backward, never once per chunk.

`TokenScorer` is what stages call: `scorer(targets, temperature=..., with_entropy=..., **model_inputs)
-> (logp, entropy)`. With `chunk == 0` the head computes the full logits and one fp32 log_softmax (the
path before chunking, kept for comparison and for the memory benchmark). Models whose head is not a
plain linear layer, or that post-process logits (soft-capping, logit scale), fall back to the full
logits with the reason in `TokenScorer.fallback`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlvr.rl.logprobs import chunked_token_scores, full_vocab_token_scores


@dataclass
class _Request:
    targets: Tensor | None  # [B, T] matching the positions the model keeps; None: return the hidden states
    temperature: float
    chunk: int
    with_entropy: bool
    entropy_grad: bool


def score_hidden(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, *, temperature: float,
                 chunk: int, with_entropy: bool, entropy_grad: bool) -> tuple[Tensor, Tensor | None]:
    """(log p(targets), entropy) from final hidden states [..., H] and the LM head: in chunks of
    `chunk` positions, or (chunk 0) from the full fp32 logits with one log_softmax."""
    if chunk:
        return chunked_token_scores(hidden, weight, bias, targets, temperature=temperature, chunk=chunk,
                                    with_entropy=with_entropy, entropy_grad=entropy_grad)
    return full_vocab_token_scores(F.linear(hidden, weight, bias), targets, temperature, with_entropy, entropy_grad)


class ScoringHead(nn.Linear):
    """An `nn.Linear` LM head that, inside `scoring(...)`, returns scores instead of logits:
    [..., 2] = (log p(target), entropy or 0), fp32; with `targets=None` it returns its input (the final
    hidden states). Outside a request it is the plain linear layer (generation, user code)."""

    _request: _Request | None = None

    def forward(self, hidden: Tensor) -> Tensor:
        req = self._request
        if req is None:
            return super().forward(hidden)
        if req.targets is None:
            return hidden
        logp, ent = score_hidden(hidden, self.weight, self.bias, req.targets, temperature=req.temperature,
                                 chunk=req.chunk, with_entropy=req.with_entropy, entropy_grad=req.entropy_grad)
        return torch.stack([logp, ent if ent is not None else torch.zeros_like(logp)], dim=-1)

    @contextlib.contextmanager
    def scoring(self, request: _Request) -> Iterator[None]:
        self._request = request
        try:
            yield
        finally:
            self._request = None


def scoring_head_support(model: nn.Module) -> str | None:
    """None when `install_scoring_head` can take over the model's LM head, else the reason it cannot."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if isinstance(head, ScoringHead):
        return None
    if head is None or type(head) is not nn.Linear:
        return f"the LM head is {type(head).__name__}, not a plain nn.Linear"
    config = getattr(model, "config", None)
    for key in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
        if getattr(config, key, None) not in (None, 1, 1.0):
            return f"the model post-processes its logits ({key})"
    return None


def install_scoring_head(model: nn.Module) -> ScoringHead | None:
    """Make the model's LM head a ScoringHead in place (same object, same parameters; idempotent).
    Returns it, or None when the model is not supported (see scoring_head_support)."""
    if scoring_head_support(model) is not None:
        return None
    head = model.get_output_embeddings()
    head.__class__ = ScoringHead
    return head


@dataclass
class TokenScorer:
    """Scores tokens with a model: `forward` runs it (a DeepSpeed backend's forward, or the module), `head`
    is its ScoringHead (None: not supported, full logits), `chunk` the positions per LM-head chunk
    (0: full logits), `partitioned` whether the head's weight is a ZeRO-3 partition outside forward."""

    forward: Callable[..., Any]
    head: ScoringHead | None
    chunk: int
    partitioned: bool = False
    fallback: str | None = None

    def __call__(self, targets: Tensor, *, temperature: float = 1.0, with_entropy: bool = False,
                 entropy_grad: bool = True, **inputs: Any) -> tuple[Tensor, Tensor | None]:
        """Run the model on `inputs` and score `targets` ([B, T], one per position the model keeps: all
        positions, or those of `logits_to_keep`). Returns (logp [B, T], entropy [B, T] or None), fp32."""
        if self.head is None:
            return full_vocab_token_scores(self.forward(**inputs).logits, targets, temperature, with_entropy,
                                           entropy_grad)
        req = _Request(targets, float(temperature), self.chunk, with_entropy, entropy_grad)
        with self.head.scoring(req):
            out = self.forward(**inputs).logits  # [B, T, 2]
        if not with_entropy:
            return out[..., 0], None
        return out[..., 0], (out[..., 1] if entropy_grad and torch.is_grad_enabled() else out[..., 1].detach())

    def hidden(self, **inputs: Any) -> Any:
        """The model's output with the final hidden states in place of `.logits` (at the positions of
        `logits_to_keep`), for layouts that assemble rows before scoring (prompt sharing)."""
        if self.head is None:
            raise RuntimeError(f"hidden states need a ScoringHead ({self.fallback})")
        with self.head.scoring(_Request(None, 1.0, self.chunk, False, False)):
            return self.forward(**inputs)

    def score_hidden(self, hidden: Tensor, targets: Tensor, *, temperature: float = 1.0, with_entropy: bool = False,
                     entropy_grad: bool = True) -> tuple[Tensor, Tensor | None]:
        """Score final hidden states [B, T, H] with the head's weight outside the model's forward: not
        under ZeRO-3, where that weight is a partition outside forward."""
        if self.head is None or self.partitioned:
            raise RuntimeError("score_hidden needs the LM head's full weight (a ScoringHead, not ZeRO-3)")
        return score_hidden(hidden, self.head.weight, self.head.bias, targets, temperature=temperature,
                            chunk=self.chunk, with_entropy=with_entropy, entropy_grad=entropy_grad)


def can_share_prompts(module: nn.Module, scorer: TokenScorer) -> bool:
    """Can the RL stage's shared-prompt layout (rlvr.rl.layouts.score_shared) run on this model? Its KV
    cache is kept in training (no gradient checkpointing, under which transformers drops it without an
    error), its attention has no sliding-window layers (their masks and caches are not what the layout
    was checked against), its LM head can return hidden states (a ScoringHead), and its parameters are not
    ZeRO-3 partitions: there every forward gathers all of them, the second forward measured slower than
    the prompt tokens it saves (tiny model, 1 rank), and the head's weight is not whole outside forward."""
    from rlvr.models.load import has_sliding_window

    return (not has_sliding_window(getattr(module, "config", None))
            and not getattr(module, "is_gradient_checkpointing", False)
            and scorer.head is not None and not scorer.partitioned)


def token_scorer(forward: Callable[..., Any], module: nn.Module, chunk: int | None = None,
                 partitioned: bool = False) -> TokenScorer:
    """A TokenScorer for `module` (run through `forward`), installing its ScoringHead when supported.
    `chunk`: positions per LM-head chunk; None takes backend.logits_chunk's default for the module's
    vocabulary (256 MiB of fp32 logits), the one rule the backend and the planner use too."""
    if chunk is None:
        from rlvr.config import BackendConfig

        chunk = BackendConfig().logits_chunk(module.config.vocab_size)
    reason = scoring_head_support(module)
    head = install_scoring_head(module) if reason is None else None
    return TokenScorer(forward, head, chunk, partitioned, reason)
