"""The weight-sync probe's decision (rlvr/generate/probe.py): bf16 noise at published trainer-vs-vLLM levels
passes, stale weights are caught, fp32 keeps its max-gap threshold.

Fast tests drive `gap_metrics` / `check_probe` with synthetic scores; the model tests run a bf16 trainer
(the token scorer) next to a bf16 HF generator, with one real optimizer step and the sync skipped."""

from __future__ import annotations

import random

import pytest

from rlvr.generate import StaleWeightsError, check_probe
from rlvr.generate.probe import ProbeScores, WeightProbe, gap_metrics, probe_dtype, probe_sequences

SHAPE = (4, 31)  # the default probe: 4 sequences x 32 tokens -> 31 scored positions each


def _trainer(rng: random.Random) -> list[list[float]]:
    return [[-rng.expovariate(0.5) for _ in range(SHAPE[1])] for _ in range(SHAPE[0])]


def _bf16_noise(rng: random.Random, scores: list[list[float]]) -> list[list[float]]:
    """Published bf16 trainer-vs-vLLM gaps: Gaussian per token, RMS 0.04 (the top of the published 0.032-0.040
    range), and a few tokens near the published maxima (~0.1), with either sign."""
    out = [[x + rng.gauss(0.0, 0.04) for x in row] for row in scores]
    for _ in range(3):
        i, j = rng.randrange(SHAPE[0]), rng.randrange(SHAPE[1])
        out[i][j] = scores[i][j] + rng.choice((-1, 1)) * rng.uniform(0.09, 0.13)
    return out


def _moved(rng: random.Random, scores: list[list[float]], size: float) -> list[list[float]]:
    """The trainer's scores after an update of mean size ~`size` nats per token."""
    return [[x + rng.gauss(0.0, size * 1.25) for x in row] for row in scores]


def test_bf16_noise_at_published_levels_passes_where_the_old_max_rule_fails():
    rng, old_rule_flags, stats = random.Random(0), 0, []
    for _ in range(500):
        trainer = _trainer(rng)
        m = gap_metrics(ProbeScores(trainer, _bf16_noise(rng, trainer)))
        check_probe(m, None, "bfloat16")  # never raises
        old_rule_flags += m["gen/logprob_gap_max"] > 0.1  # the recipes' former probe_threshold: 0.1 on the max
        stats.append(m)
    assert 0.035 < max(m["gen/logprob_gap_rms"] for m in stats) < 0.06
    assert max(m["gen/logprob_gap_mean"] for m in stats) < 0.05  # half the 0.1 limit
    assert old_rule_flags > 250  # a single noisy token stopped most runs


def test_bf16_sequence_of_synced_steps_never_flags_whatever_the_update_size():
    """WeightProbe's relative rules over a run: fresh noise at every sync (the worst case for the movement
    rule), updates from none to far above the noise."""
    rng = random.Random(1)
    for size in (0.0, 0.003, 0.01, 0.03, 0.1, 0.5):
        trainer = _trainer(rng)
        previous = ProbeScores(trainer, _bf16_noise(rng, trainer))
        for _ in range(100):
            trainer = _moved(rng, trainer, size)
            scores = ProbeScores(trainer, _bf16_noise(rng, trainer))
            check_probe(gap_metrics(scores, previous), None, "bfloat16")
            previous = scores


@pytest.mark.parametrize("size", [0.02, 0.05, 0.3, 1.0])
def test_bf16_skipped_sync_is_caught(size):
    """The engine keeps the previous scores bit for bit (no sync), the trainer moved by `size` nats per token:
    above the noise the absolute rule catches it (size 1: a stale sync's published ~1), below it the
    relative rules do."""
    rng = random.Random(2)
    trainer = _trainer(rng)
    previous = ProbeScores(trainer, _bf16_noise(rng, trainer))
    stale = ProbeScores(_moved(rng, trainer, size), previous.engine)
    with pytest.raises(StaleWeightsError, match="weight-sync probe failed"):
        check_probe(gap_metrics(stale, previous), None, "bfloat16")
    if size >= 0.3:  # without history too
        with pytest.raises(StaleWeightsError, match="mean gap is above its bfloat16 limit"):
            check_probe(gap_metrics(stale), None, "bfloat16")


def test_bf16_stale_engine_with_nondeterministic_scores_is_caught():
    """A skipped sync on an engine whose scores are not bit-reproducible (fresh noise at every call), with an
    update below the absolute limit: the engine did move, but it is still closer to the previous weights."""
    rng = random.Random(3)
    t1 = _trainer(rng)
    previous = ProbeScores(t1, _bf16_noise(rng, t1))
    stale = ProbeScores(_moved(rng, t1, 0.08), _bf16_noise(rng, t1))
    m = gap_metrics(stale, previous)
    assert m["gen/logprob_gap_mean"] < 0.1  # the absolute rule alone passes it
    assert m["gen/probe_engine_moved"] > m["gen/probe_trainer_moved"] / 2  # so does the movement rule
    with pytest.raises(StaleWeightsError, match="closer to the trainer's previous weights"):
        check_probe(m, None, "bfloat16")


