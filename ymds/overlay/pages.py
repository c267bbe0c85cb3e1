"""The two OBS browser-source pages: ``/overlay/<token>/alerts`` and ``/overlay/<token>/goal``.

Both are static shells (transparent, no inline script: CSP stays 'self'); their content
comes from the events stream through /static/overlay.js.  Settings reach the script as
``data-*`` attributes of <body>.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from twisted.web.iweb import ITemplateLoader
from twisted.web.template import Element, XMLFile, renderer

from ymds.web.render import TEMPLATES, flatten

TEXTS = {
    "ru": {"alerts_title": "Оповещения о донатах", "goal_title": "Цель сбора", "anonymous": "Аноним", "of": "из"},
    "en": {"alerts_title": "Donation alerts", "goal_title": "Donation goal", "anonymous": "Anonymous", "of": "of"},
}


@dataclass(frozen=True)
class OverlaySettings:
    """How the overlay pages behave: ``alert_seconds`` each alert stays on screen; ``sound``
    whether ``/overlay/<token>/sound`` is played with each alert; ``lang`` ru or en."""

    alert_seconds: float = 8.0
    sound: bool = False
    lang: str = "ru"


class _OverlayPage(Element):
    def __init__(self, slots: dict[str, str]):
        super().__init__()
        self.slots = slots

    @renderer
    def page(self, request, tag):
        return tag.fillSlots(**self.slots)


class _AlertsPage(_OverlayPage):
    loader = cast(ITemplateLoader, XMLFile(TEMPLATES.child("overlay_alerts.xml")))


class _GoalPage(_OverlayPage):
    loader = cast(ITemplateLoader, XMLFile(TEMPLATES.child("overlay_goal.xml")))


def _texts(lang: str) -> dict[str, str]:
    return TEXTS.get(lang, TEXTS["ru"])


def alerts_page(token: str, settings: OverlaySettings) -> bytes:
    """The alerts page for ``token`` (already checked)."""
    t = _texts(settings.lang)
    base = f"/overlay/{token}"
    return flatten(_AlertsPage({
        "lang": settings.lang if settings.lang in TEXTS else "ru", "title": t["alerts_title"],
        "events_url": f"{base}/events", "seconds": f"{settings.alert_seconds:g}",
        "sound_url": f"{base}/sound" if settings.sound else "", "anonymous": t["anonymous"]}))


def goal_page(token: str, settings: OverlaySettings) -> bytes:
    """The live goal bar page for ``token`` (already checked)."""
    t = _texts(settings.lang)
    return flatten(_GoalPage({
        "lang": settings.lang if settings.lang in TEXTS else "ru", "title": t["goal_title"],
        "events_url": f"/overlay/{token}/events", "of": t["of"]}))
