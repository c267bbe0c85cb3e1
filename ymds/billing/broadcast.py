"""Sending one message to many subscribers, exactly once each, resumably.

:class:`Broadcaster` works through a broadcast's pending recipients (ledger.broadcasts):
each message is a ``send`` call on the bot queue, so it goes through the bot's rate-limited
sender, carrying the key ``broadcast:<id>:<chat id>``.  The bot sends each key at most once
(ymds.bot.sender), so after a crash or a kill -9 of this process the next run re-asks for
the recipients still marked pending and those that did receive the message just before the
crash come back ``duplicate``: counted as sent, not sent again.  Chats that blocked the bot
come back ``blocked`` (the bot marks them in Redis and the ledger) and are skipped from
then on.  Outcomes are written to the ledger in batches: losing a batch in a crash only
costs those recipients a ``duplicate`` answer on the next run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, cast

from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.python.failure import Failure

from ymds.bot.jobs import BotClient, SendMessage
from ymds.queue.errors import JobTimeout, RemoteJobError

log = Logger()

OUTCOMES = {"sent": "sent", "duplicate": "sent", "blocked": "blocked", "rejected": "failed"}


def broadcast_id(text: str, audience: str, plan: str | None) -> str:
    """The id of a broadcast: the same text to the same audience is the same broadcast
    (so running the command again resumes it)."""
    digest = hashlib.sha256(json.dumps([text, audience, plan], ensure_ascii=False).encode()).hexdigest()
    return "bc_" + digest[:16]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def recipient_key(broadcast: str, chat_id: int) -> str:
    """The bot's dedup key of one recipient's message."""
    return f"broadcast:{broadcast}:{chat_id}"


@dataclass
class Progress:
    """Counts of one run, for the progress line: ``done`` of ``total`` (sent, blocked or
    failed, including earlier runs), and the estimated seconds left at this run's rate."""
    total: int
    counts: dict[str, int] = field(default_factory=dict)
    started: float = 0.0
    done_this_run: int = 0
    errors: int = 0
    last_error: str = ""

    @property
    def done(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("sent", "blocked", "failed"))

    def seconds_left(self, now: float) -> float | None:
        elapsed = now - self.started
        if self.done_this_run <= 0 or elapsed <= 0:
            return None
        return max(0, self.total - self.done) * elapsed / self.done_this_run


class BroadcastAborted(Exception):
    """The bot refused the text itself (e.g. bad Telegram HTML): retrying cannot help."""


class Broadcaster:
    """``Broadcaster(ledger, queue, clock, window=50, call_timeout=120.0, report=None)``.

    ``run(broadcast_id, text)`` sends to every pending recipient with at most ``window``
    calls in flight and fires with the final Progress; ``report(progress)`` is called at
    most every ``report_every`` seconds.  A recipient whose call fails or times out stays
    pending (the next run asks again, harmlessly: the key makes it one message)."""

    def __init__(self, ledger: Any, queue: Any, clock: Any, window: int = 50, call_timeout: float = 120.0,
                 report: Callable[[Progress], None] | None = None, report_every: float = 2.0,
                 flush_every: int = 200, passes: int = 3):
        self.ledger = ledger
        self.bot = BotClient(queue)
        self.clock = clock
        self.window = window
        self.call_timeout = call_timeout
        self.report = report
        self.report_every = report_every
        self.flush_every = flush_every
        self.passes = passes
        self._buffer: list[tuple[int, str]] = []
        self._reported = 0.0
        self._aborted: str | None = None

    async def run(self, broadcast: str, text: str) -> Progress:
        store = self.ledger.broadcasts
        counts = await store.broadcast_counts(broadcast)
        progress = Progress(sum(counts.values()), counts, self.clock.seconds())
        for _ in range(self.passes):  # a pass that answered nobody (the bot is down) ends the run
            pending = iter(await store.broadcast_pending(broadcast))
            before = progress.done_this_run
            workers = [self._worker(broadcast, text, pending, progress) for _ in range(self.window)]
            results = await DeferredList([Deferred.fromCoroutine(w) for w in workers], consumeErrors=True)
            await self._flush(broadcast)
            for ok, failure in results:  # the ledger failed under a worker: say so, do not look finished
                if not ok:
                    cast(Failure, failure).raiseException()
            if self._aborted is not None or progress.done_this_run == before or not progress.errors:
                break
            progress.errors = 0
        progress.counts = await store.broadcast_counts(broadcast)
        if progress.counts.get("pending", 0) == 0:
            await store.broadcast_finish(broadcast, self.clock.seconds())
        if self._aborted is not None:
            raise BroadcastAborted(self._aborted)
        return progress

    async def _worker(self, broadcast: str, text: str, pending: Iterator[int], progress: Progress) -> None:
        for chat_id in pending:
            if self._aborted is not None:
                return
            job = SendMessage(chat_id, text, key=recipient_key(broadcast, chat_id))
            try:
                outcome = (await self.bot.send_and_wait(job, timeout=self.call_timeout)).outcome
            except RemoteJobError as e:
                if e.error_type in ("PermanentJobError", "InvalidTaskArgs"):
                    self._aborted = e.message
                    return
                progress.errors += 1
                progress.last_error = e.message
                continue
            except JobTimeout:
                progress.errors += 1
                progress.last_error = f"no answer from the bot within {self.call_timeout:g}s"
                continue
            except Exception as e:  # Redis unreachable: this recipient stays pending for the next run
                progress.errors += 1
                progress.last_error = f"the job queue failed ({str(e) or type(e).__name__})"
                continue
            status = OUTCOMES.get(outcome)
            if status is None:
                progress.errors += 1
                progress.last_error = f"unknown outcome {outcome!r}"
                continue
            progress.counts[status] = progress.counts.get(status, 0) + 1
            progress.counts["pending"] = progress.counts.get("pending", 0) - 1
            progress.done_this_run += 1
            self._buffer.append((chat_id, status))
            if len(self._buffer) >= self.flush_every:
                await self._flush(broadcast)
            self._maybe_report(progress)

    async def _flush(self, broadcast: str) -> None:
        batch, self._buffer = self._buffer, []
        if batch:
            await self.ledger.broadcasts.broadcast_record(broadcast, batch, self.clock.seconds())

    def _maybe_report(self, progress: Progress) -> None:
        now = self.clock.seconds()
        if self.report is not None and now - self._reported >= self.report_every:
            self._reported = now
            self.report(progress)
