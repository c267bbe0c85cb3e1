"""``telegram.sale_alerts``: the owner hears of every paid sale, and sales that arrive
together come as one message ("3 sales, 597,00 ₽:" and one line each) rather than a burst.

Each sale's notify_admins job waits for the batch it joined to be sent, so a job is done only
when the owner has the message; a batch that fails fails all its jobs, which the queue tries
again.  Each sale's own key is recorded once the batch is sent, so a sale already announced
is never in a later batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from twisted.internet.defer import Deferred

from ymds.bot import texts
from ymds.bot.jobs import AdminOutcomes, NotifyAdmins

AdminHandler = Callable[[NotifyAdmins], Awaitable[AdminOutcomes]]
WINDOW = 2.0        # seconds a first sale waits for others to join it
MAX_BATCH = 20      # sales in one message at most


class SaleBatcher:
    """Collects "sale" owner alerts for :data:`WINDOW` seconds and sends them as one message."""

    def __init__(self, tasks: Any, clock: Any, window: float = WINDOW, max_batch: int = MAX_BATCH):
        self.tasks = tasks
        self.clock = clock
        self.window = window
        self.max_batch = max_batch
        self._pending: list[tuple[NotifyAdmins, Deferred[AdminOutcomes]]] = []
        self._timer: Any = None

    def wrap(self, handler: AdminHandler) -> AdminHandler:
        """``handler`` (BotTasks.notify_admins) with "sale" alerts batched."""
        async def notify_admins(job: NotifyAdmins) -> AdminOutcomes:
            if job.message != "sale":
                return await handler(job)
            return await self.add(job)
        return notify_admins

    async def add(self, job: NotifyAdmins) -> AdminOutcomes:
        if await self.tasks.store.was_sent(job.dedup_key()):
            return AdminOutcomes({"sale": "duplicate"})
        done: Deferred[AdminOutcomes] = Deferred()
        self._pending.append((job, done))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = self.clock.callLater(self.window, self._flush)
        return await done

    def _flush(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            Deferred.fromCoroutine(self._send(batch))

    async def _send(self, batch: list[tuple[NotifyAdmins, Deferred[AdminOutcomes]]]) -> None:
        jobs = [job for job, _ in batch]
        try:
            outcomes = await self.send_batch(jobs)
            for job in jobs:
                await self.tasks.store.mark_sent(job.dedup_key(), "batched")
        except Exception as e:
            for _, done in batch:
                done.errback(e)
            return
        for _, done in batch:
            done.callback(outcomes)

    async def send_batch(self, jobs: list[NotifyAdmins]) -> AdminOutcomes:
        """One message to each admin: the single sale's alert, or the list of them."""
        from ymds.bot.sender import render_admin
        key = "sales:" + hashlib.sha256("\n".join(sorted(j.dedup_key() for j in jobs)).encode()).hexdigest()[:32]
        outcomes: dict[str, str] = {}
        for admin in self.tasks.config.telegram.admins:
            lang = await self.tasks.language(admin)
            if len(jobs) == 1:
                text = render_admin(lang, "sale", dict(jobs[0].params))
            else:
                text = render_sales(lang, jobs)
            outcomes[str(admin)] = await self.tasks.sender.send(f"{key}:{admin}", admin, text)
        return AdminOutcomes(outcomes)


def render_sales(lang: str, jobs: list[NotifyAdmins]) -> str:
    """"N sales, total:" and one line per sale (plan, amount, payer's chat)."""
    total = Decimal("0")
    lines = []
    for job in jobs:
        p = job.params
        try:
            total += Decimal(str(p.get("amount")))
        except (InvalidOperation, ValueError):
            pass
        lines.append(f"• {texts.escape(p.get('plan_title') or p.get('plan') or '—')}, "
                     f"{texts.money(p.get('amount'), lang)}, {texts.escape(p.get('chat_id'))}")
    return texts.render(lang, "admin_sales", count=len(jobs), total_html=texts.money(total, lang),
                        lines_html="\n".join(lines))
