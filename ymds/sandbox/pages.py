"""HTML of the sandbox wallet (twisted.web.template: every value is escaped).

Russian and English side by side; no JavaScript; the TEST banner is on every page.
"""

from __future__ import annotations

from decimal import Decimal

from twisted.internet.defer import Deferred
from twisted.web.template import Tag, flattenString, tags

STYLE = """
body{font-family:system-ui,-apple-system,sans-serif;margin:0;background:#f4f1fa;color:#1b1b1f}
main{max-width:34rem;margin:0 auto;padding:1rem}
.banner{background:#b3261e;color:#fff;padding:.6rem 1rem;text-align:center;font-weight:700;letter-spacing:.03em}
.card{background:#fff;border-radius:12px;padding:1rem 1.2rem;margin:1rem 0;box-shadow:0 1px 4px rgba(0,0,0,.12)}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:.35rem .2rem;vertical-align:top}
th{color:#555;font-weight:500;width:45%}td{word-break:break-all}
.sum{font-size:1.6rem;font-weight:700}
fieldset{border:1px solid #ddd;border-radius:8px;margin:1rem 0}label{display:block;padding:.25rem 0}
button{font-size:1.05rem;padding:.7rem 1.2rem;border-radius:8px;border:0;margin:.3rem .3rem .3rem 0;cursor:pointer}
.pay{background:#6b2bd6;color:#fff}.decline{background:#e6e1ee;color:#1b1b1f}
.muted{color:#666;font-size:.9rem}.error{color:#b3261e}
"""

PAYMENT_TYPE_NAMES = {
    "AC": "Банковская карта / Bank card (AC)",
    "PC": "Кошелёк ЮMoney / YooMoney wallet (PC)",
}

SWITCHES = (
    ("unaccepted", "Не зачислен (unaccepted=true) / Not accepted yet"),
    ("codepro", "С кодом протекции (codepro=true) / Protected by a code"),
    ("test_notification", "Тестовое уведомление (test_notification=true) / Test notification"),
    ("duplicate", "Доставить дважды / Deliver twice"),
    ("fail_first", "Первая доставка не удалась (повтор через 10 мин) / First delivery fails (retry after 10 min)"),
)


def _page(title: str, *body) -> Tag:
    return tags.html(lang="ru")(
        tags.head(
            tags.meta(charset="utf-8"),
            tags.meta(name="viewport", content="width=device-width, initial-scale=1"),
            tags.meta(name="robots", content="noindex"),
            tags.title(f"{title} — ТЕСТОВЫЙ КОШЕЛЁК / TEST WALLET"),
            tags.style(STYLE),
        ),
        tags.body(
            tags.div(class_="banner")("ТЕСТОВЫЙ КОШЕЛЁК — песочница, деньги не списываются · "
                                      "TEST WALLET — sandbox, no real money moves"),
            Tag("main")(*body),
        ),
    )


def render(page: Tag) -> Deferred:
    """Deferred[bytes] of a whole HTML document."""
    return flattenString(None, page).addCallback(lambda html: b"<!DOCTYPE html>\n" + html)


def _money(value: Decimal) -> str:
    return f"{value:.2f} ₽"


def confirm_page(form, credited: Decimal, action: str = "pay", csrf: str = "") -> Tag:
    hidden = [tags.input(type="hidden", name=name, value=value) for name, value in (
        ("receiver", form.receiver), ("sum", f"{form.sum:.2f}"), ("label", form.label),
        ("paymentType", form.payment_type), ("successURL", form.success_url), ("csrf", csrf))]
    switches = [tags.label(tags.input(type="checkbox", name=name, value="true"), " ", text) for name, text in SWITCHES]
    return _page(
        "Подтверждение оплаты / Confirm payment",
        tags.h1("Оплата / Payment"),
        tags.div(class_="card")(
            tags.div(class_="sum")(_money(form.sum)),
            tags.table(
                tags.tr(tags.th("Получатель / Receiver"), tags.td(form.receiver)),
                tags.tr(tags.th("Способ оплаты / Payment type"), tags.td(PAYMENT_TYPE_NAMES[form.payment_type])),
                tags.tr(tags.th("Метка / Label"), tags.td(form.label or "—")),
                tags.tr(tags.th("Зачислится получателю / Credited to receiver"), tags.td(_money(credited))),
                tags.tr(tags.th("Возврат / Return to"), tags.td(form.success_url or "—")),
            ),
        ),
        tags.form(method="post", action=action)(
            *hidden,
            tags.fieldset(tags.legend("Тестовые переключатели / Test switches"), *switches),
            tags.button(type="submit", name="action", value="pay", class_="pay")("Оплатить / Pay"),
            tags.button(type="submit", name="action", value="decline", class_="decline")("Отказаться / Decline"),
        ),
        tags.p(class_="muted")("Уведомление придёт на адрес уведомлений магазина, как от ЮMoney. "
                               "The notification is sent to the shop's notification URL, as YooMoney would."),
    )


def declined_page(success_url: str) -> Tag:
    back = tags.p(tags.a(href=success_url)("Вернуться / Go back")) if success_url else ""
    return _page(
        "Платёж отменён / Payment declined",
        tags.h1("Платёж отменён / Payment declined"),
        tags.div(class_="card")(tags.p("Деньги не списаны, уведомление не отправлено. "
                                       "No money moved and no notification was sent."), back),
    )


def paid_page(operation_id: str, delivered: bool) -> Tag:
    status = ("Уведомление доставлено / Notification delivered" if delivered
              else "Уведомление не доставлено, будет повтор / Notification not delivered yet, will retry")
    return _page(
        "Оплачено / Paid",
        tags.h1("Оплачено / Paid"),
        tags.div(class_="card")(tags.p("Операция / Operation: ", tags.code(operation_id)), tags.p(status)),
    )


def error_page(message: str) -> Tag:
    return _page(
        "Ошибка / Error",
        tags.h1("Ошибка формы / Form error"),
        tags.div(class_="card")(tags.p(class_="error")(message)),
    )


def index_page(operations, deliveries) -> Tag:
    by_operation = {d.operation_id: d for d in deliveries}
    rows = []
    for op in operations:
        delivery = by_operation.get(op.operation_id)
        attempts = ", ".join(
            f"{'+' if a.index else ''}{int(a.at - delivery.started)}s: " + "/".join(str(s) if s else "failed" for s in a.statuses)
            for a in delivery.attempts) if delivery else "—"
        rows.append(tags.tr(tags.td(op.operation_id), tags.td(_money(op.withdraw_amount)), tags.td(_money(op.amount)),
                            tags.td(op.label or "—"), tags.td(op.status), tags.td(attempts)))
    return _page(
        "Операции / Operations",
        tags.h1("Операции песочницы / Sandbox operations"),
        tags.div(class_="card")(
            tags.table(tags.tr(tags.th("ID"), tags.th("Сумма / Sum"), tags.th("Зачислено / Credited"),
                               tags.th("Метка / Label"), tags.th("Статус / Status"), tags.th("Доставка / Delivery")),
                       *rows) if rows else tags.p("Пока пусто / Nothing yet"),
        ),
    )
