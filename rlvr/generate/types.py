"""The generation interface: requests, sampling settings, completions, and the Generator protocol.

Imports nothing heavy (torch only for type checking), so recipe code can use these types freely.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch


class StaleWeightsError(RuntimeError):
    """The engine's log-probs differ from the trainer's: it is sampling from other weights."""


@dataclass
class Request:
    """One prompt: exactly one of `messages` (chat, rendered with the tokenizer's chat template and
    the generation prompt), `prompt` (raw text, tokenized without special tokens added) or
    `prompt_ids` (token ids, used as they are)."""

    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    prompt_ids: list[int] | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("messages", "prompt", "prompt_ids") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"Request needs exactly one of messages / prompt / prompt_ids, got {given or 'none'}")


@dataclass
class Sampling:
    """Sampling settings of one generate call. temperature 0 is greedy. top_k -1 (or 0) and top_p 1
    disable truncation. `seed` makes the call reproducible; ranks and requests still differ (each
    request's seed is derived from (seed, rank, request index))."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False


@dataclass
class Completion:
    """One sampled continuation.

    `logprobs[i]` is log p(completion_ids[i]) under the distribution the token was actually sampled
    from: log_softmax of the temperature-scaled logits after top-k/top-p truncation (vLLM's
    "processed_logprobs"). With top_p=1 and top_k=-1 (the RL setting) this is exactly
    log_softmax(logits / T); for greedy (T=0) it is log_softmax(logits). None unless
    Sampling.logprobs. `finish_reason` is "stop" (EOS, a stop id or a stop string) or "length".
    `text` is the decoded completion without special tokens, cut before a stop string."""

    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    logprobs: list[float] | None
    finish_reason: str


class Generator(Protocol):
    """What the RL and DPO stages and evaluation call. Implemented by VLLMGenerator and HFGenerator.

    Under torchrun each rank (each tensor-parallel group) has its own engine: `generate` and `score`
    involve no other rank, so ranks may call them different numbers of times with different requests,
    including none (docs/generation.md). Building the engine, `sync_weights` (ZeRO-3 gathers) and
    `close` are collective: all ranks call them, in the same order."""

    last_stats: dict[str, float]
    """Metrics of the latest generate call: gen/tokens, gen/prompt_tokens, gen/sequences, gen/seconds,
    gen/tokens_per_s."""
    tokenizer: Any
    """The tokenizer requests are rendered with (chat template included)."""
    max_model_len: int
    """Prompt + completion tokens the engine holds per sequence; a prompt must be shorter."""
    dp_rank: int
    dp_size: int
    """This rank's engine is replica `dp_rank` of `dp_size`: callers that shard requests give each
    replica its own share (ranks of one tensor-parallel group share an engine and its requests)."""

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        """One inner list of `sampling.n` completions per request, in request order."""
        ...

    def score(self, sequences: list[list[int]]) -> list[list[float]]:
        """log p(seq[t] | seq[:t]) for t = 1..len-1 of each sequence (the engine's own forward)."""
        ...

    def sync_weights(self, named_params: Iterable[tuple[str, torch.Tensor]]) -> float:
        """Load full parameters (HF names, streamed one at a time) into the engine; returns seconds."""
        ...

    def share_weights(self, module: torch.nn.Module) -> bool:
        """Make the engine's weights the very tensors of the trainer's `module` when it can (then no
        copy is held and sync_weights has nothing to load); returns whether it did."""
        ...

    def sleep(self) -> None: ...

    def wake(self) -> None: ...

    def close(self) -> None: ...


def request_seed(seed: int, rank: int, index: int) -> int:
    """A 31-bit seed for request `index` on `rank`, stable across runs and processes. vLLM gives the
    n children of a request seed, seed+1, ..., so seeds are hashed apart rather than consecutive."""
    digest = hashlib.blake2b(f"{seed}/{rank}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (2**31 - 2**16)


def render_prompts(tokenizer: Any, requests: list[Request]) -> list[list[int]]:
    """Token ids of each request's prompt (chat template with generation prompt for messages)."""
    out = []
    for r in requests:
        if r.prompt_ids is not None:
            out.append(list(r.prompt_ids))
        elif r.messages is not None:
            ids = tokenizer.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            out.append(list(ids))
        else:
            out.append(tokenizer(r.prompt, add_special_tokens=False)["input_ids"])
    return out


def throughput(prompt_tokens: int, completion_tokens: int, seconds: float, sequences: int) -> dict[str, float]:
    return {
        "gen/prompt_tokens": float(prompt_tokens),
        "gen/tokens": float(completion_tokens),
        "gen/sequences": float(sequences),
        "gen/seconds": seconds,
        "gen/tokens_per_s": completion_tokens / seconds if seconds > 0 else 0.0,
    }
