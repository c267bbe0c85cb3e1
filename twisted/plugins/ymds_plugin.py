"""twistd plugin: ``twistd ymds`` (no __init__.py in twisted/plugins on purpose)."""
from twisted.application.service import ServiceMaker

ymds = ServiceMaker(
    "ymds",
    "ymds.tap",
    "YooMoney payments for a Telegram bot or channel (web, billing, bot roles)",
    "ymds",
)
