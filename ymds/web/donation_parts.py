"""Donation page parts for creators (issue 17): preset amounts, "show my name publicly",
the goal bar and the supporters feed.

Render functions take plain data and return Elements to place inside the landing page's
donation form or next to it (see :func:`ymds.web.render.page`); /static/donate.css styles
them.  Preset buttons are submit buttons (``name="preset"``) of the donation form, so a
preset pays in one tap without JavaScript; the form handler takes ``preset`` instead of
``amount`` when it is one of the configured presets.  Only public donors are passed in;
an entry without a name is left out all the same, so a private donor cannot appear.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Sequence, cast

from twisted.web.iweb import ITemplateLoader
from twisted.web.template import Element, XMLFile, renderer

from ymds.overlay.events import rubles
from ymds.web.render import TEMPLATES

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "presets_label": "Выберите сумму",
        "presets_or_other": "или введите свою сумму ниже",
        "public_label": "Показать моё имя и сообщение публично",
        "public_hint": "Иначе их увидит только автор; в ленте и на стриме вы будете «Аноним».",
        "goal_heading": "Цель",
        "goal_of": "из",
        "goal_until": "Сбор до {date}",
        "supporters_heading": "Поддержали",
        "supporters_latest": "Последние донаты",
        "supporters_top": "Топ месяца",
        "supporters_empty": "Пока никто не поддержал публично — будьте первым!",
    },
    "en": {
        "presets_label": "Choose an amount",
        "presets_or_other": "or enter your own amount below",
        "public_label": "Show my name and message publicly",
        "public_hint": "Otherwise only the creator sees them; in the feed and on stream you are \"Anonymous\".",
        "goal_heading": "Goal",
        "goal_of": "of",
        "goal_until": "Until {date}",
        "supporters_heading": "Supporters",
        "supporters_latest": "Latest donations",
        "supporters_top": "Top this month",
        "supporters_empty": "No public supporters yet: be the first!",
    },
}


def _t(lang: str) -> dict[str, str]:
    return TEXTS.get(lang, TEXTS["ru"])


def _loader(name: str) -> ITemplateLoader:
    return cast(ITemplateLoader, XMLFile(TEMPLATES.child(name)))


def day_text(value: str) -> str:
    """An ISO date or moment as "31.12.2026"; the text itself if it is not one."""
    try:
        return date.fromisoformat(value[:10]).strftime("%d.%m.%Y")
    except ValueError:
        return value


def moment_text(value: str) -> str:
    """An ISO moment as "29.11.2026 20:00 UTC" (the feed shows UTC, like the pay page)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.strftime("%d.%m.%Y %H:%M") + " UTC"


@dataclass(frozen=True)
class GoalProgress:
    """The goal as configured (``goal``, ``goal_title``, ``goal_until``) and what is raised."""

    raised: Decimal
    goal: Decimal
    title: str
    until: str | None = None

    @property
    def percent(self) -> int:
        if self.goal <= 0:
            return 100
        return int(min(Decimal(100), self.raised * 100 / self.goal))


@dataclass(frozen=True)
class PublicDonation:
    name: str | None
    amount: Decimal
    message: str | None
    paid_at: str


@dataclass(frozen=True)
class TopSupporter:
    name: str | None
    total: Decimal


class PresetButtons(Element):
    loader = _loader("donate_presets.xml")

    def __init__(self, lang: str, presets: Sequence[Decimal]):
        super().__init__()
        self.lang = lang
        self.amounts = list(presets)

    @renderer
    def presets(self, request, tag):
        if not self.amounts:
            return ""
        t = _t(self.lang)
        return tag.fillSlots(label=t["presets_label"], or_other=t["presets_or_other"])

    @renderer
    def preset(self, request, tag):
        for amount in self.amounts:
            value = f"{Decimal(amount).quantize(Decimal('0.01'))}"
            yield tag.clone().fillSlots(value=value, text=rubles(Decimal(amount)))


class PublicChoice(Element):
    loader = _loader("donate_public.xml")

    def __init__(self, lang: str, checked: bool = False):
        super().__init__()
        self.lang = lang
        self.checked = checked

    @renderer
    def choice(self, request, tag):
        t = _t(self.lang)
        return tag.fillSlots(label=t["public_label"], hint=t["public_hint"])

    @renderer
    def checkbox(self, request, tag):
        return tag(checked="checked") if self.checked else tag


class GoalBar(Element):
    loader = _loader("donate_goal.xml")

    def __init__(self, lang: str, progress: GoalProgress):
        super().__init__()
        self.lang = lang
        self.progress = progress

    @renderer
    def goal(self, request, tag):
        t, p = _t(self.lang), self.progress
        return tag.fillSlots(heading=t["goal_heading"], title=p.title, percent=str(p.percent), raised=rubles(p.raised),
                             of=t["goal_of"], goal=rubles(p.goal))

    @renderer
    def until(self, request, tag):
        if not self.progress.until:
            return ""
        return tag.fillSlots(until_text=_t(self.lang)["goal_until"].format(date=day_text(self.progress.until)))


class SupportersFeed(Element):
    loader = _loader("donate_supporters.xml")

    def __init__(self, lang: str, latest: Sequence[PublicDonation], top: Sequence[TopSupporter]):
        super().__init__()
        self.lang = lang
        self.latest_items = [d for d in latest if d.name]
        self.top_items = [s for s in top if s.name]

    @renderer
    def feed(self, request, tag):
        t = _t(self.lang)
        return tag.fillSlots(heading=t["supporters_heading"], latest_heading=t["supporters_latest"],
                             top_heading=t["supporters_top"], empty_text=t["supporters_empty"])

    @renderer
    def latest_block(self, request, tag):
        return tag if self.latest_items else ""

    @renderer
    def top_block(self, request, tag):
        return tag if self.top_items else ""

    @renderer
    def empty(self, request, tag):
        return "" if self.latest_items or self.top_items else tag

    @renderer
    def latest(self, request, tag):
        for d in self.latest_items:
            yield tag.clone().fillSlots(name=d.name or "", amount=rubles(d.amount), paid_at=d.paid_at,
                                        paid_text=moment_text(d.paid_at), message=d.message or "")

    @renderer
    def top(self, request, tag):
        for s in self.top_items:
            yield tag.clone().fillSlots(name=s.name or "", total=rubles(s.total))
