"""The weight-sync probe: after each sync, a few fixed token sequences are scored by the trainer (its
own forward, fp32 log_softmax) and by the engine (prompt logprobs). The gap is the silent failure
detector: stale weights (a skipped or lost sync, a wake-up that restored an old copy) or garbage
weights (a name mismatch, a wrong dtype or shard) show up as a gap far above the numerical noise.

    sequences = probe_sequences(tokenizer, config.probe_sequences, config.probe_length)   # once per run
    generator.sync_weights(backend.iter_full_params())
    metrics = probe_gap(generator, backend, sequences)          # {"gen/logprob_gap_max": ..., ...}
    check_probe(metrics, config.probe_threshold)                # raises StaleWeightsError
"""

from __future__ import annotations

import time
from typing import Any

from rlvr.generate.types import Generator, StaleWeightsError

# Fixed text, so the probe is the same sequences in every run with the same tokenizer.
_PROBE_TEXT = [
    "Let's think step by step. If a + b = 10 and a - b = 4, then a = 7 and b = 3, so a * b = 21.",
    "Problem: Find the value of 12 + 35 - 8. Solution: 12 + 35 = 47 and 47 - 8 = 39. The answer is 39.",
    "The final answer is $\\boxed{\\frac{1}{2}}$. Therefore x = 5, y = -3 and the sum is 2.",
    "Please reason step by step, and put your final answer within \\boxed{}. 9 * 9 = 81, 81 / 3 = 27.",
]


def probe_sequences(tokenizer: Any, count: int = 4, length: int = 32) -> list[list[int]]:
    """`count` token sequences of exactly `length` tokens (repeating the text where it is short), built
    from fixed chat-formatted text, so trainer and engine score them in one unpadded batch."""
    out = []
    for i in range(count):
        text = f"Example {i + 1}. {_PROBE_TEXT[i % len(_PROBE_TEXT)]}"
        messages = [{"role": "user", "content": text}, {"role": "assistant", "content": text}]
        ids = tokenizer.apply_chat_template(messages, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        ids = list(ids)
        while len(ids) < length:
            ids = ids + ids
        out.append(ids[:length])
    return out


def trainer_logprobs(backend: Any, sequences: list[list[int]]) -> list[list[float]]:
    """log p(seq[t] | seq[:t]) under the trainer: its TokenScorer (the model's forward, collective under
    ZeRO-3, with the LM head in chunks; fp32) in eval mode."""
    import torch

    device = getattr(backend, "device", "cpu")
    ids = torch.tensor(sequences, device=device)
    module = getattr(backend, "module", None)
    was_training = bool(module is not None and module.training)
    if was_training:
        backend.train(False)  # dropout would make the gap noisy
    try:
        with torch.no_grad():
            keep = torch.arange(ids.shape[1] - 1, device=device)  # position t predicts token t+1
            logp, _ = backend.scorer(ids[:, 1:], input_ids=ids, use_cache=False, logits_to_keep=keep)
    finally:
        if was_training:
            backend.train(True)
    return logp.cpu().tolist()


def probe_gap(generator: Generator, backend: Any, sequences: list[list[int]]) -> dict[str, float]:
    """Score `sequences` with both; returns gen/logprob_gap_max, gen/logprob_gap_mean, gen/probe_seconds.
    Collective under torchrun (every rank calls it with the same sequences)."""
    start = time.perf_counter()
    ours = trainer_logprobs(backend, sequences)
    theirs = generator.score(sequences)
    gaps = [abs(a - b) for xs, ys in zip(ours, theirs, strict=True) for a, b in zip(xs, ys, strict=True)]
    return {
        "gen/logprob_gap_max": max(gaps),
        "gen/logprob_gap_mean": sum(gaps) / len(gaps),
        "gen/probe_seconds": time.perf_counter() - start,
    }


def check_probe(metrics: dict[str, float], threshold: float) -> None:
    """Stop the run when the engine's log-probs drifted from the trainer's by more than `threshold`."""
    gap = metrics["gen/logprob_gap_max"]
    if not gap <= threshold:  # also catches NaN
        raise StaleWeightsError(
            f"weight-sync probe failed: the generation engine's log-probs differ from the trainer's by up to "
            f"{gap:.3g} (mean {metrics['gen/logprob_gap_mean']:.3g}) on fixed probe sequences, above "
            f"generation.probe_threshold={threshold:g}. Rollouts would be sampled from stale or corrupted "
            f"weights, so the run stops. Likely causes: a weight sync was skipped or failed (sync after every "
            f"optimizer step, and after wake-up, never before it), parameter names the engine does not load "
            f"(check vLLM's 'weights were not loaded' warning), or an engine dtype different from the "
            f"trainer's (generation.dtype; bf16 vs fp32 gives gaps near 1e-2: raise probe_threshold to ~0.1 "
            f"only if that is intended)."
        )
