"""Generation from the tiny model padded to a real vocabulary, with vLLM (in-process engine) and the HF
generator (run by tests/test_tiny_vocab.py in a subprocess, so vLLM's process-global state stays out of
pytest). Usage: python tiny_vocab_worker.py MODEL_DIR OUT_JSON; writes the completions, the tests assert."""

import json
import os
import sys

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

from rlvr.generate import GenerationConfig, Request, Sampling, build_generator  # noqa: E402
from rlvr.world import World  # noqa: E402

model_dir, out_path = sys.argv[1], sys.argv[2]
requests = [Request(messages=[{"role": "user", "content": f"What is {a} + {b}?"}]) for a, b in [(3, 4), (47, 38)]]
sampled = Sampling(n=2, temperature=1.0, max_tokens=16, seed=0)
greedy = Sampling(temperature=0.0, max_tokens=16)
result = {}
for backend in ("hf", "vllm"):
    config = GenerationConfig(backend=backend, max_model_len=512, kv_cache_gib=0.25, use_tqdm=False)
    gen = build_generator(config, model_dir, World(), dtype="float32", seed=0)
    result[backend] = {
        "tokenizer_size": len(gen.tokenizer),
        "completions": [c.__dict__ for cs in gen.generate(requests, sampled) + gen.generate(requests, greedy)
                        for c in cs],
    }
    gen.close()
with open(out_path, "w") as f:
    json.dump(result, f)
