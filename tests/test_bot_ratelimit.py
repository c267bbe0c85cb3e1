"""The rate limiter under a fake clock: Telegram's limits hold and nobody starves."""
from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial import unittest

from ymds.bot.ratelimit import RateLimiter


def run_clock(clock: Clock, until: float) -> None:
    """Advance to each scheduled call in turn (exact times, no stepping error)."""
    while True:
        calls = [c.getTime() for c in clock.getDelayedCalls()]
        if not calls or min(calls) > until:
            clock.advance(max(0.0, until - clock.seconds()))
            return
        clock.advance(max(0.0, min(calls) - clock.seconds()))


def max_in_window(times: list[float], window: float) -> int:
    """The most events in any half-open window of ``window`` seconds."""
    times = sorted(times)
    best = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window + 1e-9:
            j += 1
        best = max(best, i - j + 1)
    return best


class LimiterTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.limiter = RateLimiter(self.clock)
        self.fired: list[tuple[object, float]] = []

    def want(self, chat):
        d = Deferred.fromCoroutine(self.limiter.acquire(chat))
        d.addCallback(lambda _: self.fired.append((chat, self.clock.seconds())))
        return d

    def times(self, chat=None):
        return [t for (c, t) in self.fired if chat is None or c == chat]

    def test_overall_30_per_second_evenly(self):
        for chat in range(1, 301):
            self.want(chat)
        run_clock(self.clock, 1000 + 20)
        self.assertEqual(len(self.fired), 300)
        self.assertLessEqual(max_in_window(self.times(), 1.0), 30)
        # Sustained exactly 30/s: the 300th send goes at 299/30 s.
        self.assertAlmostEqual(self.fired[-1][1] - 1000, 299 / 30, places=6)
        gaps = [b - a for a, b in zip(self.times(), self.times()[1:])]
        self.assertAlmostEqual(min(gaps), 1 / 30, places=6)

    def test_one_per_second_per_chat(self):
        for _ in range(5):
            self.want(7)
        run_clock(self.clock, 1000 + 10)
        self.assertEqual([round(t - 1000, 6) for t in self.times(7)], [0, 1, 2, 3, 4])

    def test_twenty_per_minute_per_group(self):
        for _ in range(45):
            self.want(-100500)
        run_clock(self.clock, 1000 + 200)
        times = [t - 1000 for t in self.times(-100500)]
        self.assertEqual(len(times), 45)
        self.assertLessEqual(max_in_window(times, 60.0), 20)
        self.assertLessEqual(max_in_window(times, 1.0), 1)
        self.assertEqual([round(t, 6) for t in times[:21]], [float(i) for i in range(20)] + [60.0])
        self.assertAlmostEqual(times[40], 120.0)

    def test_a_busy_chat_does_not_hold_up_others(self):
        for _ in range(5):
            self.want(1)
        self.want(2)
        self.want(-3)
        run_clock(self.clock, 1000 + 0.2)
        self.assertEqual([c for c, _ in self.fired], [1, 2, -3])

    def test_first_come_first_served_among_ready_chats(self):
        for chat in (10, 11, 12, 13):
            self.want(chat)
        run_clock(self.clock, 1000 + 1)
        self.assertEqual([c for c, _ in self.fired], [10, 11, 12, 13])

    def test_pause_stops_every_slot(self):
        self.want(1)
        self.limiter.pause(5)
        self.want(2)
        self.want(None)
        run_clock(self.clock, 1000 + 4.99)
        self.assertEqual([c for c, _ in self.fired], [1])
        run_clock(self.clock, 1000 + 6)
        self.assertEqual([c for c, _ in self.fired], [1, 2, None])
        self.assertAlmostEqual(self.fired[1][1], 1005.0)
        self.assertAlmostEqual(self.fired[2][1], 1005.0 + 1 / 30)

    def test_late_timer_catches_up_but_boundedly(self):
        for chat in range(1, 101):
            self.want(chat)
        # The process stalls for half a second: the timer fires late once.
        self.clock.advance(0.5)
        burst = len(self.fired)
        self.assertLessEqual(burst, 1 + int(0.1 * 30) + 1)
        run_clock(self.clock, 1000 + 10)
        self.assertEqual(len(self.fired), 100)

    def test_after_idle_no_burst(self):
        self.want(1)
        run_clock(self.clock, 1000 + 30)
        for chat in range(2, 40):
            self.want(chat)
        run_clock(self.clock, 1000 + 60)
        later = [t for t in self.times() if t >= 1030]
        self.assertLessEqual(max_in_window(later, 1.0), 30)
        self.assertAlmostEqual(later[1] - later[0], 1 / 30)

    def test_cancelled_waiter_leaves_no_trace(self):
        d = self.want(1)
        doomed = self.want(1)
        self.want(2)
        doomed.cancel()
        self.failureResultOf(doomed, CancelledError)
        run_clock(self.clock, 1000 + 5)
        self.assertEqual([c for c, _ in self.fired], [1, 2])
        self.successResultOf(d)
        self.assertEqual(self.limiter.waiting(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_memory_forgets_idle_chats(self):
        for chat in list(range(1, 501)) + [-1, -2]:
            self.want(chat)
        run_clock(self.clock, 1000 + 20)
        self.assertEqual(len(self.fired), 502)
        self.assertLessEqual(self.limiter.tracked_chats(), 60)
        run_clock(self.clock, 1000 + 100)
        self.want(9999)
        self.assertEqual(self.limiter.tracked_chats(), 1)

    def test_close_fails_waiters(self):
        self.want(1)
        pending = self.want(1)
        self.limiter.close()
        self.failureResultOf(pending, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
