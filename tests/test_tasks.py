"""nutbridge.tasks.Background: a component's own TaskGroup that never wraps its caller's exceptions."""

from __future__ import annotations

import asyncio

import pytest

from nutbridge.tasks import Background


async def test_leaving_cancels_what_still_runs() -> None:
    async with Background() as tasks:
        task = tasks.start(asyncio.sleep(3600), name="forever")
        await asyncio.sleep(0)
    assert task.cancelled()


async def test_the_callers_exception_passes_unwrapped() -> None:
    async def caller() -> None:
        async with Background() as tasks:
            tasks.start(asyncio.sleep(3600), name="forever")
            raise KeyError("mine")

    with pytest.raises(KeyError):
        await caller()


async def test_a_tasks_exception_reaches_the_task_that_entered() -> None:
    async def fail() -> None:
        raise ValueError("lost no more")

    async def caller() -> None:
        async with Background() as tasks:
            tasks.start(fail(), name="fails")
            await asyncio.sleep(3600)  # cancelled by the group when the task fails

    with pytest.raises(ExceptionGroup) as caught:
        await caller()
    assert isinstance(caught.value.exceptions[0], ValueError)


async def test_start_outside_is_refused() -> None:
    background = Background()
    with pytest.raises(RuntimeError):
        background.start(asyncio.sleep(0), name="never")
