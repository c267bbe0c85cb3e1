"""The whole product path on real processes, in the two deployment layouts.

(a) one process with every role, SQLite;
(b) node 1 ``--roles web,bot``, nodes 2 and 3 ``--roles billing``, PostgreSQL.

Path: a Telegram user sends /subscribe and gets pay links; the page is fetched; the sandbox
pays; its notification reaches the web node; billing records it in the ledger; the user is
told once and gets a one-person invite link to the channel; a donation with a message
reaches the owner's chat.
"""
from __future__ import annotations

from twisted.internet import threads
from twisted.trial import unittest

from tests.e2e.harness import CHANNEL, OWNER, Cluster, as_deferred, record, wait_until
from tests.support import webflow


def url_buttons(message: dict) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [b["url"] for row in markup.get("inline_keyboard", []) for b in row if "url" in b]


class LayoutPath:
    """Mixin: the path, given a cluster and the web node."""

    async def subscribe_pay_and_donate(self, cluster: Cluster, web, billing_nodes):
        telegram = cluster.telegram
        chat = 5001
        telegram.user_sends(chat, "/subscribe")
        links_message = await wait_until(
            lambda: next((m for m in telegram.sent(chat) if len(url_buttons(m)) >= 2), None),
            timeout=30, what="the /subscribe answer with pay links")
        links = url_buttons(links_message)
        self.assertTrue(all(u.startswith(web.base + "/pay/") for u in links), links)

        month = links[0]
        status, _, page = await threads.deferToThread(webflow.request, month)
        self.assertEqual(status, 200)
        self.assertIn("199", page)
        success = await threads.deferToThread(webflow.pay_in_sandbox, month, "AC")
        self.assertTrue(success.startswith(web.base + "/thanks"), success)
        paid = await threads.deferToThread(webflow.wait_for_status, month, "paid", 30)
        self.assertEqual(paid["amount"], "199.00")

        # The user: links once, then the confirmation and one invite link, each exactly once.
        def user_done():
            sent = telegram.sent(chat)
            return sent if len(sent) >= 3 and any("t.me/+" in u for m in sent for u in url_buttons(m)) else None
        sent = await wait_until(user_done, timeout=30, what="confirmation and invite link")

        rows = cluster.ledger.payment_rows()
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0][2], "paid")
        self.assertEqual(rows[0][4], chat)
        self.assertEqual(cluster.ledger.scalar("SELECT count(*) FROM subscriptions WHERE chat_id = ?", (chat,)), 1)

        # Donation with a message that must reach the owner, escaped (Telegram HTML).
        pay_url = await threads.deferToThread(webflow.donate, web.base, "150", "Ann", "for the <b>songs</b> & more")
        # The sandbox delivers this notification twice, as YooMoney may.
        await threads.deferToThread(webflow.pay_in_sandbox, pay_url, "PC", ("duplicate",))
        await threads.deferToThread(webflow.wait_for_status, pay_url, "paid", 30)
        owner = await wait_until(lambda: [m for m in telegram.sent(OWNER) if "songs" in m["visible"]], timeout=30,
                                 what="the donation alert in the owner's chat")
        self.assertEqual(len(owner), 1)
        self.assertIn("for the <b>songs</b> & more", owner[0]["visible"])  # shown as text, not markup
        self.assertIn("150", owner[0]["visible"])

        # Settle, then exact counts everywhere.
        await wait_until(lambda: cluster.drained("billing") and cluster.drained("bot"), timeout=30,
                         what="both queues drained")
        sent = telegram.sent(chat)
        self.assertEqual(len(sent), 3, [m["visible"] for m in sent])
        invites = [u for m in sent for u in url_buttons(m) if "t.me/+" in u]
        self.assertEqual(len(invites), 1)
        stats = telegram.stats()
        links_made = [link for link in stats["invite_links"] if link["chat_id"] == CHANNEL]
        self.assertEqual(len(links_made), 1)
        self.assertEqual(links_made[0]["creates_join_request"], True)  # issue 15: only the payer is let in
        self.assertIn("expire_date", links_made[0])
        self.assertEqual(cluster.ledger.payments(), 2)
        self.assertEqual(len(telegram.sent(OWNER)), 1, [m["visible"] for m in telegram.sent(OWNER)])
        self.assertEqual(stats["throttled"], 0)
        self.assertEqual(cluster.stray_keys(), [])
        applied = sum(node.count("payment applied") for node in billing_nodes)
        self.assertEqual(applied, 2)
        await wait_until(lambda: web.count("notification duplicate 200") == 1, timeout=30,
                         what="the sandbox's second delivery answered as a duplicate")
        record(f"layout {self.layout}", payments=cluster.ledger.payments(), user_messages=len(sent),
               invite_links=len(links_made), owner_messages=len(telegram.sent(OWNER)), applied_lines=applied,
               duplicate_deliveries=web.count("notification duplicate 200"))


class AllInOneSQLiteTests(LayoutPath, unittest.TestCase):
    """(a) every role in one process, SQLite ledger."""

    layout = "(a) all roles, SQLite"

    timeout = 180

    @as_deferred
    async def test_subscribe_pay_invite_and_donation(self):
        cluster = Cluster(self, ledger="sqlite")
        node = cluster.node("all", "web,billing,bot")
        await self.subscribe_pay_and_donate(cluster, node, [node])


class SplitPostgresTests(LayoutPath, unittest.TestCase):
    """(b) web+bot on node 1, two billing workers on nodes 2 and 3, PostgreSQL."""

    layout = "(b) web+bot, 2x billing, PostgreSQL"

    timeout = 240

    @as_deferred
    async def test_subscribe_pay_invite_and_donation(self):
        cluster = Cluster(self, ledger="pg")
        billing2 = cluster.node("billing2", "billing")
        billing3 = cluster.node("billing3", "billing")
        web = cluster.node("web", "web,bot")
        await self.subscribe_pay_and_donate(cluster, web, [billing2, billing3])
        # Both billing workers took part in the run (create_invoices, applies, quarantine...).
        self.assertTrue(billing2.alive() and billing3.alive())
