"""Error answers and parameter parsing shared by the fake Bot API's modules."""
from __future__ import annotations


class _Answer(Exception):
    """An error answer: ``raise _Answer(400, "Bad Request: ...")``."""

    def __init__(self, code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def json(self) -> dict:
        body: dict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _int_param(params: dict, name: str, required: bool = False, default=None):
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise _Answer(400, f"Bad Request: {name} is empty" if name != "chat_id" else "Bad Request: chat_id is empty")
        return default
    if isinstance(value, bool):
        raise _Answer(400, f"Bad Request: invalid {name} specified")
    try:
        return int(value)
    except (TypeError, ValueError):
        if name == "chat_id":
            raise _Answer(400, "Bad Request: chat not found") from None
        raise _Answer(400, f"Bad Request: invalid {name} specified") from None


def _bool_param(params: dict, name: str, default: bool = False) -> bool:
    """Telegram accepts JSON booleans and the strings true/false/1/0 of form fields."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise _Answer(400, f"Bad Request: invalid {name} specified")
