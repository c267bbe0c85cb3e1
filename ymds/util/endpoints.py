"""Endpoint description strings (``type:arg:key=value``) split the way Twisted splits them."""

from __future__ import annotations


def parse_endpoint_description(description: str) -> tuple[list[str], dict[str, str]]:
    """Split ``description`` into positional and keyword parameters, as serverFromString does.

    Parameters are separated by ``:``; the first ``=`` in one makes it a keyword (later ``=``
    belong to the value); a backslash makes the next character literal.  For example
    ``tls:443:dir=/etc/le\\:x`` gives ``(["tls", "443"], {"dir": "/etc/le:x"})``.
    Raises ValueError for a description ending in a lone backslash.
    """
    args: list[str] = []
    kwargs: dict[str, str] = {}
    parts: list[str] = []  # the current parameter: [value] or [key, value]
    current: list[str] = []
    chars = iter(description)
    for char in chars:
        if char == ":":
            parts.append("".join(current))
            _add(parts, args, kwargs)
            parts, current = [], []
        elif char == "=" and not parts:
            parts.append("".join(current))
            current = []
        elif char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise ValueError("an endpoint description cannot end with a backslash")
            current.append(escaped)
        else:
            current.append(char)
    parts.append("".join(current))
    _add(parts, args, kwargs)
    return args, kwargs


def _add(parts: list[str], args: list[str], kwargs: dict[str, str]) -> None:
    if len(parts) == 1:
        args.append(parts[0])
    else:
        kwargs[parts[0]] = parts[1]
