"""Errors the job queue reports to callers and handlers.

Typed remote failures: a handler's exception travels back to an RPC caller as its class
name and message (the reply's ``e`` field, unchanged on the wire).  Exception classes
registered with :func:`remote_error` come back to the caller as that same class (and a
:class:`RemoteJobError`), so callers write ``except InvalidTaskArgs:``, never compare
``error_type`` strings.  :func:`remote_failure` is the one place that mapping happens.
"""
from __future__ import annotations

from typing import TypeVar


class QueueError(Exception):
    """Base of the queue's own errors."""


class JobTimeout(QueueError):
    """An RPC call got no reply in time; the job may still run (or have run)."""

    def __init__(self, queue: str, task: str, timeout: float):
        self.queue = queue
        self.task = task
        self.timeout = timeout
        super().__init__(f"no reply from {queue}.{task} within {timeout:g}s")


class RemoteJobError(QueueError):
    """The handler of an RPC call raised; carries its error type and message."""

    def __init__(self, task: str, error_type: str, message: str):
        self.task = task
        self.error_type = error_type
        self.message = message
        super().__init__(f"{task} failed: {error_type}: {message}")


class PermanentJobError(Exception):
    """Raised by a handler for a failure that retrying cannot fix: dead-letter at once."""


class QueueStopped(QueueError):
    """The queue client was stopped while this call was waiting."""


class RedisUnavailable(QueueError):
    """Redis did not answer in time (connection down or command timed out)."""


E = TypeVar("E", bound=type[PermanentJobError])

# wire name (the handler's exception class name) -> the class an RPC caller receives
_REMOTE: dict[str, type[RemoteJobError]] = {}


def remote_error(cls: E) -> E:
    """Class decorator: a handler raising ``cls`` makes the RPC caller raise ``cls`` too.

    The caller's exception is an instance of a subclass of both ``cls`` and
    :class:`RemoteJobError` (same ``__name__``), so ``except cls`` and ``except
    RemoteJobError`` both catch it.  The wire carries only ``cls.__name__``: names must be
    unique among registered classes."""
    name = cls.__name__
    known = _REMOTE.get(name)
    if known is not None and cls not in known.__mro__:
        raise ValueError(f"a remote error named {name!r} is already registered")

    def __init__(self: RemoteJobError, task: str, error_type: str, message: str) -> None:
        RemoteJobError.__init__(self, task, error_type, message)

    remote = type(name, (cls, RemoteJobError), {"__init__": __init__,
                                                "__module__": cls.__module__,
                                                "__qualname__": f"{cls.__qualname__}.remote"})
    _REMOTE[name] = remote
    return cls


def remote_failure(task: str, error_type: str, message: str) -> RemoteJobError:
    """The exception an RPC caller raises for an error reply: the registered class for
    ``error_type`` if there is one, else a plain :class:`RemoteJobError`."""
    remote = _REMOTE.get(error_type, RemoteJobError)
    return remote(task, error_type, message)


@remote_error
class InvalidTaskArgs(PermanentJobError, ValueError):
    """The job's arguments are wrong; retrying cannot help (the REST API answers 400)."""
