"""The weight-sync probe: after each sync, a few fixed token sequences are scored by the trainer (its
own forward, fp32 log_softmax) and by the engine (prompt logprobs). The gap is the silent failure
detector: stale weights (a skipped or lost sync, a wake-up that restored an old copy) or garbage
weights (a name mismatch, a wrong dtype or shard) show up as a gap far above the numerical noise.

    sequences = probe_sequences(tokenizer, config.probe_sequences, config.probe_length)   # once per run
    generator.sync_weights(backend.iter_full_params())
    metrics = probe_gap(generator, backend, sequences)          # {"gen/logprob_gap_max": ..., ...}
    check_probe(metrics, config.probe_threshold, dtype=probe_dtype(model_dtype, config.dtype))

or, with memory of the previous sync (adds the two relative rules below):

    probe = WeightProbe(sequences, dtype=probe_dtype(model_dtype, config.dtype), threshold=config.probe_threshold)
    metrics = probe.check(generator, backend)                   # after every sync; raises StaleWeightsError

The decision (docs/generation.md, "The probe"), with d_t = engine - trainer log-prob of probe token t:

1. absolute, from the dtype: fp32 (trainer and engine): max_t |d_t| <= threshold (1e-3; fp32 noise is
   ~1e-6, so one bad token is a real signal). bf16 / fp16: mean_t |d_t| <= threshold, by default
   MEAN_GAP_LIMIT[dtype]: 0.1 nats for bf16, about 3x the published trainer-vs-vLLM bf16 RMS of
   0.032-0.040 (mean |d| of Gaussian noise is 0.8 x RMS), while a stale sync gives ~1. The mean, not the
   max: single tokens reach ~0.1 by noise alone, and one outlier moves the mean of 128 tokens by < 1 %.
2. relative, by construction (WeightProbe, from the second sync on): a synced engine is closer to the
   new trainer weights than to the previous ones, whatever the noise level. Stale when
   mean |E - T_new| > 2 x mean |E - T_prev| (and above the floor below).
3. movement (WeightProbe): the engine's own scores must move with the trainer's. Stale when the trainer's
   probe log-probs moved by more than the floor (mean |T_new - T_prev|) and the engine's moved by less
   than half as much: a skipped sync leaves them bit-identical, however small the update.
   Floor = threshold / 10, so an update below the noise (harmless either way) never decides.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from rlvr.generate.types import Generator, StaleWeightsError

# Fixed text, so the probe is the same sequences in every run with the same tokenizer.
_PROBE_TEXT = [
    "Let's think step by step. If a + b = 10 and a - b = 4, then a = 7 and b = 3, so a * b = 21.",
    "Problem: Find the value of 12 + 35 - 8. Solution: 12 + 35 = 47 and 47 - 8 = 39. The answer is 39.",
    "The final answer is $\\boxed{\\frac{1}{2}}$. Therefore x = 5, y = -3 and the sum is 2.",
    "Please reason step by step, and put your final answer within \\boxed{}. 9 * 9 = 81, 81 / 3 = 27.",
]

FP32_MAX_GAP = 1e-3
"""fp32 trainer and engine: default limit of the max gap (measured noise 5e-7 - 1e-6)."""
MEAN_GAP_LIMIT = {"bfloat16": 0.1, "float16": 0.1 / 8}
"""Default limit of the mean |gap| when trainer or engine computes in a 16-bit dtype. bf16: ~3x the
published trainer-vs-vLLM RMS (0.032-0.040 nats); fp16 has 3 more mantissa bits, so 8x less."""
RELATIVE_RATIO = 2.0
"""Rules 2 and 3: how much closer to the new weights (or how much less still) counts as decided."""


def probe_dtype(trainer_dtype: str, engine_dtype: str = "auto") -> str:
    """The dtype that sets the probe's noise: the coarser of the trainer's (model.dtype) and the engine's
    (generation.dtype; auto = the trainer's)."""
    dtypes = {trainer_dtype, trainer_dtype if engine_dtype == "auto" else engine_dtype}
    for low in ("bfloat16", "float16"):
        if low in dtypes:
            return low
    return "float32"


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


@dataclass
class ProbeScores:
    """Both sides' log-probs of the probe tokens after one sync: [sequences][positions]."""

    trainer: list[list[float]]
    engine: list[list[float]]


def _diffs(a: list[list[float]], b: list[list[float]]) -> list[float]:
    return [x - y for xs, ys in zip(a, b, strict=True) for x, y in zip(xs, ys, strict=True)]


def _mean_abs(d: list[float]) -> float:
    return sum(abs(x) for x in d) / len(d)


def gap_metrics(scores: ProbeScores, previous: ProbeScores | None = None) -> dict[str, float]:
    """The probe's statistics of d = engine - trainer: max, mean and RMS of |d|; with the previous sync's
    scores also the engine's mean gap to the previous trainer weights and how far each side moved."""
    d = _diffs(scores.engine, scores.trainer)
    nan = any(math.isnan(x) for x in d)  # max() would skip a NaN that is not first
    out = {
        "gen/logprob_gap_max": math.nan if nan else max(abs(x) for x in d),
        "gen/logprob_gap_mean": _mean_abs(d),
        "gen/logprob_gap_rms": math.sqrt(sum(x * x for x in d) / len(d)),
    }
    if previous is not None:
        out["gen/logprob_gap_to_previous"] = _mean_abs(_diffs(scores.engine, previous.trainer))
        out["gen/probe_trainer_moved"] = _mean_abs(_diffs(scores.trainer, previous.trainer))
        out["gen/probe_engine_moved"] = _mean_abs(_diffs(scores.engine, previous.engine))
    return out


def score_probe(generator: Generator, backend: Any, sequences: list[list[int]]) -> ProbeScores:
    """Score `sequences` with both sides. Collective under torchrun (every rank calls it with the same
    sequences)."""
    return ProbeScores(trainer=trainer_logprobs(backend, sequences), engine=generator.score(sequences))


def probe_gap(generator: Generator, backend: Any, sequences: list[list[int]]) -> dict[str, float]:
    """Score `sequences` with both; returns gen/logprob_gap_{max,mean,rms} and gen/probe_seconds.
    Collective under torchrun (every rank calls it with the same sequences)."""
    start = time.perf_counter()
    metrics = gap_metrics(score_probe(generator, backend, sequences))
    return {**metrics, "gen/probe_seconds": time.perf_counter() - start}


def probe_limit(threshold: float | None, dtype: str = "float32") -> tuple[str, float]:
    """(statistic, limit) of the absolute rule: fp32 bounds the max gap, 16-bit dtypes the mean gap;
    `threshold` (generation.probe_threshold) overrides the dtype's default limit."""
    if dtype == "float32":
        return "max", FP32_MAX_GAP if threshold is None else threshold
    if dtype not in MEAN_GAP_LIMIT:
        raise ValueError(f"probe dtype must be float32, bfloat16 or float16, got {dtype!r}")
    return "mean", MEAN_GAP_LIMIT[dtype] if threshold is None else threshold


def check_probe(metrics: dict[str, float], threshold: float | None = None, dtype: str = "float32") -> None:
    """Stop the run (StaleWeightsError) when the engine's weights are not the trainer's: the absolute rule
    of `dtype` (probe_dtype: the coarser of trainer and engine), and the two relative rules when
    `metrics` come from a WeightProbe with a previous sync. Module docstring: the rules and the limits."""
    stat, limit = probe_limit(threshold, dtype)
    gap, mean = metrics["gen/logprob_gap_max"], metrics["gen/logprob_gap_mean"]
    value = gap if stat == "max" else mean
    floor = limit / 10
    if not value <= limit:  # also catches NaN
        why = (f"the generation engine's log-probs differ from the trainer's by up to {gap:.3g} (mean {mean:.3g}) "
               f"on fixed probe sequences; the {stat} gap is above its {dtype} limit "
               f"generation.probe_threshold={limit:g}")
    elif "gen/probe_engine_moved" not in metrics:
        return
    elif mean > floor and mean > RELATIVE_RATIO * metrics["gen/logprob_gap_to_previous"]:
        why = (f"the generation engine's log-probs are closer to the trainer's previous weights (mean gap "
               f"{metrics['gen/logprob_gap_to_previous']:.3g}) than to the new ones (mean gap {mean:.3g})")
    elif (metrics["gen/probe_trainer_moved"] > floor
          and metrics["gen/probe_engine_moved"] < metrics["gen/probe_trainer_moved"] / RELATIVE_RATIO):
        why = (f"the trainer's probe log-probs moved by {metrics['gen/probe_trainer_moved']:.3g} (mean) since the "
               f"previous sync, the engine's by only {metrics['gen/probe_engine_moved']:.3g}")
    else:
        return
    raise StaleWeightsError(
        f"weight-sync probe failed: {why}. Rollouts would be sampled from stale or corrupted "
        f"weights, so the run stops. Likely causes: a weight sync was skipped or failed (sync after every "
        f"optimizer step, and after wake-up, never before it; sleep level 2 discards the weights, so every "
        f"wake-up needs a sync), parameter names the engine does not load (check vLLM's 'weights were not "
        f"loaded' warning), or an engine dtype different from the trainer's (generation.dtype; the probe "
        f"judges the coarser of the two: bf16 noise is ~0.03 nats per token, fp32 ~1e-6)."
    )


class WeightProbe:
    """The probe with memory of the previous sync, which adds the relative rules 2 and 3 (module
    docstring): they separate a stale engine from numeric noise by construction, however large the
    noise and however small the update. Call `check` after every sync, on every rank."""

    def __init__(self, sequences: list[list[int]], dtype: str = "float32", threshold: float | None = None):
        probe_limit(threshold, dtype)  # a bad dtype fails here, not after the first sync
        self.sequences, self.dtype, self.threshold = sequences, dtype, threshold
        self.previous: ProbeScores | None = None

    def measure(self, generator: Generator, backend: Any) -> dict[str, float]:
        """The metrics of this sync (relative ones from the second call on); remembers its scores."""
        start = time.perf_counter()
        scores = score_probe(generator, backend, self.sequences)
        metrics = gap_metrics(scores, self.previous)
        self.previous = scores
        return {**metrics, "gen/probe_seconds": time.perf_counter() - start}

    def check(self, generator: Generator, backend: Any) -> dict[str, float]:
        """measure, then check_probe; returns the metrics (for the step's log)."""
        metrics = self.measure(generator, backend)
        check_probe(metrics, self.threshold, self.dtype)
        return metrics
