"""The collector's store thread: one thread, calls in order, to_thread.run_sync's semantics."""

from __future__ import annotations

import threading
import time

import pytest
import trio

from analyzer.collector.storethread import StoreThread


async def test_calls_run_in_order_on_one_other_thread() -> None:
    worker = StoreThread()
    seen: list[tuple[int, int]] = []

    def job(k: int) -> int:
        time.sleep(0.001 * (k % 3))
        seen.append((k, threading.get_ident()))
        return k * k

    results: dict[int, int] = {}

    async def call(k: int, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()  # returns to the caller only once run() has queued the call
        results[k] = await worker.run(job, k)

    async with trio.open_nursery() as nursery:
        for k in range(20):
            await nursery.start(call, k)
    worker.stop()
    assert results == {k: k * k for k in range(20)}
    assert [k for k, _ in seen] == list(range(20))
    assert len({ident for _, ident in seen}) == 1
    assert seen[0][1] != threading.get_ident()


async def test_exceptions_reach_the_caller() -> None:
    worker = StoreThread()
    with pytest.raises(ZeroDivisionError):
        await worker.run(lambda: 1 / 0)
    assert await worker.run(lambda: 7) == 7  # the thread survives
    worker.stop()


async def test_a_cancelled_caller_waits_for_its_call() -> None:
    """As to_thread.run_sync without abandon_on_cancel: a commit is never abandoned."""
    worker = StoreThread()
    release, done = threading.Event(), []

    def commit() -> str:
        release.wait(5)
        done.append(True)
        return "committed"

    with trio.CancelScope() as scope:
        scope.cancel()
        await worker.run(commit)  # cancelled before it starts: the call is not made
        raise AssertionError("not reached")
    assert scope.cancelled_caught
    assert not done

    answers = []
    with trio.CancelScope() as scope:
        threading.Timer(0.2, release.set).start()
        scope.deadline = trio.current_time() + 0.05  # cancelled while the call runs
        answers.append(await worker.run(commit))
        await trio.lowlevel.checkpoint()  # the cancellation lands here, after the call
    assert scope.cancelled_caught
    assert (answers, done) == (["committed"], [True])
    worker.stop()


def test_a_new_trio_run_gets_a_new_thread_and_stop_ends_it() -> None:
    worker = StoreThread(name="test store thread")

    async def thread() -> threading.Thread:
        return await worker.run(threading.current_thread)  # type: ignore[no-any-return]

    first, second = trio.run(thread), trio.run(thread)
    assert first is not second
    first.join(5)  # a run's thread ends when the next run starts its own
    assert not first.is_alive()
    worker.stop()
    second.join(5)
    assert not second.is_alive()


async def test_idle_work_runs_once_per_quiet_spell_on_the_thread() -> None:
    ran: list[int] = []
    worker = StoreThread(idle=lambda: ran.append(threading.get_ident()), idle_s=0.05)
    await trio.sleep(0.2)
    assert ran == []  # no call yet: nothing to do when quiet
    ident = await worker.run(threading.get_ident)
    await trio.sleep(0.3)
    assert ran == [ident]  # once, on the store thread, not every idle_s
    await worker.run(int)
    await worker.run(int)
    await trio.sleep(0.3)
    assert ran == [ident, ident]
    worker.stop()


async def test_failing_idle_work_leaves_the_thread_serving(caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    def boom() -> None:
        raise OSError("disk full")

    worker = StoreThread(idle=boom, idle_s=0.02)
    assert await worker.run(int, 3) == 3
    await trio.sleep(0.2)
    assert await worker.run(int, 4) == 4
    worker.stop()
    assert "idle work on the store thread failed" in caplog.text
