"""A broadcast to 2,000 subscribers through real processes: a ``twistd ymds`` billing+bot
node, the fake Bot API process enforcing Telegram's flood limits, Redis, a SQLite ledger,
and ``ymds broadcast`` as its own process, killed with SIGKILL halfway and started again.

Every user gets the message exactly once and Telegram never answers 429.
(benchmarks/broadcast_bench.py runs the same scenario and reports the throughput.)
"""
from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections import Counter

from twisted.trial import unittest

from tests.e2e.harness import Cluster, as_deferred, record, wait_until
from tests.support.processes import Child, test_env

TEXT = "<b>Новости канала</b> / channel news: the next stream is on Friday"


def seed_subscribers(ledger_path: str, chat_ids, now: float, plan: str = "month") -> None:
    """Active subscriptions written straight into the migrated ledger (one transaction)."""
    conn = sqlite3.connect(ledger_path, timeout=30)
    with conn:
        conn.executemany("INSERT INTO subscriptions (chat_id, plan, ends_at, updated_at, reminded_window, expired) "
                         "VALUES (?, ?, ?, ?, NULL, 0)", [(c, plan, now + 30 * 86400, now) for c in chat_ids])
    conn.close()


class BroadcastRun:
    """``ymds broadcast`` as a child process against a cluster node's configuration."""

    def __init__(self, cluster: Cluster, config_path: str, text_path: str, name: str):
        argv = [sys.executable, "-m", "ymds.cli", "broadcast", "--config", config_path, "--to", "active",
                "--text-file", text_path]
        self.child = Child(argv, env=test_env(), cwd=cluster.dir, name=name)

    def start(self) -> "BroadcastRun":
        self.child.start()
        return self

    def exited(self) -> bool:
        return self.child.process.poll() is not None


async def broadcast_scenario(testcase, users: int, kill_at: float | None, kill: str = "command") -> dict:
    """Send to ``users`` subscribers; with ``kill_at`` (a fraction) SIGKILL the command (or,
    with ``kill="bot"``, the billing+bot node) once that share of users has the message, then
    start it again.  The counts for assertions and benchmarks/RESULTS.md."""
    cluster = Cluster(testcase, ledger="sqlite")
    node = cluster.node("node", "billing,bot")
    chat_ids = list(range(700_000, 700_000 + users))
    seed_subscribers(cluster.ledger_url[len("sqlite:///"):], chat_ids, time.time())
    text_path = os.path.join(cluster.dir, "news.html")
    with open(text_path, "w", encoding="utf-8") as f:
        f.write(TEXT + "\n")
    started = time.monotonic()
    first = BroadcastRun(cluster, node.config_path, text_path, "broadcast-1").start()
    testcase.addCleanup(first.child.close)
    killed_at = None
    if kill_at is not None:
        await wait_until(lambda: cluster.telegram.stats()["sent"] >= users * kill_at or first.exited(),
                         timeout=users / 10 + 60, what="the first run halfway", step=0.02)
        killed_at = cluster.telegram.stats()["sent"]
        if kill == "bot":
            node.kill()
            node.start()
            last = first
        else:
            first.child.kill()
            second = BroadcastRun(cluster, node.config_path, text_path, "broadcast-2").start()
            testcase.addCleanup(second.child.close)
            last = second
    else:
        last = first
    await wait_until(last.exited, timeout=users / 10 + 120, what="the broadcast's end", step=0.1)
    elapsed = time.monotonic() - started
    stats = cluster.telegram.stats()
    per_user = Counter(m["chat_id"] for m in cluster.telegram.sent())
    return {"users": users, "status": last.child.process.returncode, "output": last.child.output(),
            "first_output": first.child.output(), "killed_at": killed_at, "seconds": elapsed,
            "messages": stats["sent"], "throttled": stats["throttled"],
            "duplicates": sum(n - 1 for n in per_user.values() if n > 1),
            "missing": sum(1 for c in chat_ids if per_user[c] == 0), "per_second": stats["sent"] / elapsed}


class BroadcastKillTests(unittest.TestCase):
    timeout = 600

    @as_deferred
    async def test_kill_minus_9_halfway_then_again_every_user_exactly_once(self):
        users = 2000
        result = await broadcast_scenario(self, users, kill_at=0.5)
        record("broadcast_kill_9", **{k: v for k, v in result.items() if "output" not in k})
        self.assertEqual(result["status"], 0, result["output"][-2000:])
        self.assertGreaterEqual(result["killed_at"], users // 2)
        self.assertLess(result["killed_at"], users, "the kill came after the end: nothing was resumed")
        self.assertIn("resuming bc_", result["output"])
        self.assertIn(f"{users} sent, 0 blocked, 0 failed, 0 pending, of {users}", result["output"])
        self.assertIn("sent, about", result["first_output"])  # the progress line with the time left
        self.assertEqual((result["missing"], result["duplicates"], result["throttled"]), (0, 0, 0))
        self.assertEqual(result["messages"], users)

    @as_deferred
    async def test_the_bot_killed_halfway_nobody_is_missed(self):
        """The bot (with billing) dies with SIGKILL halfway and starts again while the command
        waits: the jobs it held are taken up again after the visibility timeout and the command
        ends with everyone done.  A message Telegram accepted in the instant before the kill,
        before the bot recorded it, can go out twice (the crash window of ymds.bot.sender):
        at most one such duplicate per kill."""
        users = 300
        result = await broadcast_scenario(self, users, kill_at=0.5, kill="bot")
        record("broadcast_bot_kill_9", **{k: v for k, v in result.items() if "output" not in k})
        self.assertEqual(result["status"], 0, result["output"][-2000:])
        self.assertLess(result["killed_at"], users, "the kill came after the end")
        self.assertIn(f"{users} sent, 0 blocked, 0 failed, 0 pending, of {users}", result["output"])
        self.assertEqual((result["missing"], result["throttled"]), (0, 0))
        self.assertLessEqual(result["duplicates"], 1)
