"""Verifier configuration, importable without sympy/math-verify/torch (recipe validation imports it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlvr.verify.policy import POLICIES


class VerifierConfig(BaseModel):
    """Settings for :class:`rlvr.verify.Verifier`.

    The policy fields left at ``None`` take the named policy's value (see
    ``rlvr/verify/policy.py`` and docs/verifier.md for every default).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str = "math"
    """Grading policy name: math (default), math_reward, minerva, math_exact_only, multiple_choice
    (lettered options), or a reproduced published grader: one_shot_reward, qwen_math_eval
    (docs/verifier.md, "Paper policies")."""
    workers: int | None = Field(default=None, ge=1, le=64)
    """Symbolic-fallback worker processes; None = min(2, cpu count). Started lazily, only when an
    item needs the fallback."""
    timeout: float = Field(default=2.0, gt=0, allow_inf_nan=False)
    """Hard per-item limit in CPU seconds (the fast path's plus the fallback worker's, so verdicts do
    not depend on machine load); a fallback item running past it is killed (`timeout`). A worker
    making no progress is killed after max(10 x timeout, 10 s) of wall time (docs/verifier.md)."""
    memory_mb: int = Field(default=4096, ge=512)
    """Address-space cap (RLIMIT_AS) of each worker process, MiB."""
    cache_size: int = Field(default=200_000, ge=0)
    """Results cached by (policy, normalised answer, gold); 0 disables the cache."""
    require_box: bool | None = None
    """Override the policy: only boxed answers count."""
    numeric: Literal["exact", "sig_figs"] | None = None
    """Override the policy: exact numbers or gold-precision (significant figures) matching."""
    interval_relations: bool | None = None
    """Override the policy: accept a solved inequality for an interval gold."""

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in POLICIES:
            raise ValueError(
                f"unknown verifier policy {value!r}; choose one of {', '.join(sorted(POLICIES))} "
                "(docs/verifier.md describes each)"
            )
        return value

    def resolved_policy(self):
        """The Policy object with this config's overrides applied."""
        from rlvr.verify.policy import get_policy

        return get_policy(
            self.policy,
            require_box=self.require_box,
            numeric=self.numeric,
            interval_relations=self.interval_relations,
        )
