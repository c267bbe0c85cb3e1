"""The Redis job queue (Redis Streams through txredisapi); see DESIGN.md section 7."""
from ymds.queue.errors import JobTimeout, PermanentJobError, QueueError, QueueStopped, RedisUnavailable, RemoteJobError

__all__ = ["JobTimeout", "PermanentJobError", "QueueError", "QueueStopped", "RedisUnavailable", "RemoteJobError"]
