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
from decimal import Decimal, InvalidOperation
from typing import Any, Hashable, Sequence, cast

from twisted.logger import Logger
from twisted.web.iweb import ITemplateLoader
from twisted.web.template import Element, XMLFile, renderer, tags

from ymds import localtime
from ymds.overlay.events import rubles
from ymds.web.render import TEMPLATES

log = Logger()

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


def day_text(value: str, zone: str = "UTC", lang: str = "ru") -> str:
    """An ISO date or moment as "31.12.2026" (ru) or "2026-12-31" (en), a moment's day in
    the owner's zone; the text itself if it is not one."""
    return localtime.day_text(value, zone, lang) or value


def moment_text(value: str, zone: str = "UTC", lang: str = "ru") -> str:
    """An ISO moment in the owner's zone, "29.11.2026 23:00 MSK (UTC+3)"; the text itself if
    it is not one."""
    return localtime.moment_text(value, zone, lang) or value


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

    def __init__(self, lang: str, progress: GoalProgress, zone: str = "UTC"):
        super().__init__()
        self.lang = lang
        self.progress = progress
        self.zone = zone  # [server] timezone

    @renderer
    def goal(self, request, tag):
        t, p = _t(self.lang), self.progress
        return tag.fillSlots(heading=t["goal_heading"], title=p.title, percent=str(p.percent), raised=rubles(p.raised),
                             of=t["goal_of"], goal=rubles(p.goal))

    @renderer
    def until(self, request, tag):
        if not self.progress.until:
            return ""
        until = day_text(self.progress.until, self.zone, self.lang)
        return tag.fillSlots(until_text=_t(self.lang)["goal_until"].format(date=until))


class SupportersFeed(Element):
    loader = _loader("donate_supporters.xml")

    def __init__(self, lang: str, latest: Sequence[PublicDonation], top: Sequence[TopSupporter], zone: str = "UTC"):
        super().__init__()
        self.lang = lang
        self.zone = zone  # [server] timezone
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
                                        paid_text=moment_text(d.paid_at, self.zone, self.lang), message=d.message or "")

    @renderer
    def top(self, request, tag):
        for s in self.top_items:
            yield tag.clone().fillSlots(name=s.name or "", total=rubles(s.total))


# --- wiring into the landing page and POST /donate (ymds.web.pages) --------------------------

DONATE_CSS = "/static/donate.css"


def board_progress(board: Any) -> GoalProgress | None:
    """The goal bar's data from billing's DonationBoard (None without a goal)."""
    if board is None or board.goal is None:
        return None
    return GoalProgress(Decimal(board.raised), Decimal(board.goal), board.goal_title, board.goal_until)


def board_feed(board: Any) -> tuple[list[PublicDonation], list[TopSupporter]]:
    """The supporters feed's data from billing's DonationBoard (public donors only)."""
    if board is None:
        return [], []
    latest = [PublicDonation(d.get("name"), Decimal(str(d.get("amount") or "0")), d.get("message"),
                             str(d.get("paid_at") or "")) for d in board.latest]
    top = [TopSupporter(t.get("name"), Decimal(str(t.get("total") or "0"))) for t in board.top]
    return latest, top


class CreatorParts:
    """The landing page's creator pieces for one web node: presets and the public choice from
    the config; the goal bar and supporters feed from billing's ``donation_board`` (kept
    ``ttl`` seconds, one fetch shared by concurrent pages; when billing does not answer
    they are left out, the form still works)."""

    def __init__(self, config: Any, queue: Any, clock: Any, ttl: float = 5.0):
        from ymds.billing.overlay_jobs import OverlayClient
        from ymds.web.cache import SharedLookup
        self.config = config
        self.client = OverlayClient(queue)
        self._board: SharedLookup[Any] = SharedLookup(clock, self._fetch, ttl=ttl, max_entries=1)

    async def _fetch(self, key: Hashable) -> Any:
        return await self.client.donation_board()

    @property
    def live(self) -> bool:
        """Whether the page shows something that changes with each donation."""
        d = self.config.donations
        return d.goal is not None or d.show_supporters

    @property
    def head(self) -> list[Any]:
        return [tags.link(rel="stylesheet", href=DONATE_CSS)]

    def static_parts(self, lang: str, public_checked: bool = False) -> dict[str, Element]:
        """The pieces that depend on the config only."""
        return {"presets": PresetButtons(lang, self.config.donations.presets),
                "public": PublicChoice(lang, public_checked)}

    async def parts(self, lang: str, public_checked: bool = False) -> dict[str, Element]:
        """Every piece; the goal and the feed as billing last reported them."""
        parts = self.static_parts(lang, public_checked)
        if not self.live:
            return parts
        try:
            board = await self._board.get("board")
        except Exception as e:
            log.warn("donation page: goal and supporters unavailable ({error})", error=type(e).__name__)
            return parts
        progress = board_progress(board)
        if progress is not None:
            parts["goal"] = GoalBar(lang, progress, self.config.server.timezone)
        if self.config.donations.show_supporters:
            parts["supporters"] = SupportersFeed(lang, *board_feed(board), zone=self.config.server.timezone)
        return parts

    def apply_preset(self, form: dict[str, str]) -> dict[str, str] | None:
        """The form with a preset button's amount as ``amount``; None when ``preset`` is not
        one of the configured amounts (a forged form: the caller answers 400)."""
        raw = form.get("preset")
        if raw is None:
            return form
        try:
            amount = Decimal(raw.strip()).quantize(Decimal("0.01"))
        except (InvalidOperation, ValueError):
            return None
        if amount not in self.config.donations.presets:
            return None
        return {**form, "amount": str(amount)}

    async def mark_public(self, label: str, name: str, form: dict[str, str]) -> None:
        """Record "show my name publicly" for a new donation; a failure leaves it private."""
        if form.get("public") != "1" or not name:
            return
        try:
            await self.client.donation_public(label, name)
        except Exception as e:
            log.warn("donation {label}: public choice not recorded, stays private ({error})", label=label,
                     error=type(e).__name__)
