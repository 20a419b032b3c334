"""GPU only: sleep mode sequencing of the vLLM generator (run by test_gpu.py; needs a CUDA build of vLLM).

Checks the two user-reported failures: (1) stale weights after wake-up: weights pushed while the engine
sleeps must survive the wake-up (sync_weights wakes the weights before loading); (2) memory: sleep()
gives the KV cache (and weights) back to the trainer. Level 1 must keep the synced weights over a second
sleep/wake cycle without a sync; level 2 discards them, so its second cycle re-syncs after the wake-up,
as the RL stage does every step. Usage: python worker_sleep.py MODEL_DIR LEVEL OUT_JSON
"""

import json
import os
import sys

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

import torch  # noqa: E402

from rlvr.generate import GenerationConfig, Request, Sampling, build_generator, probe_gap, probe_sequences  # noqa: E402
from rlvr.models.load import load_model  # noqa: E402
from rlvr.world import World  # noqa: E402


class Trainer:
    def __init__(self, path):
        self.model = load_model(path, dtype="float32").to("cuda").eval()
        self.device = "cuda"

    def forward(self, **inputs):
        return self.model(**inputs)

    @property
    def scorer(self):
        from rlvr.models.scoring import token_scorer

        return token_scorer(self.forward, self.model)


def free_gib():
    return torch.cuda.mem_get_info()[0] / 2**30


def main():
    path, level, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    cfg = GenerationConfig(max_model_len=256, gpu_memory_utilization=0.3, sleep_mode=True, sleep_level=level,
                           use_tqdm=False)
    gen = build_generator(cfg, path, World(), dtype="float32", seed=0)
    trainer = Trainer(path)
    seqs = probe_sequences(gen.tokenizer, 4, 32)
    req = [Request(messages=[{"role": "user", "content": "What is 2 + 3?"}])]
    r = {"probe_initial": probe_gap(gen, trainer, seqs)["gen/logprob_gap_max"]}
    r["greedy_before"] = gen.generate(req, Sampling(temperature=0.0, max_tokens=16))[0][0].completion_ids
    r["free_awake"] = free_gib()
    gen.sleep()
    r["free_asleep"] = free_gib()
    with torch.no_grad():  # a "training step" while the engine sleeps
        for p in trainer.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    gen.sync_weights(trainer.model.named_parameters())  # while asleep: wakes the weights first
    gen.wake()
    r["probe_after_sleep_sync_wake"] = probe_gap(gen, trainer, seqs)["gen/logprob_gap_max"]
    r["greedy_after"] = gen.generate(req, Sampling(temperature=0.0, max_tokens=16))[0][0].completion_ids
    gen.sleep()
    gen.wake()
    if level == 2:
        # Level 2 discards the weights: vLLM 0.32's sleep-mode backend (device_allocator/sleep_mode_backend.py,
        # CuMemSleepModeBackend.suspend) offloads only the "weights" tag at level 1, and GPUWorker.sleep/wake_up
        # restore only the buffers (and sleep_preserve_parameter_names) at level 2. What the parameters hold
        # after this wake-up is undefined, so the RL stage re-syncs after every wake-up; so does this check.
        r["probe_level2_wake_without_sync"] = probe_gap(gen, trainer, seqs)["gen/logprob_gap_max"]  # not asserted
        gen.sync_weights(trainer.model.named_parameters())
    # level 1: a second cycle without a sync keeps the synced weights (the offloaded copy is the new one)
    r["probe_after_second_cycle"] = probe_gap(gen, trainer, seqs)["gen/logprob_gap_max"]
    with open(out, "w") as f:
        json.dump(r, f)
    gen.close()
    os._exit(0)


if __name__ == "__main__":
    main()
