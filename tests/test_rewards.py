"""1-shot RLVR's controls and ablations (issue #17 item 4): each reward kind is what it says, pg_coef
scales only the policy term, and `extends:` recipes are the keys they change."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from rlvr.config import ConfigError, RlvrStage, dump_recipe, load_recipe
from rlvr.rl.objectives import OBJECTIVES, ObjectiveConfig, ObjectiveInputs
from rlvr.rl.rewards import REWARDS, Judged, reward_draw

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ reward kinds
@pytest.mark.parametrize(("correct", "answered", "truncated"), [(c, a, t) for c in (0, 1) for a in (0, 1) for t in (0, 1)])
def test_reward_kinds_read_what_they_say(correct, answered, truncated):
    j = Judged(correct=bool(correct), answered=bool(answered), truncated=bool(truncated), u=0.3)
    assert REWARDS["correctness"](j, 0.5) is bool(correct)
    assert REWARDS["incorrect_label"](j, 0.5) is bool(correct)  # the verdict, against reward.label
    assert REWARDS["format"](j, 0.5) is (bool(answered) and not truncated)  # right or wrong
    assert REWARDS["random"](j, 0.5) is True and REWARDS["random"](j, 0.2) is False  # u = 0.3: nothing else counts


def test_the_random_reward_is_a_seeded_bernoulli():
    draws = [reward_draw(0, step, 0, 0, i) for step in range(50) for i in range(200)]
    assert draws == [reward_draw(0, step, 0, 0, i) for step in range(50) for i in range(200)]  # reruns agree
    assert all(0 <= u < 1 for u in draws)
    for p in (0.1, 0.5, 0.9):
        rate = sum(u < p for u in draws) / len(draws)
        assert abs(rate - p) < 4 * (p * (1 - p) / len(draws)) ** 0.5, (p, rate)
    other = [reward_draw(1, step, 0, 0, i) for step in range(50) for i in range(200)]
    assert sum(a == b for a, b in zip(draws, other, strict=True)) == 0  # another seed, other draws


def test_incorrect_label_needs_its_label():
    with pytest.raises(ValueError, match="reward.label"):
        RlvrStage(name="rl", type="rlvr", data={"toy": {}}, reward={"kind": "incorrect_label"})
    with pytest.raises(ValueError, match="reward.label"):
        RlvrStage(name="rl", type="rlvr", data={"toy": {}}, reward={"label": "4"})
    assert RlvrStage(name="rl", type="rlvr", data={"toy": {}}, reward={"kind": "incorrect_label", "label": "4"})


class _Scripted:
    """A generator returning fixed completions: the reward path is under test, not sampling."""

    def __init__(self, texts: list[str]):
        self.texts, self.dp_rank, self.dp_size, self.last_stats = texts, 0, 1, {}

    def generate(self, requests, sampling):
        from rlvr.generate import Completion

        return [[Completion(prompt_ids=[1], completion_ids=[2, 3], text=t, logprobs=[-1.0, -1.0], finish_reason="stop")
                 for t in self.texts[: sampling.n]] for _ in requests]


@pytest.mark.parametrize(("kind", "label", "expect"), [
    ("correctness", None, [1, 0, 0, 0]),
    ("incorrect_label", "4", [0, 1, 0, 0]),
    ("format", None, [1, 1, 1, 0]),
])
def test_the_stage_rewards_rollouts_by_kind(kind, label, expect):
    from rlvr.data.order import EpochOrder
    from rlvr.stages.rlvr import RolloutSource, generate_round
    from rlvr.verify import Verifier, VerifierConfig
    from rlvr.world import World

    cfg = RlvrStage(name="rl", type="rlvr", data={"toy": {}}, prompts_per_step=1, rollouts_per_prompt=4,
                    reward={"kind": kind, "label": label})
    texts = ["so \\boxed{12.8}", "so \\boxed{4}", "so \\boxed{7}", "I cannot tell"]
    verifier = Verifier(VerifierConfig())
    try:
        src = RolloutSource(cfg, World(), _Scripted(texts), verifier, [{"ids": [1], "answer": "12.8", "id": 0}],
                            orders=(EpochOrder(1, 0), EpochOrder(1, 1)), seed=0, eos_id=0)
        rollouts, _ = generate_round(src, [0], 0, 0, 1.0)
    finally:
        verifier.close()
    assert [r.reward for r in rollouts] == expect


# ------------------------------------------------------------------------------------ pg_coef
def _inputs() -> ObjectiveInputs:
    g = torch.Generator().manual_seed(0)
    B, T = 4, 6
    lp = (-torch.rand(B, T, generator=g)).requires_grad_()
    ent = torch.rand(B, T, generator=g).requires_grad_()
    mask = (torch.arange(T) < torch.tensor([[6], [2], [4], [1]])).float()
    return ObjectiveInputs(logp=lp, old_logp=lp.detach() + 0.05, advantages=torch.randn(B, generator=g), mask=mask,
                           entropy=ent, ref_logp=lp.detach() - 0.1, rollout_logp=None, n_tokens=13.0, n_seqs=4.0,
                           norm_len=6.0)


def _config(**over) -> ObjectiveConfig:
    return ObjectiveConfig(**{"clip_low": 0.2, "clip_high": 0.2, "loss_agg": "token-mean", "entropy_coef": 0.01,
                              "kl_coef": 0.05, "kl_kind": "k3", "kl_in_loss": True, "tis_cap": None, **over})


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_pg_coef_scales_the_policy_term_only(objective):
    fn = OBJECTIVES[objective]
    x = _inputs()
    full, m = fn(x, _config())
    zero, m0 = fn(x, _config(pg_coef=0.0))
    half, _ = fn(x, _config(pg_coef=0.5))
    assert torch.allclose(full - zero, m["pg_loss"]) and torch.allclose(half - zero, 0.5 * m["pg_loss"])
    assert torch.equal(m0["pg_loss"], m["pg_loss"])  # reported before the coefficient
    # pg_coef 0 (entropy + KL only): no gradient flows through the policy term's ratio
    grad_zero = torch.autograd.grad(zero, [x.logp, x.entropy], retain_graph=True)
    kl_ent = 0.05 * m0["kl"] - 0.01 * m0["entropy"]
    grad_ref = torch.autograd.grad(kl_ent, [x.logp, x.entropy])
    assert all(torch.allclose(a, b) for a, b in zip(grad_zero, grad_ref, strict=True))


def test_pg_coef_one_is_the_objective_as_before():
    x = _inputs()
    loss, m = OBJECTIVES["grpo"](x, _config())
    assert torch.equal(loss, m["pg_loss"] + 0.05 * m["kl"] - 0.01 * m["entropy"])


# ------------------------------------------------------------------------------------ recipes
ABLATIONS = sorted((REPO / "recipes" / "ablations").glob("*.yaml"))


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.mark.parametrize("path", ABLATIONS, ids=[p.stem for p in ABLATIONS])
def test_an_ablation_is_one_shot_with_only_its_keys_changed(path):
    base = yaml.safe_load(dump_recipe(load_recipe(REPO / "recipes" / "one_shot.yaml")))
    mine = yaml.safe_load(dump_recipe(load_recipe(path)))
    own = yaml.safe_load(path.read_text())
    changed = {k for k, v in _flat(mine["stages"][0]).items() if _flat(base["stages"][0]).get(k) != v}
    declared = set(_flat(own["stages"][0])) - {"name"}
    assert changed <= declared and changed, (changed, declared)
    assert {k: v for k, v in mine.items() if k not in ("name", "stages")} == \
           {k: v for k, v in base.items() if k not in ("name", "stages")}


def test_extends_merges_stages_by_name_and_refuses_a_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\nstages: [{name: rl, max_steps: 3}]\n")
    (tmp_path / "b.yaml").write_text((REPO / "recipes" / "tiny_rl.yaml").read_text())
    r = load_recipe(tmp_path / "a.yaml")
    assert r.name == "a" and [s.name for s in r.stages] == ["sft", "rl"] and r.stage("rl").max_steps == 3
    assert r.stage("rl").rollouts_per_prompt == 8  # the rest is b's
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(ConfigError, match="a cycle"):
        load_recipe(tmp_path / "a.yaml")
