"""Errors the job queue reports to callers and handlers."""
from __future__ import annotations


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
