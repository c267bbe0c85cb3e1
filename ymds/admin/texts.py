"""Dashboard texts (Russian first, then English) and formats: money, numbers, local times."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from ymds.money import rubles

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "title": "Панель владельца", "switch_lang": "English", "switch_code": "en",
        "nav_overview": "Обзор", "nav_payments": "Платежи", "nav_subscribers": "Подписчики",
        "nav_quarantine": "Карантин", "nav_dead": "Ошибки задач", "nav_webhooks": "Вебхуки",
        "sign_out": "Выйти", "nav_label": "Разделы",
        "signin_title": "Вход в панель",
        "signin_text": "Войдите из Telegram (команда /admin в боте) или по ссылке от команды `ymds admin-link`.",
        "login_title": "Вход в панель", "login_text": "Нажмите кнопку, чтобы войти. Ссылка действует один раз.",
        "login_button": "Войти",
        "login_bad": "Ссылка для входа уже использована или истекла: получите новую командой /admin в боте или `ymds admin-link`.",
        "csrf_bad": "Форма устарела: откройте страницу заново и повторите действие.",
        "unavailable": "Данные сейчас недоступны: повторите через минуту.",
        "not_found": "Такой страницы нет: вернитесь в обзор.",
        "bad_input": "Значение в форме не подходит: исправьте его и повторите.",
        "today": "Сегодня", "7d": "7 дней", "30d": "30 дней",
        "kind_subscription": "Подписки", "kind_donation": "Пожертвования", "total": "Всего",
        "money_in": "Поступления", "active_subscribers": "Активные подписчики",
        "new_subscribers": "Новые за 30 дней", "lapsed_subscribers": "Ушли за 30 дней",
        "warn_quarantine": "В карантине: {n}", "warn_dead": "Задач с ошибкой: {n}",
        "last_payments": "Последние платежи", "revenue_chart": "Поступления",
        "revenue_chart_desc": "Поступления за {days} дн. по {bucket}, по видам платежей.",
        "bucket_day": "дням", "bucket_week": "неделям",
        "subs_chart": "Активные подписчики", "subs_chart_desc": "Активные подписчики на конец каждого дня за {days} дн.",
        "table_fallback": "Таблица", "col_period": "Период", "col_date": "Дата", "col_count": "Подписчиков",
        "days_n": "{n} дн.",
        "col_time": "Время", "col_amount": "Сумма", "col_kind": "Вид", "col_status": "Статус",
        "col_label": "Метка", "col_chat": "Чат", "col_user": "Пользователь", "col_plan": "Тариф",
        "col_expires": "До", "col_actions": "Действия", "col_reason": "Причина", "col_operation": "Операция",
        "col_job": "Задача", "col_error": "Ошибка", "col_attempts": "Попыток", "col_url": "Адрес",
        "col_event": "Событие",
        "filter": "Показать", "since": "С", "until": "По", "status_any": "любой", "export_csv": "Скачать CSV",
        "older": "Ранее", "nothing": "Пока ничего нет.",
        "search": "Поиск (id чата или имя)", "extend_days": "Дней", "extend": "Продлить", "revoke": "Отозвать",
        "reverify": "Перепроверить", "reverify_all": "Перепроверить все", "replay": "Повторить",
        "redeliver": "Отправить снова",
        "done": "Готово.", "done_n": "Готово: {n}.", "already_done": "Это действие уже выполнено.",
        "status_active": "активна", "status_lapsed": "истекла", "status_revoked": "отозвана",
        "payment_unmatched": "без счёта", "status_delivered": "доставлен", "status_failed": "не доставлен", "status_pending": "в очереди",
        "nav_codes": "Коды", "promo_codes": "Промокоды", "access_codes": "Подарочные коды и коды доступа",
        "col_code": "Код", "col_discount": "Скидка", "col_used": "Использовано", "col_days": "Дней",
        "disable": "Отключить", "status_disabled": "отключён", "promo_active": "действует", "code_gift": "подарок", "unlimited": "без ограничений",
        "nav_alerts": "Оповещения стрима", "col_donor": "Донатер", "anonymous": "аноним",
        "skip_alert": "Пропустить", "replay_alert": "Показать снова", "alert_waiting": "ещё не показано",
        "alerts_hint": "Последние оповещения о донатах в оверлее OBS: «Пропустить» убирает оповещение с экрана, «Показать снова» повторяет его.",
    },
    "en": {
        "title": "Owner's dashboard", "switch_lang": "Русский", "switch_code": "ru",
        "nav_overview": "Overview", "nav_payments": "Payments", "nav_subscribers": "Subscribers",
        "nav_quarantine": "Quarantine", "nav_dead": "Dead letters", "nav_webhooks": "Webhooks",
        "sign_out": "Sign out", "nav_label": "Sections",
        "signin_title": "Sign in to the dashboard",
        "signin_text": "Sign in from Telegram (the bot's /admin command) or with the link from `ymds admin-link`.",
        "login_title": "Sign in to the dashboard", "login_text": "Press the button to sign in. The link works once.",
        "login_button": "Sign in",
        "login_bad": "This sign-in link was used or has expired: get a new one with /admin in the bot or `ymds admin-link`.",
        "csrf_bad": "This form is out of date: open the page again and repeat the action.",
        "unavailable": "The data is unavailable right now: try again in a minute.",
        "not_found": "There is no such page: go back to the overview.",
        "bad_input": "A value in the form is not valid: correct it and try again.",
        "today": "Today", "7d": "7 days", "30d": "30 days",
        "kind_subscription": "Subscriptions", "kind_donation": "Donations", "total": "Total",
        "money_in": "Money in", "active_subscribers": "Active subscribers",
        "new_subscribers": "New in 30 days", "lapsed_subscribers": "Lapsed in 30 days",
        "warn_quarantine": "In quarantine: {n}", "warn_dead": "Dead letters: {n}",
        "last_payments": "Last payments", "revenue_chart": "Money in",
        "revenue_chart_desc": "Money in over {days} days per {bucket}, by kind of payment.",
        "bucket_day": "day", "bucket_week": "week",
        "subs_chart": "Active subscribers", "subs_chart_desc": "Active subscribers at the end of each day over {days} days.",
        "table_fallback": "Table", "col_period": "Period", "col_date": "Date", "col_count": "Subscribers",
        "days_n": "{n} days",
        "col_time": "Time", "col_amount": "Amount", "col_kind": "Kind", "col_status": "Status",
        "col_label": "Label", "col_chat": "Chat", "col_user": "User", "col_plan": "Plan",
        "col_expires": "Until", "col_actions": "Actions", "col_reason": "Reason", "col_operation": "Operation",
        "col_job": "Job", "col_error": "Error", "col_attempts": "Attempts", "col_url": "URL",
        "col_event": "Event",
        "filter": "Show", "since": "From", "until": "To", "status_any": "any", "export_csv": "Download CSV",
        "older": "Older", "nothing": "Nothing yet.",
        "search": "Search (chat id or name)", "extend_days": "Days", "extend": "Extend", "revoke": "Revoke",
        "reverify": "Reverify", "reverify_all": "Reverify all", "replay": "Replay",
        "redeliver": "Redeliver",
        "done": "Done.", "done_n": "Done: {n}.", "already_done": "This action was already done.",
        "status_active": "active", "status_lapsed": "lapsed", "status_revoked": "revoked",
        "payment_unmatched": "no invoice", "status_delivered": "delivered", "status_failed": "failed", "status_pending": "pending",
        "nav_codes": "Codes", "promo_codes": "Promo codes", "access_codes": "Gift and access codes",
        "col_code": "Code", "col_discount": "Discount", "col_used": "Used", "col_days": "Days",
        "disable": "Disable", "status_disabled": "disabled", "promo_active": "active", "code_gift": "gift", "unlimited": "no limit",
        "nav_alerts": "Stream alerts", "col_donor": "Donor", "anonymous": "anonymous",
        "skip_alert": "Skip", "replay_alert": "Replay", "alert_waiting": "not shown yet",
        "alerts_hint": "The latest donation alerts of the OBS overlay: Skip takes an alert off the screen, Replay shows it again.",
    },
}


def texts(lang: str) -> dict[str, str]:
    return TEXTS.get(lang, TEXTS["ru"])


def money(value: Decimal | str | int, lang: str = "ru") -> str:
    """"1 990,00 ₽" in Russian, "1,990.00 ₽" in English; "—" if not a number (ymds.money.rubles)."""
    return rubles(value, lang)


def number(value: int, lang: str = "ru") -> str:
    text = f"{int(value):,}"
    return text.replace(",", "\u00a0") if lang == "ru" else text


def zone(name: str) -> ZoneInfo:
    """The owner's IANA time zone (``[server] timezone``); raises ZoneInfoNotFoundError."""
    return ZoneInfo(name or "UTC")


def local_time(value: datetime | None, tz: ZoneInfo, lang: str = "ru") -> str:
    if value is None:
        return "—"
    here = value.astimezone(tz)
    return here.strftime("%d.%m.%Y %H:%M") if lang == "ru" else here.strftime("%Y-%m-%d %H:%M")


def day(value: date, lang: str = "ru") -> str:
    return value.strftime("%d.%m") if lang == "ru" else value.strftime("%m-%d")
