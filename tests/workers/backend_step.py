"""torchrun worker: one training step through the backend facade, then a save/load round trip.

Writes a JSON result (rank 0) to argv[2]. Checks: loss finite, every parameter changed, the loaded
state is bit-identical to the saved one, and a step taken after loading equals the step taken
right after saving (so optimizer and lr-schedule state were restored too). Also records the grad
norm the backend reports for the first step next to one computed by hand on an unwrapped copy of
the model over the whole global batch (clipping is set below that norm, so a post-clip value shows).
"""

import copy
import json
import math
import os
import sys

import torch

from rlvr.backend import DeepSpeedBackend
from rlvr.config import BackendConfig, OptimConfig, TinyModelSpec
from rlvr.models.tiny import build_model
from rlvr.world import World

CLIP = 0.05  # below the first step's grad norm, so clipping happens


def one_step(backend, world, ids):
    x = ids[world.rank * 2:(world.rank + 1) * 2].to(backend.device)
    logits = backend.forward(input_ids=x).logits
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                            x[:, 1:].reshape(-1), reduction="sum")
    backend.backward(nll / (x[:, 1:].numel() * world.world_size))
    return float(nll), backend.step().grad_norm


def hand_grad_norm(model, ids):
    """2-norm of d(mean token NLL over every rank's rows)/d(theta), without DeepSpeed."""
    logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                             ids[:, 1:].reshape(-1))
    loss.backward()
    return math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in model.parameters() if p.grad is not None))


def main():
    stage, out, ckpt = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    world = World.from_env()
    spec = TinyModelSpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128)
    model = build_model(spec, 128)
    ids = torch.randint(0, 128, (2 * world.world_size, 12), generator=torch.Generator().manual_seed(0))
    hand_norm = hand_grad_norm(copy.deepcopy(model), ids)  # before ZeRO-3 partitions `model` in place
    backend = DeepSpeedBackend.wrap(model, world=world, config=BackendConfig(zero_stage=stage, micro_batch_size=2),
                                    optim=OptimConfig(lr=1e-2, weight_decay=0.01, grad_clip=CLIP), dtype="float32",
                                    total_steps=10)
    p0 = dict(backend.iter_full_params())
    loss, grad_norm = one_step(backend, world, ids)
    p1 = dict(backend.iter_full_params())
    backend.save_state(ckpt)
    one_step(backend, world, ids)
    p2a = dict(backend.iter_full_params())
    backend.load_state(ckpt)
    loaded = dict(backend.iter_full_params())
    one_step(backend, world, ids)
    p2b = dict(backend.iter_full_params())
    result = {
        "loss": loss,
        "finite": math.isfinite(loss),
        "n_params": len(p0),
        "changed": sum(not torch.equal(p0[k], p1[k]) for k in p0),
        "reload_identical": all(torch.equal(p1[k], loaded[k]) for k in p1),
        "step_after_reload_identical": all(torch.equal(p2a[k], p2b[k]) for k in p2a),
        "world_size": world.world_size,
        "grad_norm": grad_norm,
        "hand_grad_norm": hand_norm,
        "grad_clip": CLIP,
    }
    if world.is_main:
        with open(out, "w") as f:
            json.dump(result, f)
    backend.close()
    world.shutdown()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
