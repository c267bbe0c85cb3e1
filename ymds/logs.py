"""Log observers for ``--log-format``: twistd's text, or one JSON object per line."""
import sys

from twisted.logger import FilteringLogObserver, LogLevel, LogLevelFilterPredicate, jsonFileLogObserver


def json_observer():
    """An ILogObserver writing one JSON object per line to stdout (for log shippers)."""
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    return FilteringLogObserver(jsonFileLogObserver(sys.stdout, recordSeparator=""), [predicate])
