"""Which ymds.toml the admin command reads when ``--config`` is not given.

The order, documented in docs/OPERATIONS.md and the ``--config`` help line: ``$YMDS_CONFIG``,
then ``/etc/ymds/ymds.toml``, then ``./ymds.toml``.  The command says which one it used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

SYSTEM_CONFIG = "/etc/ymds/ymds.toml"
LOCAL_CONFIG = "ymds.toml"


def find_config(explicit: str | None, env: Mapping[str, str], cwd: str,
                exists: Callable[[str], bool] = os.path.isfile) -> tuple[str | None, str]:
    """``(path, where it came from)``; ``(None, the places looked at)`` when there is none.

    ``--config`` and ``$YMDS_CONFIG`` are taken as given (a missing file is then the
    configuration error that names it); the two default places are used only if they exist.
    """
    if explicit:
        return explicit, "--config"
    if env.get("YMDS_CONFIG"):
        return env["YMDS_CONFIG"], "$YMDS_CONFIG"
    if exists(SYSTEM_CONFIG):
        return SYSTEM_CONFIG, "the system default"
    local = os.path.join(cwd, LOCAL_CONFIG)
    if exists(local):
        return local, "the current directory"
    return None, f"$YMDS_CONFIG, {SYSTEM_CONFIG}, ./{LOCAL_CONFIG}"
