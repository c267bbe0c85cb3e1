"""Task handlers by name."""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from zope.interface import implementer

from ymds.queue.interfaces import ITaskRegistry

Handler = Callable[[dict], Awaitable[Any]]


@implementer(ITaskRegistry)
class TaskRegistry:
    """Maps task names to ``async def handler(args: dict) -> JSON-able`` callables."""

    def __init__(self, handlers: dict[str, Handler] | None = None):
        self._handlers: dict[str, Handler] = {}
        for task, handler in (handlers or {}).items():
            self.register(task, handler)

    def register(self, task: str, handler: Handler) -> None:
        if not isinstance(task, str) or not task or len(task) > 128:
            raise ValueError(f"bad task name {task!r}")
        if task in self._handlers:
            raise ValueError(f"task {task!r} is already registered")
        if not callable(handler):
            raise TypeError(f"handler for {task!r} is not callable")
        self._handlers[task] = handler

    def lookup(self, task: str) -> Handler | None:
        return self._handlers.get(task)

    def tasks(self) -> list[str]:
        return sorted(self._handlers)
