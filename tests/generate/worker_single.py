"""Single-process generation checks on one in-process vLLM engine and one HF generator (run by
tests/generate/test_single.py in a subprocess, so vLLM's process-global state, such as its
torch.distributed group and the torch.set_num_threads no-op, stays out of the pytest process).

Usage: python worker_single.py MODEL_DIR OUT_JSON. Writes every measured quantity; the tests assert.
"""

import json
import os
import sys

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

import torch  # noqa: E402

from rlvr.generate import (  # noqa: E402
    GenerationConfig,
    Request,
    Sampling,
    StaleWeightsError,
    build_generator,
    check_probe,
    probe_gap,
    probe_sequences,
)
from rlvr.world import World  # noqa: E402


class Trainer:
    """The trainer side of the probe: an HF model with the backend's forward/device verbs."""

    def __init__(self, path):
        from rlvr.models.load import load_model

        self.model = load_model(path, dtype="float32").eval()
        self.device = "cpu"

    def forward(self, **inputs):
        return self.model(**inputs)

    @property
    def scorer(self):
        from rlvr.models.scoring import token_scorer

        return token_scorer(self.forward, self.model)


def trainer_gap(model, completions):
    """max |completion logprob - trainer log_softmax(logits / T)| over all tokens (T = 1)."""
    gap = 0.0
    with torch.no_grad():
        for c in completions:
            ids = torch.tensor([c.prompt_ids + c.completion_ids])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
            p = len(c.prompt_ids)
            ref = logp[p - 1:].gather(-1, ids[0, p:, None])[:, 0]
            gap = max(gap, (ref - torch.tensor(c.logprobs)).abs().max().item())
    return gap


def as_dict(c):
    return {"prompt_ids": c.prompt_ids, "completion_ids": c.completion_ids, "text": c.text,
            "logprobs": c.logprobs, "finish_reason": c.finish_reason}


