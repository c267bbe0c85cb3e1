"""Long polling of getUpdates, by whichever bot process holds the Redis lease.

- The offset lives in Redis (``{prefix}:bot:offset``) and is stored only after an update
  was dispatched (enqueued as a ``bot.update`` job with an idempotency key made of the
  update id), so a restart neither loses updates (they are fetched again) nor repeats them
  (the enqueue of an already-enqueued update is a no-op).  Offset writes are fenced by the
  lease, and only ever move forward.
- One poller: ``SET {prefix}:bot:lease NX PX``; the holder renews every ttl/3 and stops
  polling at once when a renewal says the lease is someone else's, or when its local
  deadline passes without a successful renewal.  The others try every ttl/3.
- Errors: network errors and 5xx back off exponentially (1 s .. 60 s); 429 waits
  retry_after; 409 is logged with the fix and retried slowly; 401 says the token is wrong.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from ymds.util.clock import sleep
from ymds.bot.errors import (BadRequest, Conflict, NetworkError, RetryAfter, ServerError, TelegramError,
                             Unauthorized)

log = Logger()

CONFLICT_FIX = ("another process polls this bot or a webhook is set: deleteWebhook is called at start; "
                "stop the other poller (another ymds instance with a different Redis, or another program using this token)")


class _LeaseLost(Exception):
    pass


class PollingService(Service):
    """Holds the polling lease when it can, and polls while holding it.

    ``dispatch`` is ``async def dispatch(update: dict) -> None``: it returns once the update
    is durably handed over (enqueued) and raises to have it tried again later.
    """

    name = "bot-polling"

    def __init__(self, clock, api, store, lease, dispatch, poll_timeout: int = 50,
                 allowed_updates=("message", "callback_query"), backoff_initial: float = 1.0,
                 backoff_max: float = 60.0, conflict_delay: float = 30.0, unauthorized_delay: float = 300.0):
        self.clock = clock
        self.api = api
        self.store = store
        self.lease = lease
        self.dispatch = dispatch
        self.poll_timeout = poll_timeout
        self.allowed_updates = list(allowed_updates)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.conflict_delay = conflict_delay
        self.unauthorized_delay = unauthorized_delay
        self.polling = False  # for tests and /healthz: are we the poller right now
        self._main: Deferred | None = None
        self._poll: Deferred | None = None
        self._nap: Deferred | None = None
        self._renewer: task.LoopingCall | None = None
        self._deadline = None
        self._backoff = backoff_initial

    # --- service ------------------------------------------------------------------------

    def startService(self):
        super().startService()
        self._main = Deferred.fromCoroutine(self._run())
        self._main.addErrback(lambda f: log.failure("bot polling stopped unexpectedly", f))

    def stopService(self):
        super().stopService()
        self._interrupt()
        main, self._main = self._main, None
        d = main if main is not None else Deferred()
        if main is None:
            d.callback(None)

        def release(_):
            if self.lease.held:
                self.lease.forget()
                return Deferred.fromCoroutine(self.lease.release()).addErrback(lambda f: None)

        return d.addBoth(release)

    def _interrupt(self) -> None:
        for d in (self._poll, self._nap):
            if d is not None and not d.called:
                d.cancel()

    # --- lease ----------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        self._nap = sleep(self.clock, seconds)
        try:
            await self._nap
        except CancelledError:
            pass
        finally:
            self._nap = None

    def _holding(self) -> bool:
        return bool(self.running and self.lease.held)

    def _arm_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        remaining = self.lease.valid_until - self.clock.seconds()
        self._deadline = self.clock.callLater(max(0.0, remaining), self._deadline_passed)

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.polling and not self.lease.held:
            log.warn("bot polling lease not renewed in time; stopping polling")
            self._interrupt()

    def _lost(self, why: str) -> None:
        if self.polling:
            log.warn("bot polling lease lost ({why}); standing by", why=why)
        self.lease.forget()
        self._interrupt()

    async def _renew(self) -> None:
        try:
            if await self.lease.renew():
                self._arm_deadline()
            else:
                self._lost("another process holds it")
        except Exception as e:
            log.warn("bot polling lease renewal failed: {error}", error=str(e) or type(e).__name__)

    async def _run(self) -> None:
        while self.running:
            try:
                got = await self.lease.acquire()
            except Exception as e:
                log.warn("bot polling lease: Redis unavailable ({error})", error=str(e) or type(e).__name__)
                got = False
            if not got:
                await self._sleep(self.lease.ttl / 3)
                continue
            log.info("bot polling lease taken by {owner}", owner=self.lease.owner)
            self._arm_deadline()
            self._renewer = task.LoopingCall(lambda: Deferred.fromCoroutine(self._renew()))
            self._renewer.clock = self.clock
            self._renewer.start(self.lease.ttl / 3, now=False)
            self.polling = True
            try:
                await self._poll_while_holding()
            except _LeaseLost:
                pass
            finally:
                self.polling = False
                if self._renewer.running:
                    self._renewer.stop()
                if self._deadline is not None and self._deadline.active():
                    self._deadline.cancel()
                self._deadline = None

    # --- polling ----------------------------------------------------------------------------

    async def _retry(self, what: str, operation):
        """Run ``operation`` until it succeeds, backing off, while we hold the lease."""
        delay = self.backoff_initial
        while True:
            if not self._holding():
                raise _LeaseLost()
            try:
                return await operation()
            except CancelledError:
                raise _LeaseLost() from None
            except Exception as e:
                if not self._holding():
                    raise _LeaseLost() from None
                log.warn("bot polling: {what} failed ({error}); again in {delay:g}s",
                         what=what, error=str(e) or type(e).__name__, delay=delay)
                await self._sleep(delay)
                delay = min(delay * 2, self.backoff_max)

    async def _delete_webhook(self) -> None:
        try:
            await self.api.deleteWebhook()
        except TelegramError as e:
            log.warn("bot: deleteWebhook failed ({error}); polling anyway", error=str(e))

    async def _poll_while_holding(self) -> None:
        if not self._holding():
            return
        await self._delete_webhook()
        offset = await self._retry("reading the offset from Redis", self.store.get_offset)
        log.info("bot polling from offset {offset}", offset=offset)
        self._backoff = self.backoff_initial
        while self._holding():
            try:
                self._poll = Deferred.fromCoroutine(self.api.getUpdates(
                    offset=offset, timeout=self.poll_timeout, allowed_updates=self.allowed_updates))
                updates = await self._poll
            except Exception as e:
                if not self._holding():
                    return
                await self._poll_failed(e)
                continue
            finally:
                self._poll = None
            self._backoff = self.backoff_initial
            offset = await self._handle_batch(updates, offset)

    async def _poll_failed(self, e: Exception) -> None:
        if isinstance(e, Conflict):
            log.error("bot: getUpdates answered 409 Conflict ({description}): {fix}; retrying in {delay:g}s",
                      description=e.description, fix=CONFLICT_FIX, delay=self.conflict_delay)
            if "webhook" in e.description.lower():
                await self._delete_webhook()
            await self._sleep(self.conflict_delay)
        elif isinstance(e, RetryAfter):
            log.warn("bot: getUpdates flood control, waiting {seconds:g}s", seconds=e.retry_after)
            await self._sleep(e.retry_after)
        elif isinstance(e, Unauthorized):
            log.critical("bot: Telegram refuses the token (401): put the token from @BotFather in "
                         "telegram.token_file; retrying in {delay:g}s", delay=self.unauthorized_delay)
            await self._sleep(self.unauthorized_delay)
        elif isinstance(e, (ServerError, NetworkError, CancelledError)):
            log.warn("bot: getUpdates failed ({error}); again in {delay:g}s",
                     error=str(e) or type(e).__name__, delay=self._backoff)
            await self._sleep(self._backoff)
            self._backoff = min(self._backoff * 2, self.backoff_max)
        elif isinstance(e, (BadRequest, TelegramError)):
            log.error("bot: getUpdates refused ({error}); retrying in {delay:g}s", error=str(e),
                      delay=self.conflict_delay)
            await self._sleep(self.conflict_delay)
        else:
            log.failure("bot: getUpdates failed unexpectedly")
            await self._sleep(self.conflict_delay)

    async def _handle_batch(self, updates: list, offset: int | None) -> int | None:
        valid = [u for u in updates if isinstance(u, dict) and isinstance(u.get("update_id"), int)
                 and not isinstance(u.get("update_id"), bool)]
        if len(valid) != len(updates):
            log.warn("bot: skipped {n} malformed updates without an update_id", n=len(updates) - len(valid))
            if not valid:
                await self._sleep(self._backoff)
                self._backoff = min(self._backoff * 2, self.backoff_max)
                return offset
        for update in sorted(valid, key=lambda u: u["update_id"]):
            update_id = update["update_id"]
            if offset is not None and update_id < offset:
                continue  # already confirmed: Telegram should not send it again
            await self._retry(f"handing over update {update_id}", lambda: self.dispatch(update))
            offset = update_id + 1
            stored = await self._retry("storing the offset", lambda: self.store.set_offset(offset, self.lease.owner))
            if not stored:
                self._lost("the offset is fenced by another holder")
                raise _LeaseLost()
        return offset
