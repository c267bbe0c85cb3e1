"""The bot across a Redis failover: its polling lease and the Telegram offset survive, and no
update is handled twice.

A ``bot`` node (long polling the fake Bot API process, Redis through Sentinel with
``min_replicas = 1``: an update's job is on a replica before the offset moves past it) while
150 users (500 with ``YMDS_LONG=1``) each send ``/help``, one every 20 ms.  A third of the
way through, the Redis master is SIGKILLed and Sentinel promotes a replica.  Afterwards every
user got exactly one answer, the stored offset is one past the last update, and the bot
queue is drained with no stray keys.
"""
from __future__ import annotations

import threading
import time
from collections import Counter

from twisted.internet import threads
from twisted.trial import unittest

from tests.e2e.harness import LONG, Cluster, as_deferred, record, wait_until
from tests.support.sentinel import SentinelGroup

USERS = 500 if LONG else 150
FIRST_CHAT = 700_001


class BotFailover(unittest.TestCase):
    timeout = 600 if LONG else 300

    @as_deferred
    async def test_lease_and_offset_survive_without_a_double_processed_update(self):
        group = await threads.deferToThread(lambda: SentinelGroup(replicas=2).start())
        self.addCleanup(group.cleanup)
        cluster = Cluster(self, ledger="sqlite", telegram=True)
        cluster.redis = group
        bot = cluster.node("bot", "bot", redis={"url": group.url, "min_replicas": 1, "replica_timeout": 1})
        telegram = cluster.telegram
        chats = list(range(FIRST_CHAT, FIRST_CHAT + USERS))
        update_ids: list[int] = []
        stop = threading.Event()

        def users_write():
            for chat in chats:
                if stop.is_set():
                    return
                update_ids.append(telegram.user_sends(chat, "/help")["result"]["update_id"])
                time.sleep(0.02)

        writing = threads.deferToThread(users_write)
        self.addCleanup(stop.set)
        await wait_until(lambda: len(update_ids) >= USERS // 3, what="a third of the users written")
        old = await threads.deferToThread(group.kill_master)
        killed_at = time.monotonic()
        await threads.deferToThread(group.wait_for_promotion, old)
        promoted_after = round(time.monotonic() - killed_at, 2)
        await writing

        def everyone_answered():
            per_chat = Counter(m["chat_id"] for m in telegram.sent())
            return all(per_chat[c] >= 1 for c in chats)
        await wait_until(everyone_answered, timeout=180, step=0.5, what="every user answered")
        await wait_until(lambda: cluster.drained("bot"), timeout=60, what="the bot queue drained")
        offset = lambda: int(group.command("GET", "ymds:bot:offset") or 0)  # noqa: E731
        await wait_until(lambda: offset() == max(update_ids) + 1, timeout=30, what="the offset past the last update")
        per_chat = Counter(m["chat_id"] for m in telegram.sent())
        self.assertEqual({c: per_chat[c] for c in chats}, {c: 1 for c in chats}, "one answer per update")
        self.assertEqual(len(set(update_ids)), USERS)
        self.assertTrue(bot.alive())
        self.assertEqual(cluster.stray_keys(), [])
        record("Redis master killed -9 while the bot polls (Sentinel, min_replicas = 1)", users=USERS,
               promoted_after_s=promoted_after, answers=sum(per_chat[c] for c in chats),
               lease_taken=bot.count("bot polling lease taken by"), offset=offset())
