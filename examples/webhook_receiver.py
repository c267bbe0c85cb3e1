"""Receive ymds webhooks in an existing asyncio program (aiohttp, which aiogram already uses).

    YMDS_WEBHOOK_SECRET=whsec_...  python examples/webhook_receiver.py      # listens on :8081

Register it with ``ymds webhook add https://your-host/ymds-webhook --events all`` (the command
prints the secret).  Every delivery is checked with ymds.client.verify_webhook (signature and
a 5-minute timestamp window); events are handled once per event id, because ymds delivers
at least once (a retry after a timeout repeats an event with the same id).

Answer 2xx quickly once the event is safely recorded; anything else (or no answer within 10
seconds) is retried with backoff for 24 hours, and later events wait for this one.
"""

from __future__ import annotations

import os
import sqlite3

from aiohttp import web

from ymds.client import InvalidSignature, verify_webhook

SECRET = os.environ.get("YMDS_WEBHOOK_SECRET", "")
DB = sqlite3.connect(os.environ.get("RECEIVER_DB", "webhooks.sqlite3"))
DB.execute("CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY)")
DB.execute("CREATE TABLE IF NOT EXISTS access (chat_id INTEGER PRIMARY KEY, until TEXT)")


def first_time(event_id: str) -> bool:
    """Remember the event id; False when it was handled before (a redelivery)."""
    try:
        with DB:
            DB.execute("INSERT INTO seen (event_id) VALUES (?)", (event_id,))
        return True
    except sqlite3.IntegrityError:
        return False


async def handle(event: dict, app: web.Application) -> None:
    data = event["data"]
    notify = app.get("notify")  # e.g. the aiogram Bot's send_message (see aiogram_bot.py)
    if event["type"] == "invoice.paid":
        invoice = data["invoice"]
        # your own bookkeeping: metadata carries what you sent when creating the invoice
        print("paid", invoice["label"], invoice["amount"], invoice["metadata"])
        if notify and invoice.get("chat_id"):
            await notify(invoice["chat_id"], f"Payment of {invoice['amount']} RUB received, thank you!")
    elif event["type"] == "subscription.extended":
        sub = data["subscription"]
        with DB:
            DB.execute("INSERT INTO access (chat_id, until) VALUES (?, ?) ON CONFLICT (chat_id) "
                       "DO UPDATE SET until = excluded.until", (sub["chat_id"], sub["ends_at"]))
    elif event["type"] == "subscription.expired":
        with DB:
            DB.execute("DELETE FROM access WHERE chat_id = ?", (data["subscription"]["chat_id"],))
    elif event["type"] in ("invoice.underpaid", "payment.unmatched"):
        print("needs a look:", event["type"], data)


async def ymds_webhook(request: web.Request) -> web.Response:
    body = await request.read()  # the raw bytes: the signature covers exactly these
    try:
        event = verify_webhook(SECRET, request.headers.get("Ymds-Signature"), body)
    except InvalidSignature as e:
        return web.Response(status=400, text=f"bad signature: {e}")
    if first_time(event["id"]):
        await handle(event, request.app)
    return web.Response(text="ok")


def make_app(notify=None) -> web.Application:
    app = web.Application(client_max_size=256 * 1024)
    app["notify"] = notify
    app.router.add_post("/ymds-webhook", ymds_webhook)
    return app


if __name__ == "__main__":
    if not SECRET.startswith("whsec_"):
        raise SystemExit("set YMDS_WEBHOOK_SECRET to the secret `ymds webhook add` printed")
    web.run_app(make_app(), port=int(os.environ.get("PORT", "8081")))
