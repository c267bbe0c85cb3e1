"""Checking a broadcast's text before anything is sent: Telegram refuses a message whose
HTML it cannot parse, and a broadcast of such a text would fail for every recipient.

The rules are Telegram's (Bot API, "HTML style"): only its tags (b, strong, i, em, u, ins,
s, strike, del, a with href, code, pre, span, tg-spoiler, tg-emoji, blockquote), every tag
closed in order, and ``<``, ``>``, ``&`` outside tags written as ``&lt;``, ``&gt;``, ``&amp;``.
"""

from __future__ import annotations

import re

MAX_TEXT = 4096
_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span", "tg-spoiler",
         "tg-emoji", "blockquote"}
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});")
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[A-Za-z-]+\s*=\s*(?:\"[^\"<>]*\"|'[^'<>]*'))*)\s*>")


def _line_col(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    return f"line {line}, character {index - (text.rfind(chr(10), 0, index) + 1) + 1}"


def html_problem(text: str) -> str | None:
    """None when Telegram will take ``text`` as HTML, else what is wrong and where, in one
    phrase ("an unknown tag <div> at line 2, character 5")."""
    if not text.strip():
        return "it is empty"
    if len(text) > MAX_TEXT:
        return f"it has {len(text)} characters, Telegram takes at most {MAX_TEXT}"
    open_tags: list[tuple[str, int]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "&":
            m = _ENTITY.match(text, i)
            if m is None:
                return f"a bare & at {_line_col(text, i)} (write &amp;)"
            i = m.end()
        elif ch == "<":
            m = _TAG.match(text, i)
            if m is None:
                return f"a bare < at {_line_col(text, i)} (write &lt;)"
            closing, name, attrs = m.group(1), m.group(2).lower(), m.group(3)
            if name not in _TAGS:
                return f"a tag Telegram does not know, <{name}>, at {_line_col(text, i)}"
            if closing:
                if not open_tags or open_tags[-1][0] != name:
                    return f"</{name}> at {_line_col(text, i)} closes no open <{name}>"
                open_tags.pop()
            else:
                if name == "a" and "href" not in attrs.lower():
                    return f"<a> without href at {_line_col(text, i)}"
                open_tags.append((name, i))
            i = m.end()
        elif ch == ">":
            return f"a bare > at {_line_col(text, i)} (write &gt;)"
        else:
            i += 1
    if open_tags:
        name, at = open_tags[-1]
        return f"<{name}> at {_line_col(text, at)} is never closed"
    return None
