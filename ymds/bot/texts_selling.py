"""What the bot says about trials, promo codes and gift/access codes (issue 19), in Russian
and English.  Merged into ymds.bot.texts.TEXTS (same rules: Telegram HTML, parameters
escaped by ``texts.render``)."""

from __future__ import annotations

SELLING_TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "promo_applied": "Промокод <b>{code}</b> применён: {discount}. Новые ссылки на оплату — со скидкой:",
        "promo_usage": "Пришлите промокод так: /promo КОД",
        "promo_note": "Промокод <b>{code}</b>: {title} — <s>{full}</s> {amount}",
        "redeem_usage": "Пришлите код так: /redeem КОД",
        "code_redeemed": "Код принят: подписка <b>{plan}</b> активна до <b>{ends_at}</b>.",
        "trial_started": "Пробный период начался: подписка <b>{plan}</b> активна до <b>{ends_at}</b>.",
        "trial_paid": "Пробный период <b>{plan}</b>: {days} дн. за {amount}. Оплатите по кнопке:",
        "trial_line": "• пробный период {days} дн. — {price}",
        "trial_free_button": "Попробовать {days} дн. бесплатно: {title}",
        "trial_paid_note": "пробный период {days} дн.",
        "free": "бесплатно",
        "gift_choose": "Какой тариф подарить? После оплаты я пришлю код, который нужно переслать получателю:",
        "gift_code": "Спасибо за подарок! Код на подписку <b>{plan}</b>: <code>{code}</code>\n"
                     "Перешлите это сообщение получателю: ему нужно отправить мне /redeem {code}.",
        "discount_percent": "скидка {percent}%",
        "discount_off": "скидка {off}",
        "refused_unknown": "Такого кода нет — проверьте, что он введён без ошибок.",
        "refused_expired": "Срок действия этого кода истёк — попросите у владельца новый.",
        "refused_used_up": "Этот код уже использован максимальное число раз — попросите у владельца новый.",
        "refused_not_for_plan": "Этот промокод не действует для выбранного тарифа — выберите другой тариф.",
        "refused_first_only": "Этот промокод только для первой покупки — оплатите по обычной цене.",
        "refused_per_user": "Вы уже использовали этот промокод — оплатите по обычной цене.",
        "refused_already_trial": "Пробный период этого тарифа даётся один раз — оформите подписку: /subscribe",
        "refused_already_code": "Вы уже активировали этот код — проверьте подписку: /status",
        "refused_no_trial": "У этого тарифа нет пробного периода — выберите тариф: /subscribe",
        "refused_invalid": "Код не подходит — проверьте, что он введён без ошибок.",
    },
    "en": {
        "promo_applied": "Promo code <b>{code}</b> applied: {discount}. New pay links carry the discount:",
        "promo_usage": "Send the promo code like this: /promo CODE",
        "promo_note": "Promo code <b>{code}</b>: {title} — <s>{full}</s> {amount}",
        "redeem_usage": "Send the code like this: /redeem CODE",
        "code_redeemed": "Code accepted: your subscription <b>{plan}</b> is active until <b>{ends_at}</b>.",
        "trial_started": "Your trial has started: subscription <b>{plan}</b> is active until <b>{ends_at}</b>.",
        "trial_paid": "Trial of <b>{plan}</b>: {days} days for {amount}. Pay with the button below:",
        "trial_line": "• trial of {days} days — {price}",
        "trial_free_button": "Try {title} free for {days} days",
        "trial_paid_note": "trial of {days} days",
        "free": "free",
        "gift_choose": "Which plan would you like to give? After payment I will send you a code to forward:",
        "gift_code": "Thank you for the gift! The code for <b>{plan}</b>: <code>{code}</code>\n"
                     "Forward this message to the recipient: they send me /redeem {code}.",
        "discount_percent": "{percent}% off",
        "discount_off": "{off} off",
        "refused_unknown": "There is no such code; check that you typed it correctly.",
        "refused_expired": "This code has expired; ask the owner for a new one.",
        "refused_used_up": "This code has been used up; ask the owner for a new one.",
        "refused_not_for_plan": "This promo code does not apply to that plan; choose another plan.",
        "refused_first_only": "This promo code is for a first purchase only; pay the regular price instead.",
        "refused_per_user": "You have already used this promo code; pay the regular price instead.",
        "refused_already_trial": "A plan's trial is given only once; subscribe with /subscribe.",
        "refused_already_code": "You have already redeemed this code; see your subscription with /status.",
        "refused_no_trial": "This plan has no trial; choose a plan with /subscribe.",
        "refused_invalid": "That code is not valid; check that you typed it correctly.",
    },
}

#: refusal words that have their own sentence (others fall back to refused_unknown)
REFUSAL_TEXTS = ("unknown", "expired", "used_up", "not_for_plan", "first_only", "per_user", "no_trial", "invalid")


def refusal_key(reason: str | None, about: str) -> str:
    """The catalogue key for a refusal; ``about`` ("trial" or "code") tells which "already"."""
    if reason == "already":
        return f"refused_already_{about}"
    return f"refused_{reason}" if reason in REFUSAL_TEXTS else "refused_unknown"


__all__ = ["REFUSAL_TEXTS", "SELLING_TEXTS", "refusal_key"]
