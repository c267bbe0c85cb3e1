"""Sleeping and deadlines on an injected clock (a reactor, or ``task.Clock`` in tests)."""

from __future__ import annotations

from typing import Any, Callable, Protocol, cast

from twisted.internet import task
from twisted.internet.defer import Deferred


class DelayedCall(Protocol):
    def active(self) -> bool: ...
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What these helpers use of twisted's IReactorTime (zope interfaces are opaque to mypy)."""

    def seconds(self) -> float: ...
    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall: ...


def sleep(clock: Clock, seconds: float) -> Deferred[None]:
    """A Deferred that fires with None after ``seconds`` of ``clock`` time.

    Cancelling it cancels the timer (the Deferred then fails with CancelledError).
    """
    return task.deferLater(cast(Any, clock), max(0.0, seconds))


class Deadline:
    """A point in ``clock`` time ``seconds`` from now; says how much time is left."""

    def __init__(self, clock: Clock, seconds: float):
        self._clock = clock
        self.at = clock.seconds() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - self._clock.seconds())

    @property
    def passed(self) -> bool:
        return self._clock.seconds() >= self.at


async def wait_until(clock: Clock, d: Deferred[Any], deadline: float) -> None:
    """Wait until ``d`` has fired or ``clock`` reaches ``deadline``, whichever is first.

    ``d`` itself is neither cancelled nor consumed: its result stays for its other users.
    """
    remaining = deadline - clock.seconds()
    if d.called or remaining <= 0:
        return
    waiter: Deferred[None] = Deferred()

    def wake(result: object = None) -> object:
        if not waiter.called:
            waiter.callback(None)
        return result

    timer = clock.callLater(remaining, wake)
    d.addBoth(wake)
    await waiter
    if timer.active():
        timer.cancel()
