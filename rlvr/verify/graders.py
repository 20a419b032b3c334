"""Several graders side by side: one verifier config per policy, and the reward audit of an RL stage.

A *grader* is a VerifierConfig whose policy decides the verdicts. Two graders of one recipe share the
recipe `verifier`'s operational settings (workers, timeout, memory cap, cache size); the policy
overrides (require_box, numeric, interval_relations) belong to the recipe's own policy and are not
carried to another one.

The reward audit (docs/verifier.md, "Two graders in training"): when an RL stage trains on one policy
(`reward.policy`) and the recipe evaluates with another (`verifier.policy`), each rollout the reward
judged is also judged by the evaluation grader (in its own Verifier: same pool, timeouts and memory
cap), and the step logs

    reward/audit_disagree  share of the step's rollouts on which the two verdicts differ
    reward/audit_loose     share the reward counts correct and the evaluation grader does not
    reward/audit_strict    share the evaluation grader counts correct and the reward does not

so a reward that is too loose or too strict for the score the run is judged by shows while it trains.
Nothing is judged twice when the two graders make the same decisions.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable, Sequence

from rlvr.verify.config import VerifierConfig
from rlvr.verify.verifier import Result


def grader_config(base: VerifierConfig, policy: str) -> VerifierConfig:
    """`base` judging with `policy` (base itself when it already does). ValueError for an unknown policy."""
    if policy == base.policy:
        return base
    data = {**base.model_dump(), "policy": policy, "require_box": None, "numeric": None, "interval_relations": None}
    return VerifierConfig.model_validate(data)


def same_decisions(a: VerifierConfig, b: VerifierConfig) -> bool:
    """True when the two configs resolve to the same policy settings (every verdict agrees)."""
    return a.resolved_policy() == b.resolved_policy()


class RewardAudit:
    """Judges the reward's rollouts again with the evaluation grader and counts the disagreements.

    `record` after each batch the reward judged; `metrics` once per step (sums over ranks with
    `reduce_sum`, e.g. World.all_reduce_sum) returns the shares and starts the next step's counts.
    """

    def __init__(self, evaluation: VerifierConfig):
        self.config = evaluation
        self._verifier = None
        self._counts = [0, 0, 0]  # judged, loose (reward 1, evaluation 0), strict (reward 0, evaluation 1)

    @classmethod
    def between(cls, reward: VerifierConfig, evaluation: VerifierConfig) -> RewardAudit | None:
        """An audit when the two graders can disagree; None (no cost) when they make the same decisions."""
        return None if same_decisions(reward, evaluation) else cls(evaluation)

    def record(self, texts: Sequence[str], golds: Sequence, truncated: Sequence[bool],
               rewarded: Sequence[Result]) -> None:
        if self._verifier is None:
            from rlvr.verify.verifier import Verifier

            self._verifier = Verifier(self.config)
            atexit.register(self.close)  # the stage need not close it: its workers stop with the process
        judged = self._verifier.verify_batch(list(texts), list(golds), truncated=list(truncated))
        self._counts[0] += len(judged)
        for r, e in zip(rewarded, judged, strict=True):
            self._counts[1] += r.score == 1.0 and e.score != 1.0
            self._counts[2] += r.score != 1.0 and e.score == 1.0

    def metrics(self, reduce_sum: Callable[[float], float] = float) -> dict[str, float]:
        n, loose, strict = (reduce_sum(c) for c in self._counts)
        self._counts = [0, 0, 0]
        n = max(n, 1.0)
        return {"reward/audit_disagree": (loose + strict) / n, "reward/audit_loose": loose / n,
                "reward/audit_strict": strict / n}

    def close(self) -> None:
        if self._verifier is not None:
            self._verifier.close()
            self._verifier = None
