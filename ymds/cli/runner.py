"""Running one parsed ``ymds`` command: load the configuration, probe what the command needs,
run it in the reactor, and turn every way it can end into an exit status and at most one
line on stderr (or a traceback for a bug)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Mapping
from typing import IO, Any

from ymds.cli import common_options
from ymds.cli.command import Command
from ymds.cli.context import Context, describe_ledger, describe_redis
from ymds.cli.errors import EXIT_INTERNAL, EXIT_OK, EXIT_UNREACHABLE, CommandError, unreachable, usage
from ymds.config import Config, ConfigError, load_config


def load(args: argparse.Namespace, env: Mapping[str, str], err: IO[str] | None = None) -> Config:
    """The configuration of ``--config`` (else $YMDS_CONFIG, /etc/ymds/ymds.toml, ./ymds.toml:
    ymds/cli/config_search.py; which one is said on ``err``) with the ``--set`` overrides."""
    from ymds.cli.config_search import find_config
    path, source = find_config(args.config, env, os.getcwd())
    if not path:
        raise usage(f"no configuration: give --config /etc/ymds/ymds.toml or set YMDS_CONFIG (looked at {source}; "
                    "an example: contrib/ymds.example.toml)")
    if err is not None and source != "--config":
        err.write(f"ymds: configuration {path} (from {source})\n")
    try:
        overrides = common_options.parse_overrides(args.set)
    except ValueError as e:
        raise usage(str(e)) from None
    try:
        return load_config(path=path, env=env, overrides=overrides)
    except ConfigError as e:
        raise usage(str(e)) from None


def preflight(config: Config, needs_redis: bool, needs_ledger: bool) -> None:
    """Fail fast with one line (blocking probes with short timeouts: the drivers would retry for a while)."""
    from ymds.check import check_ledger, check_redis
    # ymds.check's blocking probe knows no private CA (rediss://...?ca_file=): leave those to
    # the queue's own connection, whose failure is reported the same way.
    if needs_redis and not any(k in config.redis.url for k in ("ca_file=", "ssl_ca_certs=")):
        ok, detail = check_redis(config.redis.url, timeout=3.0)
        if not ok:
            raise unreachable(f"redis unreachable ({describe_redis(config.redis.url)}): {detail}; "
                              "is redis-server running and redis.url right?")
    if needs_ledger:
        ok, detail = check_ledger(config.ledger.url)
        if not ok:
            raise unreachable(f"ledger unreachable ({describe_ledger(config.ledger.url)}): {detail}")


async def run_command(reactor: Any, config: Config, command: Command, args: argparse.Namespace,
                      out: IO[str], err: IO[str]) -> int:
    """Run ``command`` and close what it opened; returns the exit status (a CommandError,
    an unreachable Redis or ledger and a closed stdout are turned into one)."""
    from ymds.queue.errors import RedisUnavailable
    from ymds.queue.redis import ConnectionLost
    from ymds.cli.output import show_times_in
    show_times_in(config.server.timezone)  # tables in the owner's time (issue 16)
    ctx = Context(reactor, config, args, out, err)
    try:
        try:
            status = await command.run(ctx)
            out.flush()
            return status
        finally:
            await ctx.close()
    except CommandError as e:
        err.write(f"ymds: {e}\n")
        return e.status
    except (RedisUnavailable, ConnectionLost) as e:
        err.write(f"ymds: redis unreachable ({describe_redis(config.redis.url)}): {e}\n")
        return EXIT_UNREACHABLE
    except BrokenPipeError:
        # the reader went away (ymds export | head): not an error of ours
        _silence(out)
        return EXIT_OK
    except Exception as e:
        if _is_ledger_driver_error(e):
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            err.write(f"ymds: ledger unreachable ({describe_ledger(config.ledger.url)}): {first}\n")
            return EXIT_UNREACHABLE
        raise


def _is_ledger_driver_error(e: Exception) -> bool:
    """sqlite3's or psycopg's OperationalError/InterfaceError (matched by name: psycopg is optional)."""
    return type(e).__name__ in ("OperationalError", "InterfaceError") and type(e).__module__.split(".")[0] in (
        "sqlite3", "psycopg")


def _silence(out: IO[str]) -> None:
    """Point the closed stream's descriptor at /dev/null so the interpreter's final flush is quiet."""
    try:
        fileno = out.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (a test's StringIO)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)


async def run_parsed(reactor: Any, commands: Mapping[str, Command], args: argparse.Namespace,
                     env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
    """Everything after parsing; never raises: a bug is a traceback on ``err`` and status 4."""
    try:
        config = load(args, env, err)
        command = commands[args.command]
        preflight(config, *command.dependencies(args))
        return await run_command(reactor, config, command, args, out, err)
    except CommandError as e:
        err.write(f"ymds: {e}\n")
        return e.status
    except Exception:
        err.write("ymds: internal error (please report it):\n")
        traceback.print_exc(file=err)
        return EXIT_INTERNAL


def start_logging(verbose: bool, stream: IO[str] = sys.stderr) -> None:
    """Route twisted.logger to ``stream``: info and up with --verbose, otherwise only critical."""
    from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner,
                                textFileLogObserver)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info if verbose else LogLevel.critical)
    observer = FilteringLogObserver(textFileLogObserver(stream), [predicate])
    globalLogBeginner.beginLoggingTo([observer], discardBuffer=True, redirectStandardIO=False)
