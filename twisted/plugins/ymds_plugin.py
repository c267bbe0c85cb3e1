"""twistd plugin: ``twistd ymds``.

No __init__.py in twisted/plugins on purpose: it is Twisted's plugin namespace.
"""
from twisted.application.service import ServiceMaker

ymds = ServiceMaker(
    "ymds",
    "ymds.tap",
    "YooMoney payments for a Telegram bot or channel (web, billing, bot roles)",
    "ymds",
)
