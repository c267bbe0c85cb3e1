"""Broadcast benchmark of the bot role against the fake Bot API enforcing Telegram's limits.

    .venv/bin/python benchmarks/bot_bench.py --messages 10000 --kill-at 0.5

What it does, each part in its own process:

1. a private redis-server (appendonly, fsync always) and the fake Bot API
   (``python -m tests.fakes.fake_telegram``, real clock, limits enforced: 30/s overall
   with bursts of 30, 1/s per chat, 20/min per group, answering 429 when exceeded);
2. enqueues ``--messages`` ``bot.send`` jobs, one per distinct chat, each with its key;
3. starts a bot process (the bot queue worker of ``make_bot_service``, no polling);
4. after ``--kill-at`` of the messages were sent, kills it with SIGKILL and starts a new one
   (its unacknowledged jobs are reclaimed after the queue's visibility timeout);
5. waits until the queue is empty, then checks the fake's record: every chat got exactly
   one message (none lost, none twice), and the fake answered no 429.

Reports the sustained rate before the kill, after the restart, and overall.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

TOKEN = "123456789:BENCH-token_for-the-fake-bot-api-00"
FIRST_CHAT = 10_000_000


def bench_config(redis_url: str, prefix: str, api_url: str, visibility: float):
    from ymds.config import load_config
    return load_config(raw={
        "redis": {"url": redis_url, "prefix": prefix},
        "queue": {"visibility_timeout": visibility, "concurrency": 32, "batch": 50},
        "telegram": {"token": TOKEN, "api_url": api_url, "language": "en"},
    }, env={})


# --- child processes -------------------------------------------------------------------

def run_bot(args) -> None:
    """A bot process: the bot queue's worker and sender (no polling), until killed."""
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from ymds.bot.service import make_bot_service
    from ymds.queue.client import RedisJobQueue

    globalLogBeginner.beginLoggingTo([textFileLogObserver(open(args.log, "a"))], redirectStandardIO=False)
    config = bench_config(args.redis, args.prefix, args.api_url, args.visibility)
    queue = RedisJobQueue(reactor, config.redis)
    queue.startService()
    bot = make_bot_service(reactor, config, queue, poll=False)
    bot.startService()
    reactor.run()


def enqueue(args) -> None:
    from twisted.internet import defer, task

    from ymds.queue.client import RedisJobQueue

    async def main(reactor):
        config = bench_config(args.redis, args.prefix, args.api_url, args.visibility)
        queue = RedisJobQueue(reactor, config.redis)
        queue.startService()
        pending = []
        for i in range(args.messages):
            chat = FIRST_CHAT + i
            pending.append(queue.enqueue("bot", "send", {"chat_id": chat, "text": f"News #{i} for <b>{chat}</b>",
                                                         "key": f"broadcast:1:{chat}"}))
        ids = await defer.gatherResults(pending)
        assert all(ids), "some jobs were not enqueued"
        await queue.stopService()

    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor)))


# --- orchestration ----------------------------------------------------------------------

def control(base: str, path: str, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + "/_control/" + path, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def start_bot(common: list[str], log: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--run-bot", "--log", log] + common, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction sent before kill -9 (0: no kill)")
    parser.add_argument("--visibility", type=float, default=10.0, help="queue visibility timeout (reclaim after)")
    parser.add_argument("--run-bot", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--enqueue", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_bot:
        return run_bot(args)
    if args.enqueue:
        return enqueue(args)

    from tests.support.redis_server import RedisServer

    workdir = tempfile.mkdtemp(prefix="ymds-bot-bench-")
    redis = RedisServer().start()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.fake_telegram", "--port", "0", "--token", TOKEN],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    bots: list[subprocess.Popen] = []
    try:
        port = json.loads(fake.stdout.readline())["port"]
        api_url = f"http://127.0.0.1:{port}"
        common = ["--redis", redis.url, "--prefix", "bench", "--api-url", api_url, "--visibility", str(args.visibility)]
        t = time.monotonic()
        subprocess.run([sys.executable, __file__, "--enqueue", "--messages", str(args.messages)] + common,
                       cwd=ROOT, check=True)
        print(f"enqueued {args.messages} send jobs in {time.monotonic() - t:.1f}s", flush=True)
        log = os.path.join(workdir, "bot.log")
        bots.append(start_bot(common, log))
        killed_at_count = None
        kill_after = int(args.messages * args.kill_at) if args.kill_at > 0 else None
        last_report = 0.0
        while True:
            stats = control(api_url, "stats")
            sent = stats["sent"]
            if kill_after is not None and killed_at_count is None and sent >= kill_after:
                bots[-1].send_signal(signal.SIGKILL)
                bots[-1].wait()
                killed_at_count = control(api_url, "stats")["sent"]
                print(f"kill -9 of the bot process after {killed_at_count} messages; restarting", flush=True)
                bots.append(start_bot(common, log))
            depth = int(redis.command("XLEN", "bench:q:bot")) + int(redis.command("ZCARD", "bench:q:bot:delayed"))
            if time.monotonic() - last_report > 15:
                print(f"  sent {sent}, throttled {stats['throttled']}, queue {depth}", flush=True)
                last_report = time.monotonic()
            if depth == 0 and sent >= args.messages - 100:
                time.sleep(2)  # let any straggler land before judging
                if int(redis.command("XLEN", "bench:q:bot")) == 0:
                    break
            time.sleep(0.5)
        dead = int(redis.command("XLEN", "bench:q:bot:dead"))
        stats = control(api_url, "stats")
        messages = control(api_url, "sent")["sent"]
    finally:
        for bot in bots:
            if bot.poll() is None:
                bot.send_signal(signal.SIGKILL)
                bot.wait()
        fake.send_signal(signal.SIGTERM)
        fake.wait()
        redis.cleanup()

    per_chat: dict[int, int] = {}
    for m in messages:
        per_chat[m["chat_id"]] = per_chat.get(m["chat_id"], 0) + 1
    expected = set(range(FIRST_CHAT, FIRST_CHAT + args.messages))
    lost = sorted(expected - set(per_chat))
    twice = sorted(c for c, n in per_chat.items() if n > 1)
    times = [m["at"] for m in messages]

    def rate(ts):
        return (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 and ts[-1] > ts[0] else float("nan")

    print(f"messages sent: {len(messages)} to {len(per_chat)} chats; lost {len(lost)}, sent twice {len(twice)}; "
          f"dead letters {dead}; 429 answers provoked: {stats['throttled']}")
    if killed_at_count is not None:
        before, after = times[:killed_at_count], times[killed_at_count:]
        gap = after[0] - before[-1] if after and before else float("nan")
        print(f"before the kill: {rate(before):.2f} msg/s over {len(before)} messages")
        print(f"after the restart: {rate(after):.2f} msg/s over {len(after)} messages "
              f"(gap of {gap:.1f}s around the kill: restart and reclaim after the visibility timeout)")
        print(f"overall: {rate(times):.2f} msg/s including the gap; "
              f"{(len(times) - 2) / ((times[-1] - times[0]) - gap):.2f} msg/s excluding it")
    else:
        print(f"sustained: {rate(times):.2f} msg/s over {len(times)} messages "
              f"({times[-1] - times[0]:.1f}s)")
    if lost:
        print(f"lost (first 10): {lost[:10]}")
    if twice:
        print(f"twice (first 10): {twice[:10]}")
    print(f"bot log: {os.path.join(workdir, 'bot.log')}")
    ok = not lost and not twice and stats["throttled"] == 0 and dead == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
