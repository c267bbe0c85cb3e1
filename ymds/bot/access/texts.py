"""What the access code says, Russian and English (Telegram HTML; parameters escaped)."""
from __future__ import annotations

from ymds.bot.texts import escape

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "declined": "Вступить в «{chat}» можно только с действующей подпиской. Оформите её кнопкой ниже "
                    "или командой /subscribe, затем снова нажмите «Получить ссылку-приглашение».",
        "subscribe_button": "Подписаться",
        "removed_head": "🚪 Удалены из платных чатов без подписки: {count}.",
        "removed_line": "• {chat}: {count} ({reasons})",
        "removed_failed": "⚠️ Не удалось удалить: {count}. Проверьте права бота: <code>twistd ymds --check</code>.",
        "reason_link": "по ссылке",
        "reason_added": "добавлены вручную",
        "reason_approved": "заявка одобрена не ботом",
        "reason_expired": "подписка закончилась",
        "reason_other": "иначе",
        "press_too_soon": "Слишком часто. Попробуйте снова через {seconds} с.",
        "invite": "Ваше личное приглашение: по ссылке впустят только вас (заявки других людей отклоняются). "
                  "Действует до {expires_at}.",
        "invite_button_one": "Вступить",
        "invite_button": "Вступить: чат {n}",
        "grace": "После окончания подписки вы останетесь в чатах ещё {grace}; продлите её до этого, "
                 "чтобы не выходить.",
        "grace_day": "{n} дн.",
        "grace_hour": "{n} ч",
        "grace_minute": "{n} мин",
    },
    "en": {
        "declined": "Only subscribers may join “{chat}”. Subscribe with the button below or /subscribe, "
                    "then press “Get an invitation link” again.",
        "subscribe_button": "Subscribe",
        "removed_head": "🚪 Removed from paid chats without a subscription: {count}.",
        "removed_line": "• {chat}: {count} ({reasons})",
        "removed_failed": "⚠️ Could not remove: {count}. Check the bot's rights: <code>twistd ymds --check</code>.",
        "reason_link": "by link",
        "reason_added": "added by hand",
        "reason_approved": "request approved by someone else",
        "reason_expired": "subscription ended",
        "reason_other": "other",
        "press_too_soon": "Too often. Try again in {seconds} s.",
        "invite": "Your personal invitation: the link lets in only you (other people's requests are declined). "
                  "Valid until {expires_at}.",
        "invite_button_one": "Join",
        "invite_button": "Join: chat {n}",
        "grace": "After the subscription ends you stay in the chats for {grace} more; renew before then "
                 "to keep your place.",
        "grace_day": "{n} d",
        "grace_hour": "{n} h",
        "grace_minute": "{n} min",
    },
}


def say(language: str, name: str, /, **params: object) -> str:
    """The text ``name`` in ``language`` (Russian when unknown); parameters HTML-escaped
    unless their name ends in ``_html`` (fragments built here)."""
    texts = TEXTS.get(language) or TEXTS["ru"]
    values = {k[:-5] if k.endswith("_html") else k: (v if k.endswith("_html") else escape(v))
              for k, v in params.items()}
    return texts[name].format_map(values)


def grace_text(language: str, seconds: int) -> str:
    """One sentence about the grace period (``telegram.grace``), or "" when there is none."""
    if seconds <= 0:
        return ""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0 or unit == "minute":
            amount = say(language, "grace_" + unit, n=max(1, round(seconds / size)))
            return say(language, "grace", grace=amount)
    return ""
