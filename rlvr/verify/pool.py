"""A pool of long-lived worker processes for the symbolic fallback, with a hard per-item deadline.

Why processes and a parent-side clock: math-verify's own timeouts use ``signal.alarm``, which only
works in the main thread and cannot interrupt C-level bignum work (verifier-notes.md §3, §5.6).
Here the *parent* waits on the workers' pipes with a deadline; a worker that overruns is killed
(SIGKILL) and respawned, and its item is reported as ``timeout``. A worker that dies mid-item
(OOM under its RLIMIT_AS cap, or an external ``kill -9``) is respawned and the item retried once
within what is left of its budget. Workers start with the ``forkserver`` context (``spawn`` where
forkserver is unavailable): the caller may hold threads, CUDA, torch or vLLM, so ``fork`` is unsafe.
Nothing here uses signals in the caller, so it behaves the same from any thread or process.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait

START_TIMEOUT = 60.0  # seconds a fresh worker may take to import sympy and report ready
MAX_START_FAILURES = 3  # workers dying before "ready" in a row: give up on this batch, fail closed


def worker_main(conn, memory_mb: int) -> None:
    """Worker loop: cap memory, import the fallback once, then judge items until the pipe closes."""
    try:
        import resource

        cap = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (ImportError, ValueError, OSError):
        pass  # no RLIMIT_AS on this platform: the wall-clock kill still bounds every item
    from rlvr.verify import symbolic

    symbolic._setup()
    try:  # warm the LaTeX parser and sympy caches before the first item's clock starts
        symbolic.judge("x^2+1", "1+x^2")
    except Exception:  # noqa: BLE001
        pass
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        key, pred, gold, relations = task
        try:
            reason = symbolic.judge(pred, gold, relations)
        except MemoryError:
            reason = "rejected_prescreen"
        except Exception:  # noqa: BLE001 - a parser crash on model output is "unparseable", not fatal
            reason = "unparseable"
        conn.send((key, reason))


def _add_forkserver_preload(ctx, modules: list[str]) -> None:
    """Have the fork server import sympy/math-verify once, so a respawn after a kill is a cheap fork.

    Adds to (never replaces) a preload list the caller may have set; only takes effect if the
    fork server has not started yet. Never preloads the caller's ``__main__``.
    """
    try:
        from multiprocessing import forkserver

        current = list(getattr(forkserver._forkserver, "_preload_modules", []))
        current = [m for m in current if m != "__main__"]
        ctx.set_forkserver_preload(current + [m for m in modules if m not in current])
    except Exception:  # noqa: BLE001 - preloading is an optimisation only
        pass


def _context():
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        _add_forkserver_preload(ctx, ["rlvr.verify.pool", "rlvr.verify.symbolic", "math_verify"])
        return ctx
    return mp.get_context("spawn")


@contextlib.contextmanager
def _main_module_hidden():
    """Start children without re-importing the caller's ``__main__``.

    spawn/forkserver children normally re-run the parent's main script (as ``__mp_main__``) before
    the target starts: an unguarded training script would run again, and a guarded one would still
    import torch/vLLM in every verifier worker. The worker needs nothing from ``__main__``, so the
    main module's file and spec are hidden while ``Process.start()`` snapshots them.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved_file = main.__dict__.pop("__file__", None)
    saved_spec = getattr(main, "__spec__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        if saved_file is not None:
            main.__file__ = saved_file
        main.__spec__ = saved_spec


@dataclass
class _Worker:
    proc: object
    conn: object
    ready: bool = False
    started: float = field(default_factory=time.monotonic)
    task: tuple | None = None  # (key, pred, gold, relations)
    deadline: float = 0.0
    dispatched: float = 0.0
    budget: float = 0.0


@dataclass
class _Item:
    key: object
    pred: str
    gold: str
    relations: bool
    budget: float
    spent: float = 0.0
    tries: int = 0


class WorkerPool:
    """``run(items)`` judges (key, pred, gold, relations, budget) items, returns {key: (reason, secs)}."""

    def __init__(self, workers: int, memory_mb: int = 4096):
        self.size = max(1, workers)
        self.memory_mb = memory_mb
        self._ctx = _context()
        self._workers: list[_Worker] = []
        self.restarts = 0
        self._start_failures = 0

    # -------------------------------------------------------------- lifecycle
    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=worker_main, args=(child, self.memory_mb), daemon=True)
        with _main_module_hidden():
            proc.start()
        child.close()
        return _Worker(proc=proc, conn=parent)

    def start(self) -> None:
        """Spawn missing workers without waiting for them to become ready."""
        self._ensure()

    def _ensure(self) -> None:
        while len(self._workers) < self.size:
            self._workers.append(self._spawn())

    def _replace(self, w: _Worker) -> None:
        try:
            w.proc.kill()
            w.proc.join(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        w.conn.close()
        self._workers.remove(w)
        self._workers.append(self._spawn())
        self.restarts += 1

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.ready]

    def busy_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.task is not None]

    def close(self) -> None:
        for w in self._workers:
            try:
                w.conn.send(None)
            except Exception:  # noqa: BLE001
                pass
        for w in self._workers:
            w.proc.join(timeout=1)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=5)
            w.conn.close()
        self._workers = []

    # -------------------------------------------------------------- running items
    def run(self, items: list[tuple]) -> dict:
        """Judge items; every item gets a result (``timeout`` when its budget runs out)."""
        self._ensure()
        queue = deque(_Item(*it) for it in items)
        results: dict = {}
        self._start_failures = 0
        while queue or any(w.task for w in self._workers):
            if self._start_failures >= MAX_START_FAILURES:
                self._fail_closed(queue, results)
                break
            now = time.monotonic()
            for w in self._workers:
                if w.ready and w.task is None and queue:
                    self._dispatch(w, queue.popleft(), now)
            self._wait_and_collect(queue, results)
        return results

    def _dispatch(self, w: _Worker, item: _Item, now: float) -> None:
        left = item.budget - item.spent
        w.task, w.dispatched, w.deadline = item, now, now + left
        w.conn.send((item.key, item.pred, item.gold, item.relations))

    def _wait_and_collect(self, queue: deque, results: dict) -> None:
        now = time.monotonic()
        deadlines = [w.deadline for w in self._workers if w.task is not None]
        deadlines += [w.started + START_TIMEOUT for w in self._workers if not w.ready]
        timeout = max(0.0, min(deadlines) - now) if deadlines else 0.05
        ready = wait([w.conn for w in self._workers], timeout=timeout)
        by_conn = {id(w.conn): w for w in self._workers}
        for conn in ready:
            w = by_conn.get(id(conn))
            if w is not None:
                self._receive(w, queue, results)
        now = time.monotonic()
        for w in list(self._workers):
            if w.task is not None and now >= w.deadline:
                item = w.task
                results[item.key] = ("timeout", item.spent + (now - w.dispatched))
                self._replace(w)
            elif not w.ready and now - w.started > START_TIMEOUT:
                self._replace(w)
                self._start_failures += 1

    def _fail_closed(self, queue: deque, results: dict) -> None:
        """Workers cannot start (e.g. an unguarded caller script under spawn): score 0, never hang."""
        warnings.warn(
            "rlvr.verify: symbolic-fallback workers failed to start; undecided items are scored "
            "0 with reason 'timeout'",
            RuntimeWarning,
            stacklevel=4,
        )
        while queue:
            item = queue.popleft()
            results[item.key] = ("timeout", item.spent)

    def _receive(self, w: _Worker, queue: deque, results: dict) -> None:
        try:
            msg = w.conn.recv()
        except (EOFError, OSError):
            self._died(w, queue, results)
            return
        if msg[0] == "ready" and not w.ready:
            w.ready = True
            self._start_failures = 0
            return
        key, reason = msg
        item = w.task
        if item is None or key != item.key:
            return
        results[key] = (reason, item.spent + (time.monotonic() - w.dispatched))
        w.task = None

    def _died(self, w: _Worker, queue: deque, results: dict) -> None:
        item = w.task
        if not w.ready:
            self._start_failures += 1
        self._replace(w)
        if item is None:
            return
        item.spent += time.monotonic() - w.dispatched
        item.tries += 1
        if item.tries <= 1 and item.spent < item.budget:
            queue.appendleft(item)  # retried first, with what is left of its budget
        else:
            results[item.key] = ("timeout", item.spent)
