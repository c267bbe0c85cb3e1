"""``twistd ymds --check`` / ``ymds check`` for the bot role: is the bot an administrator
with the rights it needs in every paid chat?  Blocking (the check runs before the reactor),
with a short timeout per request; one line per problem, Russian then English."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from ymds.billing.access_config import paid_chats
from ymds.bot.access.rights import RightsProblem, problems_of


def _call(api_url: str, token: str, method: str, params: dict[str, Any], timeout: float) -> Any:
    request = urllib.request.Request(f"{api_url.rstrip('/')}/bot{token}/{method}", data=json.dumps(params).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read())
        except ValueError:
            raise ConnectionError(f"HTTP {e.code}") from None
    if not isinstance(body, dict) or not body.get("ok"):
        raise LookupError(str(body.get("description") if isinstance(body, dict) else body)[:200])
    return body.get("result")


def probe_rights(config: Any, timeout: float = 5.0) -> tuple[bool, list[str]]:
    """(all well, lines): one line per paid chat problem; ([], True) when no chat is paid."""
    chats = paid_chats(config)
    token, api_url = config.telegram.token, config.telegram.api_url
    if not chats or not token:
        return True, []
    try:
        me = _call(api_url, token, "getMe", {}, timeout)
        bot_id = int(me["id"])
    except (OSError, LookupError, ValueError, KeyError, TypeError) as e:
        return False, [f"telegram: FAILED (getMe: {e})"]
    lines = []
    for chat_id in chats:
        try:
            member = _call(api_url, token, "getChatMember", {"chat_id": chat_id, "user_id": bot_id}, timeout)
        except LookupError as e:
            lines.append(RightsProblem(chat_id, "unseen", detail=str(e)).line())
            continue
        except (OSError, ValueError) as e:
            lines.append(RightsProblem(chat_id, "unchecked", detail=str(e) or type(e).__name__).line())
            continue
        lines.extend(p.line() for p in problems_of(chat_id, member))
    return not lines, lines
