"""rlvr.verify.graders: one config per grader, and the RL stage's reward audit (reward/audit_*), the
share of rollouts on which the training reward's grader and the recipe's evaluation grader disagree."""

from __future__ import annotations

import pytest

from rlvr.verify import Verifier, VerifierConfig
from rlvr.verify.graders import RewardAudit, grader_config, same_decisions

# (response, truncated): one_shot_reward | math  (docs/verifier.md, "Paper policies")
ROLLOUTS = [
    ("so \\boxed{12}.", False),                    # 1 | 1
    ("Either \\boxed{11} or \\boxed{12}", False),  # 1 | 0  hedged: the reward takes the last box
    ("it is \\boxed{12} and then", True),          # 1 | 0  truncated: the reward grades it
    ("The answer is 12.", False),                  # 0 | 1  no box: the reward finds no answer
    ("\\boxed{13}", False),                        # 0 | 0
]


def test_grader_config_keeps_settings_and_drops_the_other_policys_overrides():
    base = VerifierConfig(policy="math", timeout=3.0, workers=1, require_box=True)
    assert grader_config(base, "math") is base
    other = grader_config(base, "one_shot_reward")
    assert (other.policy, other.timeout, other.workers, other.require_box) == ("one_shot_reward", 3.0, 1, None)
    with pytest.raises(ValueError, match="unknown verifier policy"):
        grader_config(base, "lenient")
    assert same_decisions(VerifierConfig(policy="math", workers=4), VerifierConfig(policy="math", timeout=9.0))
    assert not same_decisions(VerifierConfig(policy="math"), VerifierConfig(policy="math", require_box=True))


def test_no_audit_when_the_graders_decide_alike():
    assert RewardAudit.between(VerifierConfig(), VerifierConfig(cache_size=0)) is None


def test_audit_counts_loose_and_strict_disagreements():
    reward = VerifierConfig(policy="one_shot_reward", workers=1)
    audit = RewardAudit.between(reward, VerifierConfig(policy="math", workers=1))
    texts, cut = [t for t, _ in ROLLOUTS], [c for _, c in ROLLOUTS]
    with Verifier(reward) as v:
        rewarded = v.verify_batch(texts, ["12"] * len(texts), truncated=cut)
    assert [r.score for r in rewarded] == [1, 1, 1, 0, 0]
    audit.record(texts, ["12"] * len(texts), cut, rewarded)
    assert audit.metrics() == pytest.approx({"reward/audit_disagree": 3 / 5, "reward/audit_loose": 2 / 5,
                                             "reward/audit_strict": 1 / 5})
    # the counts are per step: the next step starts from zero; sums go through the rank reduction
    audit.record(texts[:1], ["12"], cut[:1], rewarded[:1])
    assert audit.metrics(lambda x: 2 * x)["reward/audit_disagree"] == 0.0
    audit.close()


def test_the_rl_stage_logs_the_audit_per_step():
    """collect_rollouts (steps 1-2 of the RL stage) with a scripted engine: the reward is the
    one_shot_reward grader's, and the step's stats carry the audit against the recipe's `math`."""
    from rlvr.config import RlvrStage
    from rlvr.data.order import EpochOrder
    from rlvr.generate.types import Completion
    from rlvr.stages.rlvr import RolloutSource, collect_rollouts
    from rlvr.world import World

    class Scripted:
        def generate(self, requests, sampling):
            return [[Completion(prompt_ids=[1], completion_ids=[2], text=t, logprobs=[0.0], finish_reason="length" if c else "stop")
                     for t, c in ROLLOUTS] for _ in requests]

    cfg = RlvrStage(name="rl", type="rlvr", data={"toy": {}}, prompts_per_step=2, rollouts_per_prompt=len(ROLLOUTS),
                    reward={"policy": "one_shot_reward"})
    reward = grader_config(VerifierConfig(workers=1), cfg.reward.policy)
    prompts = [{"ids": [1], "answer": "12", "id": f"p{i}"} for i in range(2)]
    with Verifier(reward) as verifier:
        src = RolloutSource(cfg, World(), Scripted(), verifier, prompts, orders=(EpochOrder(2, 0), EpochOrder(2, 1)),
                            seed=0, eos_id=0, audit=RewardAudit.between(reward, VerifierConfig(workers=1)))
        rollouts, _, stats = collect_rollouts(src, 0, 1.0)
    assert [r.reward for r in rollouts[:5]] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert stats["reward/audit_disagree"] == pytest.approx(3 / 5)
    assert stats["reward/audit_loose"] == pytest.approx(2 / 5)
