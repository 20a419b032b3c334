"""The order in which a stage visits its rows."""

from __future__ import annotations

import random


class EpochOrder:
    """Row order as a pure function of (seed, step): resuming at step s needs no saved iterator."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self._cache: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._cache:
            perm = list(range(self.n))
            random.Random(f"{self.seed}|{epoch}").shuffle(perm)
            self._cache = {epoch: perm}
        return self._cache[epoch]

    def global_batch(self, step: int, size: int) -> list[int]:
        idx = range(step * size, (step + 1) * size)
        return [self._perm(i // self.n)[i % self.n] for i in idx]
