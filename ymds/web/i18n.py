"""Page texts in Russian and English, and choosing the language of a request.

Order: ``?lang=`` (remembered in a cookie), the ``lang`` cookie, Accept-Language (with
q-values), then the configured default.
"""

from __future__ import annotations

LANGUAGES = ("ru", "en")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "site_title": "Payments",
        "switch_lang": "Русский",
        "switch_code": "ru",
        "landing_title": "Support and subscriptions",
        "landing_intro": "Pay by bank card or from a YooMoney wallet.",
        "donate_title": "Make a donation",
        "donate_amount": "Amount, ₽",
        "donate_amount_hint": "From {min} to {max} ₽",
        "donate_name": "Your name (optional)",
        "donate_message": "Message (optional)",
        "donate_submit": "Continue to payment",
        "donations_off": "Donations are switched off.",
        "plans_title": "Subscriptions",
        "plans_how": "Subscriptions are bought in the Telegram bot: send it /subscribe.",
        "plan_days": "{days} days",
        "plan_subscribe": "Subscribe in Telegram",
        "no_plans": "No subscription plans yet.",
        "err_amount": "Enter an amount, e.g. 100 or 99.50.",
        "err_amount_range": "The amount must be from {min} to {max} ₽.",
        "err_name": "The name may have at most 64 characters.",
        "err_message": "The message may have at most 500 characters.",
        "err_form": "Please correct the form.",
        "pay_title": "Payment",
        "pay_amount": "Amount",
        "pay_purpose": "Purpose",
        "pay_expires": "Pay before",
        "pay_with": "Choose how to pay:",
        "pay_AC": "Pay by bank card",
        "pay_PC": "Pay from a YooMoney wallet",
        "pay_qr": "Scan to pay from your phone",
        "pay_fee_note": "The fee is paid by the recipient.",
        "state_open": "Waiting for payment",
        "state_paid": "paid",
        "state_paid_text": "Thank you! The payment has arrived.",
        "state_overpaid_text": "Thank you! The payment has arrived (more than the amount due).",
        "state_underpaid_text": "A payment arrived but it is less than the amount due. The owner has been told.",
        "state_late_text": "A payment arrived after the invoice expired. The owner will review it.",
        "state_held_text": "A payment arrived and is being checked. It will be credited shortly.",
        "state_expired": "expired",
        "state_expired_text": "This invoice has expired. Please ask for a new link.",
        "purpose_donation": "Donation",
        "purpose_subscription": "Subscription: {plan}",
        "thanks_title": "Thank you",
        "thanks_waiting": "Waiting for the payment to arrive. This page updates by itself.",
        "thanks_status": "Status",
        "thanks_back": "Back to the payment page",
        "thanks_bot": "Back to the bot",
        "sandbox_banner": "SANDBOX: a test shop, no real money moves. Payments here are made up.",
        "err403_title": "This link is not valid",
        "err403_text": "The payment link was changed or is not ours. Please use the link exactly as you received it.",
        "err410_title": "This link has expired",
        "err410_text": "Payment links are valid for a limited time. Please ask for a new link.",
        "err404_title": "Not found",
        "err404_text": "There is no such page or invoice.",
        "err429_title": "Too many requests",
        "err429_text": "Please wait a little and try again.",
        "err503_title": "Temporarily unavailable",
        "err503_text": "The service is busy or restarting. Please try again in a minute.",
        "home": "Home",
    },
    "ru": {
        "site_title": "Оплата",
        "switch_lang": "English",
        "switch_code": "en",
        "landing_title": "Поддержка и подписки",
        "landing_intro": "Оплата банковской картой или из кошелька ЮMoney.",
        "donate_title": "Сделать пожертвование",
        "donate_amount": "Сумма, ₽",
        "donate_amount_hint": "От {min} до {max} ₽",
        "donate_name": "Ваше имя (необязательно)",
        "donate_message": "Сообщение (необязательно)",
        "donate_submit": "Перейти к оплате",
        "donations_off": "Пожертвования отключены.",
        "plans_title": "Подписки",
        "plans_how": "Подписку можно купить в Telegram-боте: отправьте ему /subscribe.",
        "plan_days": "{days} дн.",
        "plan_subscribe": "Оформить в Telegram",
        "no_plans": "Тарифов пока нет.",
        "err_amount": "Введите сумму, например 100 или 99.50.",
        "err_amount_range": "Сумма должна быть от {min} до {max} ₽.",
        "err_name": "Имя — не больше 64 символов.",
        "err_message": "Сообщение — не больше 500 символов.",
        "err_form": "Пожалуйста, исправьте форму.",
        "pay_title": "Оплата",
        "pay_amount": "Сумма",
        "pay_purpose": "Назначение",
        "pay_expires": "Оплатить до",
        "pay_with": "Выберите способ оплаты:",
        "pay_AC": "Оплатить банковской картой",
        "pay_PC": "Оплатить из кошелька ЮMoney",
        "pay_qr": "Отсканируйте, чтобы оплатить с телефона",
        "pay_fee_note": "Комиссию платит получатель.",
        "state_open": "Ожидает оплаты",
        "state_paid": "оплачено",
        "state_paid_text": "Спасибо! Платёж получен.",
        "state_overpaid_text": "Спасибо! Платёж получен (больше нужной суммы).",
        "state_underpaid_text": "Платёж получен, но меньше нужной суммы. Владелец уведомлён.",
        "state_late_text": "Платёж пришёл после истечения счёта. Владелец его проверит.",
        "state_held_text": "Платёж получен и проверяется. Он будет зачислен в ближайшее время.",
        "state_expired": "истёк",
        "state_expired_text": "Срок этого счёта истёк. Попросите новую ссылку.",
        "purpose_donation": "Пожертвование",
        "purpose_subscription": "Подписка: {plan}",
        "thanks_title": "Спасибо",
        "thanks_waiting": "Ждём поступления платежа. Страница обновляется сама.",
        "thanks_status": "Статус",
        "thanks_back": "Вернуться к странице оплаты",
        "thanks_bot": "Вернуться в бот",
        "sandbox_banner": "ПЕСОЧНИЦА: тестовый магазин, настоящие деньги не списываются. Платежи здесь ненастоящие.",
        "err403_title": "Ссылка недействительна",
        "err403_text": "Ссылка на оплату изменена или выдана не нами. Используйте ссылку в точности такой, какой вы её получили.",
        "err410_title": "Срок ссылки истёк",
        "err410_text": "Ссылки на оплату действуют ограниченное время. Попросите новую ссылку.",
        "err404_title": "Не найдено",
        "err404_text": "Такой страницы или счёта нет.",
        "err429_title": "Слишком много запросов",
        "err429_text": "Подождите немного и попробуйте снова.",
        "err503_title": "Временно недоступно",
        "err503_text": "Сервис занят или перезапускается. Попробуйте через минуту.",
        "home": "На главную",
    },
}

