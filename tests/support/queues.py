"""One in-memory IJobQueue for tests, and a way to run a role's handlers over the wire.

:class:`RecordingQueue` records enqueues (honouring idempotency keys like the real queue),
answers RPC calls from ``handlers`` (task name -> callable(args)) and can be made to fail.
:func:`run_task` runs a registered handler exactly as a worker would: wire arguments in,
wire result out (so tests see what goes through Redis).
"""
from __future__ import annotations

import json
from typing import Any, Callable

from twisted.internet import defer
from zope.interface import implementer

from ymds.queue.interfaces import IJobQueue
from ymds.queue.registry import TaskRegistry


class QueueDown(ConnectionError):
    """What a RecordingQueue raises while ``down`` (or for ``fail_next`` enqueues)."""


@implementer(IJobQueue)
class RecordingQueue:
    """``jobs`` (also ``enqueued``): (queue, task, args, key) per job added, in order;
    ``delays``: the delay given with each of them; ``calls``: (queue, task, args) per RPC.

    ``down`` fails every enqueue and call; ``fail_next = n`` fails the next n enqueues;
    ``hold`` (a Deferred) delays enqueues until it fires.  With ``with_delay`` each job is
    recorded as (queue, task, args, key, delay) instead.  With ``honour_keys=False`` every
    enqueue is recorded, keys or not (to prove something else prevents duplicates)."""

    def __init__(self, handlers: dict[str, Callable[[Any], Any]] | None = None, with_delay: bool = False,
                 honour_keys: bool = True):
        self.with_delay = with_delay
        self.honour_keys = honour_keys
        self.jobs: list[tuple] = []
        self.delays: list[float | None] = []
        self.calls: list[tuple[str, str, Any]] = []
        self.keys: set[str] = set()
        self.handlers: dict[str, Callable[[Any], Any]] = dict(handlers or {})
        self.down = False
        self.fail_next = 0
        self.hold: defer.Deferred | None = None

    @property
    def enqueued(self) -> list[tuple]:
        return self.jobs

    def enqueue(self, queue, task, args, key=None, delay=None):
        if self.down:
            return defer.fail(QueueDown("redis is down"))
        if self.fail_next:
            self.fail_next -= 1
            return defer.fail(QueueDown("redis is down"))
        json.dumps(args, default=str)  # must be JSON-able (Decimal allowed)

        def add(_=None):
            if key is not None and key in self.keys and self.honour_keys:
                return None
            if key is not None:
                self.keys.add(key)
            self.jobs.append((queue, task, args, key, delay) if self.with_delay else (queue, task, args, key))
            self.delays.append(delay)
            return f"job-{len(self.jobs)}"

        if self.hold is not None:
            return self.hold.addCallback(add)
        return defer.succeed(add())

    def call(self, queue, task, args, timeout=10.0):
        self.calls.append((queue, task, args))
        if self.down:
            return defer.fail(QueueDown("redis is down"))
        handler = self.handlers.get(task)
        if handler is None:
            return defer.fail(LookupError(task))
        return defer.maybeDeferred(handler, args)

    def take(self, task: str | None = None) -> list[tuple]:
        """Remove and return the recorded jobs (only those of ``task`` when given)."""
        taken = [j for j in self.jobs if task is None or j[1] == task]
        kept = [(j, d) for j, d in zip(self.jobs, self.delays) if not (task is None or j[1] == task)]
        self.jobs = [j for j, _ in kept]
        self.delays = [d for _, d in kept]
        return taken


def registry_of(tasks: Any) -> TaskRegistry:
    """A TaskRegistry with ``tasks.register(registry)`` done."""
    registry = TaskRegistry()
    tasks.register(registry)
    return registry


async def run_task(tasks: Any, name: str, args: Any) -> Any:
    """Run ``tasks``' handler for ``name`` as a worker would: wire args in, wire result out."""
    registry = getattr(tasks, "_test_registry", None)
    if registry is None:
        registry = registry_of(tasks)
        tasks._test_registry = registry
    handler = registry.lookup(name)
    if handler is None:
        raise LookupError(name)
    return await handler(args)
