"""What the runner hands a stage (StageContext) and what a stage hands back (StageResult)."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.config import Recipe
from rlvr.rundir import RunDir
from rlvr.schema import UserError
from rlvr.tracking import Tracker
from rlvr.world import World


@dataclass
class StageResult:
    steps: int
    metrics: dict[str, Any] = field(default_factory=dict)
    output: str | None = None


@dataclass
class StageContext:
    recipe: Recipe
    cfg: Any  # the stage's config model (MidtrainStage, SftStage, ...)
    index: int
    world: World
    run: RunDir
    input_model: str
    tracker: Tracker
    resume: bool
    """Continue from the stage's newest checkpoint (False: start at step 0, as a --from-stage re-run does)."""
    superseded: Path
    """Where metrics.jsonl rows of steps this attempt redoes are moved (RUN_DIR/superseded/<time>/)."""
    _tokenizer: Any = field(default=None, repr=False)
    checkpointed: dict[str, Any] = field(default_factory=dict, repr=False)
    """More backends saved, resumed and exported with the stage's model (`also_checkpoint`)."""

    # ---------------------------------------------------------------- sizes
    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def step_offset(self) -> int:
        """Optimizer steps of this run's earlier stages (summary.json): this stage's step N is the run's
        global step step_offset + N, as a sweep over the run directory labels it."""
        done = {s["name"]: int(s.get("steps") or 0) for s in self.run.read_summary()["stages"]}
        return sum(done.get(s.name, 0) for s in self.recipe.stages[: self.index])

    @property
    def micro_batch_size(self) -> int:
        return self.cfg.micro_batch_size or self.recipe.backend.micro_batch_size

    @property
    def grad_accum(self) -> int:
        """The stage's accumulation: derived from global_batch_size when it is set (so the global batch is
        the same on any number of ranks), else grad_accum or the backend's."""
        G = self.cfg.global_batch_size
        if G is None:
            return self.cfg.grad_accum or self.recipe.backend.grad_accum
        W, micro = self.world.world_size, self.micro_batch_size
        if G % W:
            raise UserError(f"stage {self.name}: global_batch_size {G} cannot be split over {W} ranks; use a multiple "
                            f"of {W}, or run on a number of ranks that divides {G}")
        share = G // W
        if share % micro:
            fits = max(d for d in range(1, micro + 1) if share % d == 0)
            raise UserError(f"stage {self.name}: each of the {W} ranks takes {share} rows of global_batch_size {G}, "
                            f"not a multiple of micro_batch_size {micro}; set micro_batch_size to a divisor of "
                            f"{share} (e.g. {fits})")
        return share // micro

    @property
    def global_batch(self) -> int:
        return self.micro_batch_size * self.grad_accum * self.world.world_size

    # ---------------------------------------------------------------- model + backend
    def load_policy(self):
        """(tokenizer, model) of the stage's input model, in the recipe's training dtype; with the stage's
        `lora:` section, the model inside a LoRA adapter (rlvr.models.lora; A seeded by the recipe seed)."""
        from rlvr.models.load import load_model, load_tokenizer

        m = self.recipe.model
        tokenizer = load_tokenizer(self.input_model, trust_remote_code=m.trust_remote_code)
        model = load_model(self.input_model, dtype=m.dtype, trust_remote_code=m.trust_remote_code)
        if self.cfg.lora is not None:
            from rlvr.models.lora import apply_lora

            model = apply_lora(model, self.cfg.lora, self.recipe.seed)
        return tokenizer, model

    def wrap(self, model: Any, total_steps: int, grad_accum: int | None = None, optim: Any = None,
             token_scores: bool = True):
        """The model under the training backend; `grad_accum` overrides the configured value for
        stages that derive it (rlvr); `optim` the stage's optimizer (a second model's, e.g. PPO's critic);
        `token_scores=False` for a model without an LM head."""
        from rlvr.backend import DeepSpeedBackend

        return DeepSpeedBackend.wrap(
            model, world=self.world, config=self.recipe.backend, optim=optim or self.cfg.optim,
            dtype=self.recipe.model.dtype, total_steps=total_steps,
            micro_batch_size=self.micro_batch_size, grad_accum=grad_accum or self.grad_accum,
            token_scores=token_scores,
        )

    def also_checkpoint(self, name: str, backend: Any) -> None:
        """Save, resume and export `backend` together with the stage's model: in checkpoints/step-N/<name>/,
        and at the end to stages/<stage>/<name>/ (PPO's critic). Register before `resume_from`."""
        self.checkpointed[name] = backend

    # ---------------------------------------------------------------- checkpoints
    def resume_from(self, backend: Any, fingerprint: str) -> int:
        """The step to start at: 0, or the step of the newest checkpoint when resuming. Rows that
        metrics.jsonl holds for later steps (logged before a kill, redone now) move to superseded/."""
        from rlvr.checkpoint import load_newest_intact

        loaded = load_newest_intact(backend, self.run.checkpoints(self.name), self.world,
                                    others=self.checkpointed) if self.resume else None
        start = 0
        if loaded is not None:
            path, state = loaded
            if state.get("data_fingerprint") != fingerprint:
                raise UserError(
                    f"{path}: the stage's data changed since this checkpoint was written "
                    f"({state.get('data_fingerprint')} != {fingerprint}); resuming would skip or repeat rows. "
                    "Start a new run (or restore the data)."
                )
            start = int(state["step"])
            self.world.print0(f"[{self.name}] resumed from {path} (step {start})")
        elif self.resume:
            why = ("save_every is 0, so it checkpoints only at its end" if not self.cfg.save_every
                   else f"it stopped before its first checkpoint (save_every {self.cfg.save_every})")
            self.world.print0(f"[{self.name}] restarting from step 0: no checkpoint in "
                              f"{self.run.checkpoints(self.name)} ({why})")
        if self.world.is_main:
            redone = self.run.move_metric_rows(
                lambda row: row.get("stage") == self.name and not (0 < start and row.get("step", 0) <= start),
                self.superseded / "metrics.jsonl")
            if redone:
                print(f"[{self.name}] moved {redone} metrics.jsonl row(s) of steps after {start} (redone now) "
                      f"to {self.superseded}/", flush=True)
        self.world.barrier()
        return start

    def history(self, start: int) -> list[dict[str, Any]]:
        """The rows the stage logged for steps 1..start before a resume (empty from step 0), so its
        summary covers every step, as an uninterrupted run's does."""
        return self.run.stage_history(self.name, start)

    def save(self, backend: Any, step: int, fingerprint: str) -> Path:
        from rlvr.checkpoint import save_checkpoint

        return save_checkpoint(backend, self.run.checkpoints(self.name), step,
                               {"stage": self.name, "data_fingerprint": fingerprint}, self.world,
                               keep=self.cfg.keep_checkpoints, others=self.checkpointed)

    def after_step(self, backend: Any, step: int, total: int, fingerprint: str) -> None:
        """At the boundary after optimizer step `step`: the periodic checkpoint (save_every), the
        periodic HF export (export_every), then the preemption check (which may checkpoint and raise
        Preempted)."""
        if self.cfg.save_every and step % self.cfg.save_every == 0 and step < total:
            self.save(backend, step, fingerprint)
        if self.cfg.export_every and step % self.cfg.export_every == 0 and step < total:
            self.export_step(backend, step)
        self.stop_if_preempted(backend, step, fingerprint)

    def finish(self, backend: Any, tokenizer: Any, start: int, total: int, fingerprint: str) -> Path:
        """End of the stage's loop: the last checkpoint (unless no step ran in this attempt), the
        final/ export, and the backend freed. Returns the final/ path."""
        if start < total:
            self.save(backend, total, fingerprint)
        final = self.export(backend, tokenizer)
        for name, other in self.checkpointed.items():
            self.export(other, tokenizer, self.run.stage(self.name) / name)
            other.close()
        backend.close()
        return final

    def stop_if_preempted(self, backend: Any, step: int, fingerprint: str) -> None:
        """At a step boundary: when a stop was requested (preemption, SIGTERM, Ctrl-C), checkpoint
        `step` and raise Preempted."""
        from rlvr import preempt

        if reason := preempt.requested(self.run.root, self.world):
            path = self.save(backend, step, fingerprint)
            preempt.acknowledge(self.run.root, self.name, step, path, self.world)
            for other in self.checkpointed.values():
                other.close()
            backend.close()
            raise preempt.Preempted(self.name, step, path, reason)

    def export(self, backend: Any, tokenizer: Any, path: Path | None = None) -> Path:
        """Write final/ (or `path`) atomically: <name>.tmp, then rename."""
        final = path or self.run.final(self.name)
        tmp = final.with_name(final.name + ".tmp")
        if self.world.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        self.world.barrier()
        backend.export_hf(tmp, tokenizer)
        if self.world.is_main:
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        self.world.barrier()
        return final

    def export_step(self, backend: Any, step: int) -> Path:
        """exports/step-<step>/: a Hugging Face checkpoint of the current weights, for evaluation
        sweeps (a stage never changes the tokenizer, so the input model's is saved with it)."""
        if self._tokenizer is None:
            from rlvr.models.load import load_tokenizer

            self._tokenizer = load_tokenizer(self.input_model, trust_remote_code=self.recipe.model.trust_remote_code)
        path = self.export(backend, self._tokenizer, self.run.stage(self.name) / "exports" / f"step-{step}")
        self.world.print0(f"[{self.name}] exported step {step} -> {path}")
        return path


def fingerprint(obj: Any) -> str:
    """A short stable hash of JSON-able data (used to detect changed data on resume)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
