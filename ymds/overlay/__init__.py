"""Stream overlay for creators (issue 17): donation alerts and the goal bar in OBS.

- :mod:`ymds.overlay.events`: the event types and their stream / SSE forms;
- :mod:`ymds.overlay.stream`: the capped Redis stream (billing writes, each web node tails);
- :mod:`ymds.overlay.sse`: ``GET /overlay/<token>/events`` (Server-Sent Events);
- :mod:`ymds.overlay.pages`: the alerts and goal browser-source pages;
- :mod:`ymds.overlay.resource`: the ``/overlay`` resource tying them together.
"""
