"""Billing's ``quarantine`` task: keep a refused notification and alert the owner, at most
once per ``QUARANTINE_ALERT_EVERY`` seconds (the alert's key is the window)."""

from __future__ import annotations

from typing import Any

from ymds.billing.jobs import Quarantine, QuarantineResult
from ymds.bot.jobs import BotClient, NotifyAdmins

QUARANTINE_ALERT_EVERY = 600  # seconds: at most one quarantine alert per window


class QuarantineTasks:
    def __init__(self, ledger: Any, bot: BotClient, clock: Any):
        self.ledger = ledger
        self.bot = bot
        self.clock = clock

    async def quarantine(self, job: Quarantine) -> QuarantineResult:
        """Store the body (the same body twice is one row) and alert the admins."""
        now = self.clock.seconds()
        q = await self.ledger.quarantine.quarantine_add(job.body, job.reason, job.remote, now)
        if q.action == "stored":
            key = f"admins:quarantine:{int(now // QUARANTINE_ALERT_EVERY)}"
            await self.bot.notify_admins(NotifyAdmins("quarantine", {
                "id": q.id, "reason": job.reason[:200], "unresolved": q.unresolved}, key))
        return QuarantineResult(id=q.id, action=q.action, unresolved=q.unresolved)
