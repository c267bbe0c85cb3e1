"""The fake Bot API as its own process, with time-window faults for the end-to-end suite.

``python -m tests.support.fake_telegram_process --port N --channel C`` runs
tests.fakes.fake_telegram's FakeBotAPI with its JSON control API, plus:

    POST /_control/fault_window {"method": "*", "codes": [429, 500], "seconds": 60, "retry_after": 1}
        every call of ``method`` ("*": any) answers the codes in turn until ``seconds`` pass
        (on the fake's clock); a call answered with a fault changes nothing (no message kept)
    POST /_control/fault_window {"seconds": 0}     ends the window now
    GET  /_control/window -> {"active": bool, "answered": {"429": n, "500": n}}

Prints {"port": N} on stdout once listening.
"""
from __future__ import annotations

import itertools
import json
import sys

from twisted.web import resource

from tests.fakes.fake_telegram import ControlResource, FakeBotAPI, make_site

_DESCRIPTIONS = {429: "Too Many Requests: retry after {retry_after}", 500: "Internal Server Error",
                 502: "Bad Gateway", 503: "Service Unavailable"}


class WindowFakeBotAPI(FakeBotAPI):
    def __init__(self, clock, **kw):
        super().__init__(clock, **kw)
        self.window_until = 0.0
        self.window_method = "*"
        self.window_codes = itertools.cycle([500])
        self.window_retry_after = 1
        self.window_answered: dict[str, int] = {}

    def window_active(self) -> bool:
        return self.clock.seconds() < self.window_until

    def handle(self, token: str, method: str, params: dict):
        if token == self.token and self.window_active() and self.window_method in ("*", method):
            code = next(self.window_codes)
            self.window_answered[str(code)] = self.window_answered.get(str(code), 0) + 1
            self.errors_answered.append((method, code))
            body = {"ok": False, "error_code": code,
                    "description": _DESCRIPTIONS.get(code, "test fault").format(retry_after=self.window_retry_after)}
            if code == 429:
                body["parameters"] = {"retry_after": self.window_retry_after}
            return code, body
        return super().handle(token, method, params)

    def getChild(self, path: bytes, request):
        if path == b"_control" and request.postpath[:1] in ([b"fault_window"], [b"window"]):
            return _WindowControl(self)
        return super().getChild(path, request)


class _WindowControl(resource.Resource):
    isLeaf = True

    def __init__(self, fake: WindowFakeBotAPI):
        super().__init__()
        self.fake = fake

    def render_GET(self, request):
        return ControlResource._json(request, {"active": self.fake.window_active(),
                                               "answered": self.fake.window_answered})

    def render_POST(self, request):
        fake = self.fake
        try:
            body = json.loads(request.content.read() or b"{}")
            seconds = float(body.get("seconds", 60))
            fake.window_method = str(body.get("method", "*"))
            fake.window_codes = itertools.cycle([int(c) for c in body.get("codes", [429, 500])])
            fake.window_retry_after = int(body.get("retry_after", 1))
            fake.window_until = fake.clock.seconds() + seconds if seconds > 0 else 0.0
        except (ValueError, TypeError) as e:
            request.setResponseCode(400)
            return ControlResource._json(request, {"error": f"bad control request: {e}"})
        return ControlResource._json(request, {"ok": True, "until": fake.window_until})


def main(argv=None) -> None:
    import argparse

    from twisted.internet import reactor

    from tests.fakes.fake_telegram import DEFAULT_TOKEN

    parser = argparse.ArgumentParser(description="fake Telegram Bot API with fault windows")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--channel", type=int, action="append", default=[])
    parser.add_argument("--no-limits", action="store_true")
    args = parser.parse_args(argv)
    fake = WindowFakeBotAPI(reactor, token=args.token, enforce_limits=not args.no_limits, channels=args.channel,
                            control=True)
    port = reactor.listenTCP(args.port, make_site(fake), interface="127.0.0.1")
    sys.stdout.write(json.dumps({"port": port.getHost().port}) + "\n")
    sys.stdout.flush()
    reactor.run()


if __name__ == "__main__":
    main()
