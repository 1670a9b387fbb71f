"""The long-lived tasks a component starts while it is entered, held in an ``asyncio.TaskGroup``: an exception one
of them raises is not lost (it cancels the task that entered the component and is raised when the component is
left, as the daemon's own TaskGroup does), and leaving the component cancels whatever still runs.

Unlike ``async with asyncio.TaskGroup()`` around the caller's own code, an exception of the caller's passes
through unwrapped (no ExceptionGroup): a component can hold tasks without changing what its users catch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")


class Background:
    """``async with Background() as tasks: tasks.start(coro, name=...)``; enter and leave it in one task."""

    def __init__(self) -> None:
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Self:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    def start(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``coro`` as a named task of the group."""
        if self._group is None:
            coro.close()
            raise RuntimeError("Background.start outside async with")
        task = self._group.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        group, self._group = self._group, None
        if group is None:
            return
        for task in self._tasks:
            task.cancel()
        if isinstance(exc, asyncio.CancelledError):  # perhaps the group's own, for a task that failed
            await group.__aexit__(exc_type, exc, tb)
        else:  # the caller's exception is the caller's: the group only waits for its tasks
            await group.__aexit__(None, None, None)