def test_fp32_rule_is_unchanged_and_nan_fails():
    scores = ProbeScores([[-1.0, -2.0]], [[-1.0 + 5e-4, -2.0]])
    check_probe(gap_metrics(scores), 1e-3)  # max 5e-4 <= 1e-3
    check_probe(gap_metrics(scores))  # the fp32 default limit is 1e-3 on the max
    with pytest.raises(StaleWeightsError, match="probe_threshold=0.0001"):
        check_probe(gap_metrics(scores), 1e-4)
    # one bad token among many is enough in fp32 (noise is ~1e-6), unlike the bf16 mean rule
    one_bad = ProbeScores([[0.0] * 100], [[0.0] * 99 + [0.05]])
    with pytest.raises(StaleWeightsError):
        check_probe(gap_metrics(one_bad))
    check_probe(gap_metrics(one_bad), None, "bfloat16")
    for nan_at in (0, 1):
        engine = [[-1.0, -2.0]]
        engine[0][nan_at] = float("nan")
        for dtype in ("float32", "bfloat16"):
            with pytest.raises(StaleWeightsError):
                check_probe(gap_metrics(ProbeScores([[-1.0, -2.0]], engine)), None, dtype)


def test_probe_dtype_is_the_coarser_side():
    assert probe_dtype("float32") == "float32"
    assert probe_dtype("bfloat16") == "bfloat16"
    assert probe_dtype("float32", "bfloat16") == "bfloat16"
    assert probe_dtype("bfloat16", "float32") == "bfloat16"
    assert probe_dtype("float32", "float16") == "float16"
    with pytest.raises(ValueError):
        WeightProbe([[1, 2]], dtype="bf16")


# ------------------------------------------------------------------ a real bf16 model on CPU
class _Trainer:
    """The trainer side of the probe: an HF model with the backend's scorer and device."""

    def __init__(self, path, dtype):
        from rlvr.models.load import load_model
        from rlvr.models.scoring import install_scoring_head, token_scorer

        self.model = load_model(path, dtype=dtype).eval()
        install_scoring_head(self.model)
        self.device = "cpu"
        self.scorer = token_scorer(lambda **kw: self.model(**kw), self.model)

    def train_step(self, lr, seed=0):
        import torch

        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(3, 300, (4, 32), generator=g)
        self.model.train()
        opt = torch.optim.AdamW(self.model.parameters(), lr=lr)
        loss = self.model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        self.model.eval()


class _Noisy:
    """A generator whose scores carry injected bf16-level noise on top of its own: the same draw at every call,
    as a kernel's rounding is a function of its inputs (the synthetic tests above redraw it every call)."""

    def __init__(self, inner, seed):
        self.inner, self.seed = inner, seed
        self.tokenizer = inner.tokenizer

    def score(self, sequences):
        return _bf16_noise(random.Random(self.seed), self.inner.score(sequences))


def _bf16_pair(path):
    import torch

    if not torch.ones(2, dtype=torch.bfloat16).sum().item() == 2:  # pragma: no cover
        pytest.skip("no bf16 on this CPU")
    from rlvr.generate import GenerationConfig
    from rlvr.generate.hf_engine import HFGenerator
    from rlvr.world import World

    gen = HFGenerator(GenerationConfig(backend="hf", use_tqdm=False), str(path), World(), dtype="bfloat16", seed=0)
    return _Trainer(path, "bfloat16"), gen


@pytest.mark.parametrize("lr", [1e-2, 1e-3])
def test_bf16_model_skipped_sync_is_caught_and_noise_is_not(tiny_model, lr):
    """bf16 trainer (chunked fp32 scorer) and bf16 HF engine (bf16 logits): after an optimizer step without
    a sync the probe stops the run; with the sync, and injected noise at published bf16 levels, it does
    not. Measured stale mean gaps: lr 1e-2 0.30 (the absolute rule catches it), lr 1e-3 0.021 (only the
    movement rule does: the engine moved 0, the trainer 0.021, above the floor 0.01)."""
    trainer, gen = _bf16_pair(tiny_model)
    seqs = probe_sequences(gen.tokenizer, 4, 32)
    noisy = _Noisy(gen, seed=0)
    probe = WeightProbe(seqs, dtype="bfloat16")
    first = probe.check(noisy, trainer)
    for step in range(3):  # synced steps with noise: never flagged
        trainer.train_step(lr, seed=step)
        gen.sync_weights(trainer.model.named_parameters())
        synced = probe.check(noisy, trainer)
    assert synced["gen/probe_trainer_moved"] > 0
    trainer.train_step(lr, seed=9)  # ... and the sync is skipped
    with pytest.raises(StaleWeightsError) as err:
        probe.check(noisy, trainer)
    stale = gap_metrics(probe.previous, None)
    print(f"lr {lr}: noisy first {first}, synced {synced}, stale {stale}: {err.value}")
    if lr >= 1e-2:
        assert stale["gen/logprob_gap_mean"] > 0.1  # the absolute rule alone would catch it
    else:
        assert stale["gen/logprob_gap_mean"] < 0.1  # only the relative rules do


def test_bf16_model_without_injected_noise_is_far_below_the_limit(tiny_model):
    trainer, gen = _bf16_pair(tiny_model)
    m = WeightProbe(probe_sequences(gen.tokenizer, 4, 32), dtype="bfloat16").check(gen, trainer)
    print(f"bf16 trainer scorer vs bf16 HF engine, same weights: {m}")
    assert m["gen/logprob_gap_mean"] < 0.02
