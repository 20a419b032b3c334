"""rlvr's math-answer verifier: one judge for RL rewards, DPO pairs and benchmark scoring.

Pipeline (docs/verifier.md): extract the committed final answer → normalise → exact fast path →
guarded symbolic fallback (math-verify in killable worker processes) → cached ``Result``.

This module imports no sympy, math-verify or torch; the fallback loads them in its workers.

>>> from rlvr.verify import verify
>>> verify("... so the answer is \\\\boxed{\\\\frac{1}{2}}.", "0.5").reason
'match'
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence

from rlvr.verify.config import VerifierConfig
from rlvr.verify.extract import extract_answer as _extract
from rlvr.verify.policy import POLICIES, Policy
from rlvr.verify.verifier import REASONS, Result, Verifier

__all__ = [
    "POLICIES",
    "Policy",
    "REASONS",
    "Result",
    "Verifier",
    "VerifierConfig",
    "extract_answer",
    "verify",
    "verify_batch",
]

_SHARED: dict = {}
_SHARED_LOCK = threading.Lock()


def extract_answer(text: str) -> tuple[str | None, str]:
    """The pure extraction step under the default policy: (answer, ok|no_answer|truncated|hedged)."""
    return _extract(text)


def _shared(config: VerifierConfig | None) -> Verifier:
    config = config or VerifierConfig()
    with _SHARED_LOCK:
        verifier = _SHARED.get(config)
        if verifier is None:
            verifier = _SHARED[config] = Verifier(config)
        return verifier


def verify_batch(
    predictions: Sequence[str],
    golds: Sequence[str],
    *,
    truncated: Sequence[bool] | None = None,
    config: VerifierConfig | None = None,
) -> list[Result]:
    """Judge a batch with a lazily created Verifier shared per config (closed at exit)."""
    return _shared(config).verify_batch(predictions, golds, truncated=truncated)


def verify(
    prediction: str, gold: str, *, truncated: bool = False, config: VerifierConfig | None = None
) -> Result:
    """Judge one prediction against one gold answer."""
    return _shared(config).verify(prediction, gold, truncated=truncated)


@atexit.register
def _close_shared() -> None:
    for verifier in list(_SHARED.values()):
        verifier.close()
