"""Everything the bot says, in Russian and English.

Templates are Telegram HTML.  :func:`render` escapes every parameter, so text that came
from users (donors' names and messages, plan titles typed by the owner) can never break
the markup or inject links.
"""

from __future__ import annotations

import html
from datetime import tzinfo

from ymds.localtime import moment_text
from ymds.money import rubles
from ymds.bot.texts_selling import SELLING_TEXTS

LANGUAGES = ("ru", "en")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "welcome": "Hello! I sell access by subscription, paid through YooMoney.\n\n"
                   "/subscribe — choose a plan and pay\n/status — your subscription\n/lang — language\n/help — help",
        "help": "<b>Commands</b>\n/subscribe — choose a plan and pay\n/status — your subscription\n"
                "/lang — change language\n/help — this help",
        "help_admin": "\n\n<b>Owner</b>\n/stats — payments and subscribers",
        "unknown": "I did not understand that. /help lists what I can do.",
        "private_only": "Please write to me in a private chat.",
        "choose_plan": "Choose a plan. The button opens the payment page (card or YooMoney wallet):",
        "plan_line": "• <b>{title}</b> — {amount} for {days} days",
        "plan_button": "{title} — {amount}",
        "chosen_plan": "Plan <b>{title}</b>: {amount} for {days} days. Pay with the button below:",
        "no_plans": "There is nothing to subscribe to yet.",
        "unavailable": "Payments are temporarily unavailable. Please try again in a minute.",
        "status_active": "Your subscription <b>{plan}</b> is active until <b>{ends_at}</b>.",
        "status_expired": "Your subscription <b>{plan}</b> ended on <b>{ends_at}</b>. Renew it:",
        "status_none": "You have no subscription yet.",
        "renew": "Renew in advance:",
        "invite_button": "Get an invitation link",
        "subscribe_button": "Subscribe",
        "lang_choose": "Choose your language:",
        "lang_set": "Language: English.",
        "lang_button": "English",
        "payment_confirmed": "Payment received{amount_part}, thank you! Your subscription <b>{plan}</b> is active until <b>{ends_at}</b>.",
        "payment_renewed": "Payment received{amount_part}, thank you! Subscription <b>{plan}</b> extended until <b>{ends_at}</b>.",
        "payment_underpaid": "We received {amount}, which is less than the price{expected_part}. The subscription was not activated: please contact the owner.{contact_part}",
        "payment_held": "We received your payment{amount_part}. It is being checked; we will write to you as soon as it is confirmed.{contact_part}",
        "reminder": "Your subscription <b>{plan}</b> ends on <b>{ends_at}</b>. Renew it so as not to lose access:",
        "expired": "Your subscription <b>{plan}</b> has ended. Subscribe again with /subscribe.",
        "invite": "Your personal invitation to the channel: one person, valid until {expires_at}.",
        "invite_open": "Join the channel",
        "no_channel": "There is no channel to join.",
        "not_active": "You have no active subscription. /subscribe",
        "stats": "<b>Statistics</b>\nToday: {payments_today} payments, {sum_today}\n"
                 "This month: {payments_month} payments, {sum_month}\n"
                 "Active subscribers: {active_subscribers}\nQuarantined notifications: {quarantined}\n"
                 "Dead letters: {dead_letters}",
        "admin_donation": "💰 Donation {amount} from {name}{message_part}",
        "admin_underpaid": "⚠️ Underpayment: received {amount}, expected {expected}, invoice {label}, plan {plan_title}, payer chat {chat_id}",
        "admin_overpaid": "ℹ️ Overpayment: received {amount}, expected {expected}, invoice {label}, plan {plan_title}, payer chat {chat_id}",
        "admin_sale": "🛒 Sale: {plan_title}, {amount}, payer chat {chat_id}, invoice {label}",
        "admin_sales": "🛒 {count} sales, {total}:\n{lines}",
        "admin_unmatched": "❓ Payment {amount} without a known invoice (operation {operation_id}, label {label}); kept as a donation",
        "admin_quarantine": "🚫 A notification failed verification and was quarantined: {reason}. Check with <code>ymds quarantine</code>.",
        "admin_dead_letter": "☠️ A job failed for good: {queue}.{task}: {error}. See <code>ymds dead-letters</code>.",
        "admin_webhook_failed": "🔔 Webhook {event_type} {event_id} to endpoint {endpoint_id} ({host}) failed for 24 hours after {attempts} attempts: {error}. Later events go on; see <code>ymds webhook log</code> and <code>ymds webhook redeliver</code>.",
        "admin_unconfirmed": "⏳ Payment {amount} (operation {operation_id}, invoice {label}) is proven only by sha1_hash, which does not cover acceptance: it is held. Check it in the wallet; set yoomoney.api_token_file so that ymds confirms and releases such payments itself.",
        "admin_other": "Owner alert: {message}",
    },
    "ru": {
        "welcome": "Здравствуйте! Я продаю доступ по подписке с оплатой через ЮMoney.\n\n"
                   "/subscribe — выбрать тариф и оплатить\n/status — ваша подписка\n/lang — язык\n/help — помощь",
        "help": "<b>Команды</b>\n/subscribe — выбрать тариф и оплатить\n/status — ваша подписка\n"
                "/lang — сменить язык\n/help — эта справка",
        "help_admin": "\n\n<b>Владельцу</b>\n/stats — платежи и подписчики",
        "unknown": "Не понял. /help — что я умею.",
        "private_only": "Напишите мне, пожалуйста, в личные сообщения.",
        "choose_plan": "Выберите тариф. Кнопка откроет страницу оплаты (картой или кошельком ЮMoney):",
        "plan_line": "• <b>{title}</b> — {amount} на {days} дн.",
        "plan_button": "{title} — {amount}",
        "chosen_plan": "Тариф <b>{title}</b>: {amount} на {days} дн. Оплатите кнопкой ниже:",
        "no_plans": "Пока не на что подписаться.",
        "unavailable": "Оплата временно недоступна. Попробуйте через минуту.",
        "status_active": "Ваша подписка <b>{plan}</b> действует до <b>{ends_at}</b>.",
        "status_expired": "Ваша подписка <b>{plan}</b> закончилась <b>{ends_at}</b>. Продлите её:",
        "status_none": "У вас пока нет подписки.",
        "renew": "Продлить заранее:",
        "invite_button": "Получить ссылку-приглашение",
        "subscribe_button": "Подписаться",
        "lang_choose": "Выберите язык:",
        "lang_set": "Язык: русский.",
        "lang_button": "Русский",
        "payment_confirmed": "Оплата получена{amount_part}, спасибо! Подписка <b>{plan}</b> действует до <b>{ends_at}</b>.",
        "payment_renewed": "Оплата получена{amount_part}, спасибо! Подписка <b>{plan}</b> продлена до <b>{ends_at}</b>.",
        "payment_underpaid": "Мы получили {amount} — меньше цены{expected_part}. Подписка не активирована: свяжитесь, пожалуйста, с владельцем.{contact_part}",
        "payment_held": "Мы получили ваш платёж{amount_part}. Он проверяется; напишем, как только он будет подтверждён.{contact_part}",
        "reminder": "Ваша подписка <b>{plan}</b> заканчивается <b>{ends_at}</b>. Продлите её, чтобы не потерять доступ:",
        "expired": "Ваша подписка <b>{plan}</b> закончилась. Оформить снова: /subscribe.",
        "invite": "Ваше личное приглашение в канал: на одного человека, действует до {expires_at}.",
        "invite_open": "Вступить в канал",
        "no_channel": "Канала для вступления нет.",
        "not_active": "У вас нет действующей подписки. /subscribe",
        "stats": "<b>Статистика</b>\nСегодня: платежей {payments_today}, на {sum_today}\n"
                 "В этом месяце: платежей {payments_month}, на {sum_month}\n"
                 "Активных подписчиков: {active_subscribers}\nУведомлений в карантине: {quarantined}\n"
                 "Неисполненных задач: {dead_letters}",
        "admin_donation": "💰 Пожертвование {amount} от {name}{message_part}",
        "admin_underpaid": "⚠️ Недоплата: получено {amount}, ожидалось {expected}, счёт {label}, тариф {plan_title}, чат плательщика {chat_id}",
        "admin_overpaid": "ℹ️ Переплата: получено {amount}, ожидалось {expected}, счёт {label}, тариф {plan_title}, чат плательщика {chat_id}",
        "admin_sale": "🛒 Продажа: {plan_title}, {amount}, чат плательщика {chat_id}, счёт {label}",
        "admin_sales": "🛒 Продаж: {count}, на {total}:\n{lines}",
        "admin_unmatched": "❓ Платёж {amount} без известного счёта (операция {operation_id}, метка {label}); учтён как пожертвование",
        "admin_quarantine": "🚫 Уведомление не прошло проверку и помещено в карантин: {reason}. Проверьте: <code>ymds quarantine</code>.",
        "admin_dead_letter": "☠️ Задача не выполнена окончательно: {queue}.{task}: {error}. См. <code>ymds dead-letters</code>.",
        "admin_webhook_failed": "🔔 Вебхук {event_type} {event_id} на endpoint {endpoint_id} ({host}) не доставлен за 24 часа, попыток: {attempts}: {error}. Следующие события идут дальше; см. <code>ymds webhook log</code> и <code>ymds webhook redeliver</code>.",
        "admin_unconfirmed": "⏳ Платёж {amount} (операция {operation_id}, счёт {label}) подтверждён только подписью sha1_hash, которая не покрывает зачисление: он удержан. Проверьте его в кошельке; задайте yoomoney.api_token_file, чтобы ymds сам подтверждал и освобождал такие платежи.",
        "admin_other": "Сообщение владельцу: {message}",
    },
}

