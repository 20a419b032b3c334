"""Fixtures for the verifier tests: one shared Verifier per policy, and all case results computed once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cases import CASES  # noqa: E402

from rlvr.verify import Verifier, VerifierConfig  # noqa: E402


@pytest.fixture(scope="session")
def verifiers():
    made: dict[tuple[str, float], Verifier] = {}

    def get(policy: str = "math", timeout: float = 2.0) -> Verifier:
        if (policy, timeout) not in made:
            made[policy, timeout] = Verifier(VerifierConfig(policy=policy, workers=2, timeout=timeout))
        return made[policy, timeout]

    yield get
    for v in made.values():
        v.close()


@pytest.fixture(scope="session")
def case_results(verifiers):
    """{case name: Result}, graded in one batch per policy (as a training step would)."""
    out = {}
    for policy in sorted({c.config for c in CASES}):
        group = [c for c in CASES if c.config == policy]
        results = verifiers(policy).verify_batch(
            [c.prediction for c in group], [c.gold for c in group], truncated=[c.truncated for c in group]
        )
        out.update({c.name: r for c, r in zip(group, results, strict=True)})
    return out