# What the status JSON and the pages call each invoice state, per language.
STATE_WORDS = {
    "en": {"open": "waiting for payment", "paid": "paid", "overpaid": "paid", "underpaid": "underpaid",
           "late": "paid late", "held": "being checked", "expired": "expired"},
    "ru": {"open": "ожидает оплаты", "paid": "оплачено", "overpaid": "оплачено", "underpaid": "оплачено не полностью",
           "late": "оплачено после срока", "held": "проверяется", "expired": "истёк"},
}


def parse_accept_language(header: str) -> list[str]:
    """Primary language tags by preference (q-values honoured, q=0 dropped)."""
    ranked = []
    for index, part in enumerate(header.split(",")[:20]):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        if not tag:
            continue
        q = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            ranked.append((-q, index, tag.split("-")[0]))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(query: str | None, cookie: str | None, accept: str | None, default: str = "ru") -> str:
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    for tag in parse_accept_language(accept or ""):
        if tag in LANGUAGES:
            return tag
        if tag == "*":
            break
    return default if default in LANGUAGES else "ru"


def request_language(request, default: str = "ru") -> tuple[str, bool]:
    """(language, explicitly chosen by ?lang=) for a twisted.web request."""
    query = (request.args.get(b"lang") or [b""])[0].decode("ascii", "replace")
    cookie = (request.getCookie(b"lang") or b"").decode("ascii", "replace")
    accept = (request.getHeader(b"accept-language") or b"").decode("latin-1")
    return choose_language(query, cookie, accept, default), query in LANGUAGES


def texts(lang: str) -> dict[str, str]:
    return TEXTS.get(lang, TEXTS["ru"])
