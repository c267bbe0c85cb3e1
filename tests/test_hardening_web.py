"""Issue 14, web: the error page's language link never leaves the site."""
import re

from twisted.internet import defer
from twisted.trial import unittest

from tests.test_web_support import LiveSite
from ymds.web.render import message_page, switch_href


def language_link(body: bytes) -> str:
    found = re.search(rb'href="([^"]*lang=(?:en|ru))"', body)
    assert found, body[:400]
    return found.group(1).decode().replace("&amp;", "&")


class LanguageLinkTests(unittest.TestCase):
    def test_protocol_relative_paths_stay_on_site(self):
        for path in ("//evil.example/x", "///evil.example", "/\\evil.example/x", "\\\\evil.example",
                     "//evil.example", "/\\/evil.example"):
            href = switch_href(path, "ru")
            self.assertTrue(href.startswith("/") and not href.startswith("//"), (path, href))
            self.assertNotIn("\\", href)

    def test_ordinary_paths_unchanged(self):
        self.assertEqual(switch_href("/pay/abc", "ru"), "/pay/abc?lang=en")
        self.assertEqual(switch_href("/", "en"), "/?lang=ru")

    def test_message_page_link(self):
        href = language_link(message_page("ru", 404, "//evil.example/x"))
        self.assertEqual(href, "/evil.example/x?lang=en")

    @defer.inlineCallbacks
    def test_error_page_over_http(self):
        live = LiveSite(self)
        for path in ("//evil.example/x", "/%2F%2Fevil.example", "/\\evil.example"):
            response, body = yield defer.Deferred.fromCoroutine(live.client.request("GET", path))
            self.assertEqual(response.code, 404, path)
            href = language_link(body)
            self.assertFalse(href.startswith("//"), (path, href))
            self.assertNotIn("\\", href)
