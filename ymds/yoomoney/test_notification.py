"""The "test" button of YooMoney's notification settings page, from the command line.

YooMoney's test notification carries ``test_notification=true`` and operation_id
``test-notification``; a correct server acknowledges it with 200 and changes nothing.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal

from twisted.internet import defer
from twisted.internet.defer import Deferred

from ymds.yoomoney.http import make_http_client, read_body
from ymds.yoomoney.notification import encode_form
from ymds.yoomoney.signature import add_signatures

# The scheme the configured verification policy accepts: "auto" gets both, like YooMoney
# during the transition.
SCHEME_FOR_POLICY = {"auto": "both", "sign": "sign", "sha1": "sha1"}


def test_notification_fields(secret: str, scheme: str = "both", amount: Decimal = Decimal("100.00"),
                             label: str = "", now: float | None = None) -> dict[str, str]:
    """A signed test notification, as YooMoney's settings page sends it."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    fields = {
        "notification_type": "p2p-incoming",
        "operation_id": "test-notification",
        "amount": f"{amount:.2f}",
        "withdraw_amount": f"{amount:.2f}",
        "currency": "643",
        "datetime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sender": "41001000040",
        "codepro": "false",
        "label": label,
        "unaccepted": "false",
        "test_notification": "true",
    }
    return add_signatures(fields, secret, scheme)


async def send_test_notification(reactor, url: str, secret: str, scheme: str = "both", trust_pem: bytes | None = None,
                                 insecure_local_tls: bool = False, timeout: float = 30.0,
                                 now: float | None = None) -> tuple[int, bytes]:
    """POST a signed test notification to ``url``; return (HTTP status, body cut to 64 KiB).

    ``scheme`` is "sign", "sha1" or "both" (see SCHEME_FOR_POLICY for the configured policy).
    Raises on a connection failure or after ``timeout`` seconds (twisted.internet.defer.TimeoutError).
    """
    client, pool = make_http_client(reactor, trust_pem=trust_pem, insecure_local_tls=insecure_local_tls,
                                    connect_timeout=timeout, persistent=False)
    body = encode_form(test_notification_fields(secret, scheme, now=now if now is not None else reactor.seconds()))

    async def exchange() -> tuple[int, bytes]:
        response = await client.post(url, data=body, allow_redirects=False, unbuffered=True,
                                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        return response.code, await read_body(response, 65536)

    d = Deferred.fromCoroutine(exchange())
    timer = reactor.callLater(timeout, d.cancel)
    try:
        return await d
    except Exception:
        if timer.active():
            raise
        raise defer.TimeoutError(f"no answer from {url} within {timeout}s") from None
    finally:
        if timer.active():
            timer.cancel()
        await pool.closeCachedConnections()


__all__ = ["send_test_notification", "test_notification_fields", "SCHEME_FOR_POLICY"]
