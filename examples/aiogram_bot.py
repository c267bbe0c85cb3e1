"""An existing aiogram 3 bot that sells a subscription through ymds: a few lines of its own.

    pip install aiogram ymds      # ymds only for ymds.client (no Twisted needed at run time)
    BOT_TOKEN=...  YMDS_URL=https://pay.example.org  YMDS_API_KEY=ymds_...  \\
    YMDS_WEBHOOK_SECRET=whsec_...  python examples/aiogram_bot.py

The owner runs ymds with its own bot switched off (no telegram token in ymds.toml, so the
billing and web roles only), creates a key and a webhook endpoint once:

    ymds api-key create --scopes invoices:write,subscriptions:read --name my-bot
    ymds webhook add https://bot.example.org/ymds-webhook --events all

/buy answers with a button to the ymds payment page; when the money arrives ymds POSTs
invoice.paid and subscription.extended to the receiver (examples/webhook_receiver.py), which
thanks the user through this bot.
"""

from __future__ import annotations

import asyncio
import os

from aiogram import Bot, Dispatcher
from aiogram.filters import Command
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiohttp import web

from webhook_receiver import make_app
from ymds.client import ApiError, AsyncClient

ymds = AsyncClient(os.environ["YMDS_URL"], os.environ["YMDS_API_KEY"])
dp = Dispatcher()


@dp.message(Command("buy"))
async def buy(message: Message) -> None:
    try:
        invoice = await ymds.create_invoice(
            plan="month", chat_id=message.chat.id,
            metadata={"telegram_user": message.from_user.id if message.from_user else None},
            # the same key for a retried /buy message: one invoice, not two
            idempotency_key=f"buy-{message.chat.id}-{message.message_id}")
    except ApiError as e:
        await message.answer("Payments are unavailable right now, please try again later.")
        print("ymds refused:", e.code, e.message)
        return
    button = InlineKeyboardButton(text=f"Pay {invoice['amount']} RUB", url=invoice["pay_url"])
    await message.answer("One month of access:", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]))


@dp.message(Command("status"))
async def status(message: Message) -> None:
    sub = await ymds.get_subscription(message.chat.id)
    if sub and sub["active"]:
        await message.answer(f"Active until {sub['ends_at'][:10]}.")
    else:
        await message.answer("No active subscription: /buy")


async def main() -> None:
    bot = Bot(os.environ["BOT_TOKEN"])
    # the webhook receiver runs in the same event loop and writes through this bot
    runner = web.AppRunner(make_app(notify=bot.send_message))
    await runner.setup()
    await web.TCPSite(runner, port=int(os.environ.get("PORT", "8081"))).start()
    await dp.start_polling(bot)


if __name__ == "__main__":
    asyncio.run(main())
