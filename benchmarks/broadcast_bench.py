"""Broadcast throughput through real processes: messages/s, Telegram 429 answers and
duplicates, for ``ymds broadcast`` to N subscribers (the scenario of
tests/e2e/test_broadcast.py: a billing+bot node, the fake Bot API process enforcing
Telegram's limits of 30 messages/s overall, Redis, a SQLite ledger).

    .venv/bin/python -m benchmarks.broadcast_bench [--users 2000] [--kill-at 0.5 [--kill command|bot]]

Prints one JSON line of counts.  The ceiling is Telegram's 30/s: the figure to look at is
how close to it the broadcast runs, with no 429 and no duplicate.
"""
from __future__ import annotations

import argparse
import json
import sys

from twisted.internet import defer, reactor


class _Cleanups:
    """The part of a TestCase the e2e harness uses: cleanups, run last-added first."""

    def __init__(self) -> None:
        self.cleanups: list = []

    def addCleanup(self, fn, *args, **kw) -> None:
        self.cleanups.append((fn, args, kw))

    def run(self) -> None:
        while self.cleanups:
            fn, args, kw = self.cleanups.pop()
            try:
                fn(*args, **kw)
            except Exception as e:  # a cleanup failing must not hide the result
                sys.stderr.write(f"cleanup: {e}\n")


def main(argv: list[str] | None = None) -> None:
    from tests.e2e.test_broadcast import broadcast_scenario
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--kill-at", type=float, default=None, help="SIGKILL at this fraction, then start again")
    parser.add_argument("--kill", choices=("command", "bot"), default="command",
                        help="what is killed: the ymds broadcast command (run again) or the billing+bot node")
    args = parser.parse_args(argv)
    holder = _Cleanups()
    result: dict = {}

    async def go() -> None:
        counts = await broadcast_scenario(holder, args.users, args.kill_at, args.kill)
        result.update({k: (round(v, 2) if isinstance(v, float) else v) for k, v in counts.items()
                       if "output" not in k})

    def done(outcome):
        holder.run()
        reactor.stop()
        return outcome

    reactor.callWhenRunning(lambda: defer.Deferred.fromCoroutine(go()).addBoth(done).addErrback(
        lambda f: sys.stderr.write(f.getTraceback())))
    reactor.run()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
