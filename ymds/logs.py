"""Log observers for ``--log-format``: twistd's text, or one JSON object per line.

The JSON form is for log shippers: ``time`` (ISO 8601, UTC), ``level``, ``namespace``,
``message`` (the formatted text) and every structured field of the event whose value is a
plain JSON value, so ``operation_id=...`` stays a field you can filter on.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

from twisted.logger import FilteringLogObserver, LogLevel, LogLevelFilterPredicate, formatEvent
from zope.interface import implementer
from twisted.logger import ILogObserver

_PLAIN = (str, int, float, bool, type(None))


def event_to_json(event: dict) -> str:
    record = {
        "time": datetime.fromtimestamp(event.get("log_time", 0), timezone.utc).isoformat(timespec="milliseconds"),
        "level": getattr(event.get("log_level"), "name", "info"),
        "namespace": event.get("log_namespace", "-"),
        "message": formatEvent(event),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["error"] = failure.getErrorMessage()
        record["traceback"] = failure.getTraceback()
    for key, value in event.items():
        if not key.startswith("log_") and key not in record and isinstance(value, _PLAIN):
            record[key] = value
    return json.dumps(record, ensure_ascii=False, default=str)


@implementer(ILogObserver)
class JSONLinesObserver:
    def __init__(self, stream):
        self._stream = stream

    def __call__(self, event: dict) -> None:
        self._stream.write(event_to_json(event) + "\n")
        self._stream.flush()


def json_observer():
    """The factory twistd's ``--logger`` takes: info and above, one JSON object per line."""
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    return FilteringLogObserver(JSONLinesObserver(sys.stdout), [predicate])
