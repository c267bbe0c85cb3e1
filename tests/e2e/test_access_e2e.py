"""Issue 15 end to end with real processes: one ``twistd ymds`` node (billing and bot), the
fake Telegram process with a paid channel, Redis and a SQLite ledger.

200 subscribers get their links from the bot; then, all at once, they open them while 50
intruders try to get in — half through subscribers' leaked links, half added by an
administrator.  Exactly the 200 subscribers remain (and the channel's creator); no join
request is left pending.  YMDS_LONG=1 runs 1,000 subscribers and 250 intruders.
"""
from __future__ import annotations

import sqlite3
import time

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.e2e.harness import CHANNEL, LONG, Cluster, as_deferred, record, wait_until
from tests.fakes.fake_chats import OWNER_ID
from ymds.bot.jobs import BotClient, GrantAccess

SUBSCRIBERS = 1000 if LONG else 200
INTRUDERS = 250 if LONG else 50


class AccessE2E(unittest.TestCase):
    timeout = 300

    def subscribe_in_ledger(self, cluster: Cluster, users: list[int], ends_at: float) -> None:
        """Paid subscriptions, written straight into the ledger (the payment path has its own e2e)."""
        path = cluster.ledger_url[len("sqlite:///"):]
        with sqlite3.connect(path, timeout=30) as db:
            db.executemany("INSERT INTO subscriptions (chat_id, plan, ends_at, updated_at) VALUES (?, 'month', ?, ?)",
                           [(u, ends_at, time.time()) for u in users])

    @as_deferred
    async def test_subscribers_stay_intruders_do_not(self):
        cluster = Cluster(self, ledger="sqlite", telegram_limits=False)
        node = cluster.node("door", "billing,bot")
        telegram = cluster.telegram
        subscribers = list(range(10_000, 10_000 + SUBSCRIBERS))
        intruders = list(range(50_000, 50_000 + INTRUDERS))
        self.subscribe_in_ledger(cluster, subscribers, time.time() + 30 * 86400)
        # the bot asks for chat_member and chat_join_request before anyone moves
        await wait_until(lambda: "chat_join_request" in (telegram.stats().get("allowed_updates") or []),
                         what="the poller naming chat_join_request")
        bot = BotClient(await cluster.queue())
        await defer.gatherResults([bot.grant_access(GrantAccess(u, None, f"e2e-grant:{u}")) for u in subscribers])
        links: dict[int, str] = {}

        def collect() -> bool:
            for message in telegram.sent():
                markup = message.get("reply_markup") or {}
                for row in markup.get("inline_keyboard", []):
                    for button in row:
                        if str(button.get("url", "")).startswith("https://t.me/+"):
                            links[message["chat_id"]] = button["url"]
            return all(u in links for u in subscribers)

        await wait_until(collect, timeout=120, what="a link for every subscriber", step=0.5)
        self.assertEqual(len(set(links.values())), SUBSCRIBERS)  # one personal link each
        # All at once: subscribers open their links, intruders use leaked ones or are added.
        started = time.monotonic()
        leaked = intruders[: INTRUDERS // 2]
        added = intruders[INTRUDERS // 2:]
        for n, user in enumerate(subscribers):
            telegram.control("user_joins_by_link", {"user_id": user, "invite_link": links[user]})
            if n < len(leaked):
                telegram.control("user_joins_by_link", {"user_id": leaked[n], "invite_link": links[user]})
            if n < len(added):
                telegram.control("admin_adds", {"chat_id": CHANNEL, "user_id": added[n]})

        def settled() -> bool:
            state = telegram.control(f"members?chat_id={CHANNEL}")
            return not state["pending"] and sorted(state["members"]) == sorted(subscribers + [OWNER_ID])

        await wait_until(settled, timeout=180, what="exactly the subscribers in the channel", step=0.5)
        elapsed = time.monotonic() - started
        state = telegram.control(f"members?chat_id={CHANNEL}")
        self.assertEqual(sorted(set(state["members"]) - {OWNER_ID}), subscribers)
        self.assertEqual(set(state["members"]) & set(intruders), set())
        # removed intruders were unbanned (they may pay and come back); the digest told the owner once or so
        bans = telegram.stats()["bans"]
        banned = {b[2] for b in bans if b[0] == "banChatMember"}
        self.assertEqual(banned, set(added))
        self.assertEqual({b[2] for b in bans if b[0] == "unbanChatMember"}, set(added))
        self.assertEqual(banned & set(subscribers), set())
        record("access_door", subscribers=SUBSCRIBERS, intruders=INTRUDERS, seconds=round(elapsed, 1))
        node.terminate()
