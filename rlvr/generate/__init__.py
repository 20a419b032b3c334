"""Generation for rollouts and evaluation: one interface, a colocated vLLM backend and an HF fallback.

    from rlvr.generate import GenerationConfig, Request, Sampling, build_generator
    gen = build_generator(GenerationConfig(), model_path, world, dtype="float32", seed=0)
    outs = gen.generate([Request(messages=[{"role": "user", "content": "2+2?"}])], Sampling(n=4, logprobs=True))
    gen.sync_weights(backend.iter_full_params())            # after every optimizer step
    probe = WeightProbe(probe_seqs, dtype=probe_dtype(model_dtype, config.dtype), threshold=config.probe_threshold)
    probe.check(gen, backend)                               # after every sync: raises StaleWeightsError

Importing this package is cheap (no torch, no vLLM); backends are imported by build_generator.
Design and CPU/GPU specifics: docs/generation.md.
"""

from rlvr.generate.config import GenerationConfig
from rlvr.generate.factory import build_generator
from rlvr.generate.probe import WeightProbe, check_probe, probe_dtype, probe_gap, probe_sequences
from rlvr.generate.types import Completion, Generator, Request, Sampling, StaleWeightsError

__all__ = [
    "Completion",
    "GenerationConfig",
    "Generator",
    "Request",
    "Sampling",
    "StaleWeightsError",
    "WeightProbe",
    "build_generator",
    "check_probe",
    "probe_dtype",
    "probe_gap",
    "probe_sequences",
]
