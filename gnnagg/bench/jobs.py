"""Training jobs in worker processes: one pool for every study.

:func:`run_in_processes` calls a module-level ``worker(*args, on_epoch=tick)`` once per job in
``workers`` processes started with ``spawn`` (a fresh interpreter: no forked OpenMP or torch
state), each with ``max(1, threads // workers)`` torch threads, and forwards the epochs the
jobs finish to a progress bar; every study that trains several jobs (sizegen, poly, mesh)
runs them on it. Scripts that call it must guard their entry point with
``if __name__ == "__main__":`` (``spawn`` imports the main module); ``gnnagg-bench`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["MAX_JOBS", "run_in_processes", "worker_memo"]

# Each job is a process holding its own copy of the data and the torch runtime (a few hundred
# MB): more than this many at once is a typo, not a machine.
MAX_JOBS = 256


# Per worker process: the progress queue and the data its last job built (the next job of the
# same process usually needs the same data: same task and seed, or same data set and features).
_WORKER: dict[str, Any] = {}


def worker_memo(key: Any, build: Callable[[], Any]) -> Any:
    """``build()``, or what it returned for the same ``key`` in the previous call of this
    process: a worker keeps the data of one key at a time, so memory stays bounded."""
    if _WORKER.get("memo_key") != key:
        _WORKER.pop("memo", None)
        _WORKER["memo"], _WORKER["memo_key"] = build(), key
    return _WORKER["memo"]


def _init_worker(threads: int, queue: Any) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["queue"] = queue


def _call(job: int, worker: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    queue = _WORKER.get("queue")

    def tick(epoch: int, *_: Any) -> None:
        if queue is not None:
            queue.put((job, epoch))

    return worker(*args, on_epoch=tick)


def run_in_processes(
    worker: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    workers: int,
    threads: int,
    bar: Any,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[worker(*args, on_epoch=tick) for args in calls]``, computed in ``workers`` spawned
    processes with ``max(1, threads // workers)`` torch threads each; results in call order.
    The jobs start in call order. ``on_result(index, result)`` is called in this process as
    each job finishes, so that a caller can keep it before the others end.

    ``worker`` must be a module-level function (it is pickled by name) and its ``args``
    picklable. ``tick(epoch)`` advances ``bar`` (tqdm) to ``epoch`` finished epochs of that
    job. A job that raises fails the whole call, after the others already started have
    stopped."""
    import multiprocessing
    import queue as queue_module
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    if not calls:
        return []
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    try:
        ticks = manager.Queue()
        seen = [0] * len(calls)
        results: list[Any] = [None] * len(calls)
        with ProcessPoolExecutor(
            max_workers=min(workers, len(calls)),
            mp_context=context,
            initializer=_init_worker,
            initargs=(max(1, threads // workers), ticks),
        ) as pool:
            futures = {
                pool.submit(_call, i, worker, tuple(args)): i for i, args in enumerate(calls)
            }
            pending = set(futures)
            try:
                while pending:
                    finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    while True:
                        try:
                            job, epoch = ticks.get_nowait()
                        except queue_module.Empty:
                            break
                        bar.update(max(0, epoch - seen[job]))
                        seen[job] = max(seen[job], epoch)
                    for future in finished:
                        index = futures[future]
                        results[index] = future.result()
                        if on_result is not None:
                            on_result(index, results[index])
                        bar.set_postfix_str(f"{len(futures) - len(pending)}/{len(calls)} jobs done")
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return results
    finally:
        manager.shutdown()
