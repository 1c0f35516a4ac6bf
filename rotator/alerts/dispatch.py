"""The dispatcher: which hook gets which alert, how often, with retries, never raising.

The hooks come paired with their route (:class:`HookRoute`: events, ``repeat_interval``,
``timeout``; the ``alerts:`` entries of the configuration satisfy it), built from the
configuration by :func:`rotator.wiring.build_hooks`. :meth:`Alerter.notify` takes one
:class:`~rotator.alerts.event.Alert` and:

1. **Routes** it to every hook whose ``events`` list the alert's event.
2. **Deduplicates** per (hook, dedup key, event): an alert the hook was already sent is sent
   again only once the hook's ``repeat_interval`` has passed (an ongoing problem reminds, it
   does not flood). ``rotation_succeeded`` is never deduplicated: each one is a new fact.
   **Deduplication is per incident.** A ``recovered`` alert ends the incident of its dedup key
   for *every* hook, whether or not the hook subscribes to ``recovered``: each hook's state
   for that dedup key is cleared, so a new failure after a recovery is a new incident and is
   sent at once, not after ``repeat_interval``. A ``recovered`` alert is *delivered* only to
   hooks that list it and were sent a failure of the class it resolves that is not yet
   resolved. When that delivery fails, the failure state is cleared all the same and the
   resolution stays pending: the next ``recovered`` tries it again. Healthy runs (which raise
   ``recovered`` for every key) thus send nothing.
3. **Delivers** to the due hooks concurrently, each in its own thread with its own deadline, so
   a slow or dead hook never delays the others by more than its own deadline. Each delivery is
   tried (with tenacity) up to ``retries`` times with ``backoff`` between attempts, and stops
   early when the next attempt could not start before the hook's deadline (default:
   ``retries`` x the hook's timeout). Errors marked not retryable (HTTP 4xx other than
   408/425/429, a missing program) and unexpected errors (a hook's bug) are not tried again.
4. **Reports** each hook's outcome through ``on_result(hook name, result)`` for metrics:
   ``sent``, ``failed`` (every attempt failed; logged, never raised) or ``suppressed`` (held
   back by ``repeat_interval``). A ``recovered`` with nothing to resolve is not an alert and is
   not reported.

A failed delivery is not remembered as sent: the next ``notify`` of the same problem tries it
again, whatever the ``repeat_interval``.

The deduplication state is always held in memory and, with ``state_path``, also on disk: the
daemon, ``rotate`` and the lock's alerts put it beside ``history.path``
(``<path>.alerts.json``, 0600, rewritten atomically after each change and read at start-up), so
cron runs and a restarted daemon deduplicate and resolve what an earlier process sent. Only
without ``history.path`` is it in memory alone: after a restart an ongoing problem is sent once
more, and a ``recovered`` for a problem sent before the restart is not sent (PagerDuty and
Alertmanager incidents opened before it are then resolved by hand, or by Alertmanager once the
alert's hold ends).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal, Protocol

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity import stop_before_delay as tenacity_stop_before_delay

from rotator.alerts.base import AlertDeliveryError, AlertHook
from rotator.alerts.event import Alert, AlertEvent
from rotator.secrets import redact

log = structlog.get_logger(__name__)


class HookRoute(Protocol):
    """Where and how often a hook is sent alerts (an ``alerts:`` entry satisfies it)."""

    @property
    def events(self) -> Collection[AlertEvent]:
        """The events the hook receives."""
        ...

    @property
    def repeat_interval(self) -> timedelta:
        """An ongoing problem is sent again after this long."""
        ...

    @property
    def timeout(self) -> timedelta:
        """The timeout of one delivery attempt."""
        ...


Result = Literal["sent", "failed", "suppressed"]
#: ``on_result(hook name, result)``.
ResultCallback = Callable[[str, Result], None]
#: Seconds to wait before attempt ``n + 1`` after attempt ``n`` (1-based) failed.
Backoff = Callable[[int], float]

DEFAULT_RETRIES: Final = 3


def exponential_backoff(base: float = 1.0, cap: float = 30.0) -> Backoff:
    """``base``, 2 x ``base``, 4 x ``base``, ... seconds, at most ``cap``."""

    def delay(attempt: int) -> float:
        return float(min(cap, base * 2 ** (attempt - 1)))

    return delay


#: 1 s, 2 s, 4 s, ... at most 30 s.
DEFAULT_BACKOFF: Final = exponential_backoff()
#: Events sent every time they happen: a success, and an emergency rotation (each one matters).
_NEVER_DEDUPLICATED: Final = frozenset(
    {AlertEvent.ROTATION_SUCCEEDED, AlertEvent.EMERGENCY_ROTATION}
)


class Alerter:
    """Sends alerts to the configured hooks: routed, deduplicated, retried, never raising."""

    def __init__(
        self,
        hooks: Sequence[tuple[HookRoute, AlertHook]],
        *,
        clock: Callable[[], datetime],
        retries: int = DEFAULT_RETRIES,
        backoff: Backoff = DEFAULT_BACKOFF,
        deadline: timedelta | None = None,
        on_result: ResultCallback | None = None,
        state_path: Path | None = None,
    ) -> None:
        """``retries`` is the number of attempts per delivery (at least 1); ``deadline`` bounds
        one hook's delivery including retries (default: ``retries`` x the hook's timeout);
        ``clock`` is the UTC wall clock that ``repeat_interval`` is measured with.
        ``state_path``, when given, keeps the deduplication state in a file across processes,
        so one-shot ``rotate`` runs from cron (and a restarted daemon) repeat an ongoing alert
        only after ``repeat_interval`` and still resolve what an earlier run opened.
        """
        if retries < 1:
            raise ValueError(f"retries must be at least 1, not {retries}")
        self._hooks = list(hooks)
        self._clock = clock
        self._retries = retries
        self._backoff = backoff
        self._deadline = deadline
        self._on_result = on_result
        self._lock = threading.Lock()
        # (hook index, dedup key, event) -> when it was last delivered. The index, not the
        # name, so that two hooks configured with one name keep separate state.
        self._sent: dict[tuple[int, str, AlertEvent], datetime] = {}
        self._state_path = state_path
        self._load_state()

    def notify(self, alert: Alert) -> None:
        """Send ``alert`` to every hook that is due for it; never raises for a hook's failure."""
        now = self._clock()
        due: list[tuple[int, HookRoute, AlertHook]] = []
        for index, (config, hook) in enumerate(self._hooks):
            if alert.event not in config.events:
                if alert.event is AlertEvent.RECOVERED:
                    # The incident is over for this hook too, though it hears nothing of it.
                    self._end_incident(index, alert.dedup_key, pending_since=None)
                continue
            verdict = self._decide(index, config, alert, now)
            if verdict == "send":
                due.append((index, config, hook))
            elif verdict == "suppressed":
                log.debug(
                    "alert.suppressed",
                    hook=hook.name,
                    alert_event=str(alert.event),
                    dedup_key=alert.dedup_key,
                )
                self._report(hook.name, "suppressed")
        if not due:
            return
        if len(due) == 1:
            outcomes = [self._deliver(due[0][1], due[0][2], alert)]
        else:
            with ThreadPoolExecutor(max_workers=len(due), thread_name_prefix="alert") as pool:
                outcomes = list(pool.map(lambda d: self._deliver(d[1], d[2], alert), due))
        for (index, _config, hook), delivered in zip(due, outcomes, strict=True):
            if delivered:
                self._remember(index, alert, self._clock())
            elif alert.event is AlertEvent.RECOVERED:
                self._end_incident(index, alert.dedup_key, pending_since=self._clock())
            self._report(hook.name, "sent" if delivered else "failed")

    # -- deduplication ---------------------------------------------------------------------------

    def _decide(
        self, index: int, config: HookRoute, alert: Alert, now: datetime
    ) -> Literal["send", "suppressed", "nothing"]:
        """Whether the hook gets the alert now, is held back, or has nothing to resolve."""
        if alert.event in _NEVER_DEDUPLICATED:
            return "send"
        with self._lock:
            if alert.event is AlertEvent.RECOVERED:
                # Open: a failure was sent, or a resolution of it is still to be delivered.
                open_ = any(i == index and k == alert.dedup_key for i, k, _ in self._sent)
                return "send" if open_ else "nothing"
            last = self._sent.get((index, alert.dedup_key, alert.event))
        if last is None or now - last >= config.repeat_interval:
            return "send"
        return "suppressed"

    def _remember(self, index: int, alert: Alert, now: datetime) -> None:
        """Record a delivery; a delivered ``recovered`` clears its dedup key's state."""
        if alert.event in _NEVER_DEDUPLICATED:
            return
        if alert.event is AlertEvent.RECOVERED:
            self._end_incident(index, alert.dedup_key, pending_since=None)
            return
        with self._lock:
            self._sent[(index, alert.dedup_key, alert.event)] = now
            # A new incident supersedes a resolution of the previous one still to be delivered.
            self._sent.pop((index, alert.dedup_key, AlertEvent.RECOVERED), None)
            self._save_state()

    def _end_incident(self, index: int, dedup_key: str, *, pending_since: datetime | None) -> None:
        """Forget what the hook was sent for ``dedup_key``: the next failure is a new incident.

        ``pending_since`` keeps a marker that the resolution was not delivered yet, so the next
        ``recovered`` is tried again (it never holds back a failure: that one is sent at once).
        """
        with self._lock:
            entries = [e for e in self._sent if e[0] == index and e[1] == dedup_key]
            if not entries and pending_since is None:
                return
            for entry in entries:
                del self._sent[entry]
            if pending_since is not None:
                self._sent[(index, dedup_key, AlertEvent.RECOVERED)] = pending_since
            self._save_state()

    # -- persisted state -------------------------------------------------------------------------

    def _hook_label(self, index: int) -> str:
        return self._hooks[index][1].name

    def _load_state(self) -> None:
        """Read the state file; entries of hooks no longer at that index are dropped."""
        if self._state_path is None:
            return
        try:
            entries = json.loads(self._state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("alert.state_unreadable", path=str(self._state_path), error=str(exc))
            return
        for entry in entries if isinstance(entries, list) else []:
            try:
                index, name, key, event, when = entry
                if index < len(self._hooks) and self._hook_label(index) == name:
                    self._sent[(index, key, AlertEvent(event))] = datetime.fromisoformat(when)
            except (TypeError, ValueError):
                continue

    def _save_state(self) -> None:
        """Write the state file atomically (0600); a failure only costs deduplication."""
        if self._state_path is None:
            return
        entries = [
            [index, self._hook_label(index), key, str(event), when.isoformat()]
            for (index, key, event), when in self._sent.items()
        ]
        tmp = self._state_path.with_name(self._state_path.name + ".tmp")
        try:
            self._state_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entries, handle)
            tmp.replace(self._state_path)
        except OSError as exc:
            log.warning("alert.state_unwritable", path=str(self._state_path), error=exc.strerror)

    # -- delivery --------------------------------------------------------------------------------

    def _deliver(self, config: HookRoute, hook: AlertHook, alert: Alert) -> bool:
        """Try the hook until it succeeds, attempts run out or its deadline would pass."""
        budget = self._deadline or config.timeout * self._retries
        facts = {
            "hook": hook.name,
            "alert_event": str(alert.event),
            "managed_key": alert.managed_key,
            "dedup_key": alert.dedup_key,
        }

        def announce(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            log.debug(
                "alert.retry",
                **facts,
                attempt=state.attempt_number,
                delay_s=state.upcoming_sleep,
                error=redact(str(error)),
            )

        attempts = 0
        retrying = Retrying(
            stop=stop_after_attempt(self._retries)
            | tenacity_stop_before_delay(budget.total_seconds()),
            wait=lambda state: max(0.0, self._backoff(state.attempt_number)),
            retry=retry_if_exception(_retryable),
            before_sleep=announce,
            sleep=time.sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    hook.send(alert)
        except AlertDeliveryError as exc:
            reason = redact(str(exc))
            if exc.retry and attempts < self._retries:
                reason += " (deadline reached)"
        except Exception as exc:  # noqa: BLE001 - a hook's bug must never stop a rotation
            # The type only: the message of an unexpected error may quote anything.
            reason = f"{hook.name}: unexpected {type(exc).__name__}"
        else:
            log.info("alert.sent", **facts, attempts=attempts)
            return True
        log.warning("alert.failed", **facts, attempts=attempts, error=reason)
        return False

    def _report(self, hook: str, result: Result) -> None:
        """Tell ``on_result``; a failing metrics callback must not break alerting either."""
        if self._on_result is None:
            return
        try:
            self._on_result(hook, result)
        except Exception:  # metrics are best effort: never let them break alerting
            log.exception("alert.on_result_failed", hook=hook, result=result)


def _retryable(exc: BaseException) -> bool:
    """Only delivery errors the hook marked as temporary are tried again."""
    return isinstance(exc, AlertDeliveryError) and exc.retry
