"""The guest thread pool: results and exceptions reach the loop, nothing queued is dropped."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from wasmgate.gateway.guest_pool import GuestPool


def test_results_and_exceptions_reach_the_awaiter() -> None:
    pool = GuestPool(2)

    def boom() -> None:
        raise ValueError("from a guest thread")

    async def main() -> None:
        assert await pool.submit(lambda a, b: a + b, 2, 3) == 5
        assert await pool.submit(threading.current_thread) is not threading.current_thread()
        with pytest.raises(ValueError, match="from a guest thread"):
            await pool.submit(boom)

    asyncio.run(main())
    pool.shutdown()


def test_runs_threads_jobs_at_once_and_queues_the_rest() -> None:
    # One key alone (here the default) may use every thread.
    pool = GuestPool(3)
    running = 0
    peak = 0
    lock = threading.Lock()

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def main() -> None:
        await asyncio.gather(*(pool.submit(job) for _ in range(9)))

    started = time.monotonic()
    asyncio.run(main())
    assert peak == 3
    assert time.monotonic() - started >= 0.15  # three rounds of three
    pool.shutdown()


def test_a_cancelled_awaiter_does_not_drop_the_job_and_shutdown_runs_the_queue() -> None:
    pool = GuestPool(1)
    done: list[int] = []

    def job(i: int) -> int:
        time.sleep(0.02)
        done.append(i)
        return i

    async def main() -> None:
        futures = [pool.submit(job, i) for i in range(5)]
        futures[0].cancel()
        await asyncio.sleep(0)

    asyncio.run(main())  # returns while jobs are still queued; their loop is closed
    pool.shutdown()
    assert done == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="shut down"):
        asyncio.run(_submit(pool))


async def _submit(pool: GuestPool) -> None:
    await pool.submit(lambda: None)


def test_a_flooded_key_does_not_hold_back_the_others() -> None:
    pool = GuestPool(2)
    finished: dict[str, float] = {}

    def job(name: str, seconds: float) -> None:
        time.sleep(seconds)
        finished[name] = time.monotonic()

    async def main() -> float:
        started = time.monotonic()
        slow = [pool.submit(job, f"slow{i}", 0.2, key="hostile") for i in range(10)]
        await asyncio.sleep(0.05)  # the flood holds both threads and has 8 more queued
        quick = [pool.submit(job, f"quick{i}", 0.0, key="good") for i in range(3)]
        await asyncio.gather(*quick)
        quick_done = time.monotonic() - started
        await asyncio.gather(*slow)
        return quick_done

    quick_done = asyncio.run(main())
    # The good key waited for one slow job at most (then kept a thread), not for the backlog.
    assert quick_done < 0.6, quick_done
    assert max(finished[f"slow{i}"] for i in range(10)) > max(
        finished[f"quick{i}"] for i in range(3)
    )
    pool.shutdown()


def test_a_capped_key_leaves_a_thread_free_for_the_others() -> None:
    pool = GuestPool(2)
    started: dict[str, float] = {}

    def job(name: str, seconds: float) -> None:
        started[name] = time.monotonic()
        time.sleep(seconds)

    async def main() -> float:
        slow = [pool.submit(job, f"slow{i}", 0.3, key="slow", capped=True) for i in range(3)]
        await asyncio.sleep(0.05)
        asked = time.monotonic()
        await pool.submit(job, "quick", 0.0, key="quick")
        waited = started["quick"] - asked
        await asyncio.gather(*slow)
        return waited

    waited = asyncio.run(main())
    assert waited < 0.1, waited  # the free thread took it at once
    # the capped key ran one job at a time although it was alone at first
    starts = sorted(started[f"slow{i}"] for i in range(3))
    assert starts[1] - starts[0] >= 0.25
    pool.shutdown()