# issue 19: trials, promo codes, gift and access codes
for _language, _extra in SELLING_TEXTS.items():
    TEXTS[_language].update(_extra)

MAX_PARAM_CHARS = 500  # a donor's message is shown, but never a wall of text


class _Params(dict):
    """Missing parameters render as "—" instead of failing the whole message."""

    def __missing__(self, key):
        return "—"


def escape(value) -> str:
    text = "" if value is None else str(value)
    if len(text) > MAX_PARAM_CHARS:
        text = text[:MAX_PARAM_CHARS] + "…"
    return html.escape(text, quote=True)


def money(value, language: str = "ru") -> str:
    """Decimal (or its text) as rubles with two decimals; "—" for anything else."""
    return rubles(value, language)


def date(value, language: str = "ru", zone: str | tzinfo | None = "UTC") -> str:
    """An ISO 8601 moment in the owner's zone (``[server] timezone``) with its name and
    offset, "30.11.2026 00:30 MSK (UTC+3)"; "—" if it is not a moment."""
    return moment_text(value, zone, language) or "—"


def render(language: str, name: str, /, **params) -> str:
    """The text ``name`` in ``language``; parameters are HTML-escaped.

    Parameters whose names end in ``_html`` are inserted as they are: only for fragments
    this module built itself.
    """
    texts = TEXTS.get(language) or TEXTS["ru"]
    template = texts.get(name) or TEXTS["en"][name]
    safe = _Params()
    for key, value in params.items():
        if key.endswith("_html"):
            safe[key[:-5]] = value
        elif value is None or value == "":
            pass  # shown as "—"
        else:
            safe[key] = escape(value)
    return template.format_map(safe)


def plain(language: str, name: str, /, **params) -> str:
    """A catalogue string for a button label: Telegram shows it as plain text, so nothing
    is escaped, but it is cut to a length a button can show."""
    texts = TEXTS.get(language) or TEXTS["ru"]
    template = texts.get(name) or TEXTS["en"][name]
    safe = _Params({k: str(v)[:64] for k, v in params.items()})
    return template.format_map(safe)[:128]
