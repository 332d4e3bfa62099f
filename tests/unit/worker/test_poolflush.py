"""The pool's flush keeps a job whole in a live process's hands; other unaccepted jobs go, as in Celery."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from billiard.pool import ApplyResult

from bridge.worker.poolflush import keep_handed_jobs


class Process:
    def __init__(self, alive: bool = True) -> None:
        self.alive = alive

    def _is_alive(self) -> bool:
        return self.alive


def writer(steps: int) -> Iterator[None]:
    """Stands for AsynPool's ``_write_job`` generator: ``steps`` more writes before the job is whole."""
    for _ in range(steps):
        yield


class Pool:
    """AsynPool's books and the part of its ``flush`` the bridge corrects (asynpool.py, ``flush``)."""

    def __init__(self) -> None:
        self._cache: dict[int, Any] = {}
        self.writers: list[Iterator[None]] = []  # the hub's hold on writes still under way

    def job(self, *, process: Process | None = None, write_steps: int = 0, accepted: bool = False) -> Any:
        job = ApplyResult(self._cache, None)
        job._accepted = accepted
        if process is not None:  # the pool began writing it to that process
            job._write_to = process
            gen = writer(write_steps)
            next(gen, None)
            self.writers.append(gen)
            job._writer = weakref.ref(gen)
        return job

    def flush(self) -> None:
        for job in tuple(self._cache.values()):
            if not job._accepted:
                job.discard()


def task_pool(pool: Pool) -> Any:
    return SimpleNamespace(_pool=pool, flush=pool.flush)


def test_a_job_whole_in_a_live_process_stays_on_the_books_and_no_other_unaccepted_job_does() -> None:
    pool = Pool()
    written = pool.job(process=Process(), write_steps=0)
    running = pool.job(process=Process(), accepted=True)
    half_written = pool.job(process=Process(), write_steps=2)  # a shutdown abandons the rest of it
    to_a_dead_process = pool.job(process=Process(alive=False))
    never_written = pool.job()
    tasks = task_pool(pool)
    keep_handed_jobs(tasks)

    tasks.flush()

    assert set(pool._cache) == {written._job, running._job}
    assert {half_written._job, to_a_dead_process._job, never_written._job}.isdisjoint(pool._cache)


def test_the_flush_is_wrapped_once_however_often_the_consumer_starts() -> None:
    pool = Pool()
    tasks = task_pool(pool)
    keep_handed_jobs(tasks)
    wrapped = tasks.flush
    keep_handed_jobs(tasks)  # a consumer restarted after a lost connection
    assert tasks.flush is wrapped


def test_a_pool_without_books_or_flush_is_left_alone() -> None:
    solo = SimpleNamespace(_pool=None, flush=lambda: None)
    flush = solo.flush
    keep_handed_jobs(solo)
    assert solo.flush is flush
    blocking = SimpleNamespace(_pool=Pool(), flush=None)  # billiard's threaded pool has no flush
    keep_handed_jobs(blocking)
    assert blocking.flush is None
