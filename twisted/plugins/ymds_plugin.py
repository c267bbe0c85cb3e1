"""twistd plugin: ``twistd ymds``, and the ``tls:`` server endpoint.

No __init__.py in twisted/plugins on purpose: it is Twisted's plugin namespace.
"""
from twisted.application.service import ServiceMaker

from ymds.tlsendpoint import TLSDirectoryServerParser

ymds = ServiceMaker(
    "ymds",
    "ymds.tap",
    "YooMoney payments for a Telegram bot or channel (web, billing, bot roles)",
    "ymds",
)

tlsDirectoryServer = TLSDirectoryServerParser()
