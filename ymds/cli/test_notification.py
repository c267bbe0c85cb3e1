"""``ymds test-notification``: send a signed test notification to our own notification URL,
like the test button on YooMoney's settings page, and explain the answer.

    ymds test-notification [--url URL] [--cafile PEM] [--insecure]
"""

from __future__ import annotations

import argparse

from ymds.cli.command import Command
from ymds.cli.context import Context
from ymds.cli.errors import EXIT_ATTENTION, EXIT_OK, unreachable, usage
from ymds.cli.output import printable
from ymds.config import ConfigError


async def cmd_test_notification(ctx: Context) -> int:
    from ymds.yoomoney.test_notification import SCHEME_FOR_POLICY, send_test_notification
    a = ctx.args
    secret = ctx.config.yoomoney.notification_secret
    if not secret:
        raise usage(str(ConfigError("yoomoney.notification_secret", "is not set",
                                    "copy the secret from YooMoney's HTTP notifications page into "
                                    "yoomoney.notification_secret_file")))
    url = a.url or ctx.config.server.public_url.rstrip("/") + "/yoomoney/notify"
    from ymds.cli.context import read_cafile
    from ymds.sandbox.trust import TLS_HINT, is_tls_failure, local_tls_options
    trust = read_cafile(a.cafile) if a.cafile else None
    # our own demo/dry-run node: its self-signed certificate is trusted like the billing role does
    insecure = a.insecure or bool(local_tls_options(ctx.config, url))
    scheme = SCHEME_FOR_POLICY[ctx.config.yoomoney.signature]
    try:
        status, body = await send_test_notification(ctx.reactor, url, secret, scheme, trust_pem=trust,
                                                    insecure_local_tls=insecure, timeout=a.timeout)
    except Exception as e:
        from twisted.internet.defer import TimeoutError as DeferredTimeout
        why = f"no answer within {a.timeout:g}s" if isinstance(e, DeferredTimeout) else printable(_reason(e), 200)
        hint = f"; {TLS_HINT}" if is_tls_failure(why) else ""
        raise unreachable(f"test notification: cannot reach {url}: {why}{hint}") from None
    answer = printable(body.decode("utf-8", "replace").strip() or "(empty)", 80)
    ctx.say(f"POST {url}: HTTP {status} {answer}")
    if status == 200:
        ctx.say("ok: the server verified the signed test notification and changed nothing "
                "(its log shows: notification test 200 operation_id=test-notification)")
        return EXIT_OK
    hints = {
        403: "the server refused the signature: yoomoney.notification_secret here differs from the server's, "
             "or its yoomoney.signature excludes the scheme sent",
        400: "the server could not parse the notification: is this URL ymds's /yoomoney/notify?",
        404: "nothing at this URL: the notification URL is <public_url>/yoomoney/notify",
        503: "the server could not reach Redis: YooMoney would retry after 10 minutes and 1 hour",
        429: "the server rate-limits this address after too many refusals: wait a minute",
    }
    ctx.note("ymds: " + hints.get(status, "unexpected answer: YooMoney counts only 200 as delivered"))
    return EXIT_ATTENTION


def _reason(e: Exception) -> str:
    """The first reason of a ResponseFailed-like error (``reasons``: Failures), else its text."""
    reasons = getattr(e, "reasons", None)
    if reasons:
        return str(reasons[0].getErrorMessage())
    return str(e) or type(e).__name__


def _test_notification_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="default: <server.public_url>/yoomoney/notify")
    p.add_argument("--cafile", help="trust this PEM certificate (a self-signed server)")
    p.add_argument("--insecure", action="store_true", help="do not check the certificate of localhost/127.0.0.1")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer (default 30)")


COMMANDS = (
    Command("test-notification", "send a signed test notification, like YooMoney's test button",
            _test_notification_arguments, cmd_test_notification),
)