def main():
    path, out_path = sys.argv[1], sys.argv[2]
    world = World()
    cfg = GenerationConfig(max_model_len=256, kv_cache_gib=1.0)
    vllm_gen = build_generator(cfg, path, world, dtype="float32", seed=0)
    hf_gen = build_generator(cfg.model_copy(update={"backend": "hf"}), path, world, dtype="float32", seed=0)
    trainer = Trainer(path)
    tok = vllm_gen.tokenizer
    reqs = [
        Request(messages=[{"role": "user", "content": "What is 2 + 3?"}]),
        Request(prompt="Let's think step by step."),
        Request(prompt_ids=tok("The final answer is", add_special_tokens=False)["input_ids"]),
    ]
    r = {}
    sampled = vllm_gen.generate(reqs, Sampling(n=4, max_tokens=24, logprobs=True, seed=1))
    r["sample_stats"] = vllm_gen.last_stats
    r["sampled"] = [[as_dict(c) for c in cs] for cs in sampled]
    r["sampled_gap"] = trainer_gap(trainer.model, [c for cs in sampled for c in cs])
    r["chat_prompt_ids"] = tok.apply_chat_template(reqs[0].messages, add_generation_prompt=True, tokenize=True)
    if not isinstance(r["chat_prompt_ids"], list):
        r["chat_prompt_ids"] = list(r["chat_prompt_ids"]["input_ids"])
    r["sampled_again"] = [[as_dict(c) for c in cs] for cs in
                          vllm_gen.generate(reqs, Sampling(n=4, max_tokens=24, logprobs=True, seed=1))]
    r["sampled_other_seed"] = [[as_dict(c) for c in cs] for cs in
                               vllm_gen.generate(reqs, Sampling(n=4, max_tokens=24, seed=2))]
    # An RL-sized seeded batch: more prompt tokens than one scheduler step takes, so vLLM would chunk
    # prefills; on CPU a seeded request with a partial prefill crashed ("CPU Generator does not use offset").
    long_prompt = tok("Solve step by step and box the result. " * 6 + "What is 17 + 25?", add_special_tokens=False)["input_ids"]
    big = vllm_gen.generate([Request(prompt_ids=long_prompt)] * 24, Sampling(n=8, max_tokens=8, logprobs=True, seed=5))
    r["big_seeded_batch"] = {"requests": len(big), "completions": sum(len(cs) for cs in big),
                             "prompt_tokens": 24 * 8 * len(long_prompt)}
    # a temperature / top-k / top-p setting: logprobs are those of the truncated, scaled distribution
    hot = vllm_gen.generate(reqs[:1], Sampling(n=4, max_tokens=8, temperature=0.7, top_k=20, logprobs=True, seed=3))
    r["hot"] = [as_dict(c) for c in hot[0]]
    for name, gen in (("vllm", vllm_gen), ("hf", hf_gen)):
        greedy = gen.generate(reqs, Sampling(n=1, temperature=0.0, max_tokens=32, logprobs=True))
        r[f"greedy_{name}"] = [as_dict(cs[0]) for cs in greedy]
        r[f"greedy_gap_{name}"] = trainer_gap(trainer.model, [cs[0] for cs in greedy])
    # stops: a stop token id taken from the greedy continuation, and a stop string
    g0 = r["greedy_vllm"][0]
    stop_id = g0["completion_ids"][3]
    for name, gen in (("vllm", vllm_gen), ("hf", hf_gen)):
        s = gen.generate(reqs[:1], Sampling(n=1, temperature=0.0, max_tokens=32, stop_token_ids=[stop_id]))
        r[f"stop_id_{name}"] = as_dict(s[0][0])
    r["stop_id"] = stop_id
    import re

    words = re.findall(r"[A-Za-z]{2,}", g0["text"][4:])
    stop_str = words[0][:2] if words else None
    r["stop_str"] = stop_str
    if stop_str:
        for name, gen in (("vllm", vllm_gen), ("hf", hf_gen)):
            s = gen.generate(reqs[:1], Sampling(n=1, temperature=0.0, max_tokens=32, stop=[stop_str]))
            r[f"stop_str_{name}"] = as_dict(s[0][0])
    hf_sampled = hf_gen.generate(reqs, Sampling(n=4, max_tokens=16, logprobs=True, seed=1))
    r["hf_stats"] = hf_gen.last_stats
    r["hf_sampled_gap"] = trainer_gap(trainer.model, [c for cs in hf_sampled for c in cs])
    r["hf_sampled"] = [[as_dict(c) for c in cs] for cs in hf_sampled]
    r["hf_sampled_again"] = [[as_dict(c) for c in cs] for cs in
                             hf_gen.generate(reqs, Sampling(n=4, max_tokens=16, seed=1))]

    # probe: equal weights, then the trainer moves without a sync (stale), then a sync
    seqs = probe_sequences(tok, cfg.probe_sequences, cfg.probe_length)
    r["probe_lengths"] = [len(s) for s in seqs]
    r["probe_initial"] = probe_gap(vllm_gen, trainer, seqs)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in trainer.model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    r["probe_stale"] = probe_gap(vllm_gen, trainer, seqs)
    try:
        check_probe(r["probe_stale"], cfg.probe_threshold)
        r["stale_error"] = None
    except StaleWeightsError as e:
        r["stale_error"] = str(e)
    r["sync_seconds"] = vllm_gen.sync_weights(trainer.model.named_parameters())
    r["probe_synced"] = probe_gap(vllm_gen, trainer, seqs)
    r["hf_sync_seconds"] = hf_gen.sync_weights(trainer.model.named_parameters())
    r["probe_synced_hf"] = probe_gap(hf_gen, trainer, seqs)
    after = vllm_gen.generate(reqs, Sampling(n=1, temperature=0.0, max_tokens=32, logprobs=True))
    r["greedy_after_sync"] = [as_dict(cs[0]) for cs in after]
    r["greedy_after_sync_gap"] = trainer_gap(trainer.model, [cs[0] for cs in after])
    with open(out_path, "w") as f:
        json.dump(r, f)
    vllm_gen.close()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
