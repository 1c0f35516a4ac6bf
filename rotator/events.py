"""Kubernetes Events about what a run did, on the Secrets it writes and the workloads it restarts.

``kubectl events --for secret/<name>`` (``describe secret`` prints no Events for Secrets;
``describe deployment`` does for restarted workloads) then shows, as for cert-manager, VSO or
ESO:

============== ======= ==========================================================================
reason         type    when (object)
============== ======= ==========================================================================
Rotated        Normal  a new key was created, verified and pushed (each ``kubernetes-secret``
                       target; each workload the run restarted for it)
SwitchedOver   Normal  the switch-over finished: every consumer runs the new key (and, with a
                       previous key to protect, the grace period passed)
Revoked        Normal  the previous key was deleted in StackState
RotationFailed Warning the key failed (not ``wait``): the message names the step, the category
                       and the error type — never a key value, never the error text
============== ======= ==========================================================================

**API.** Events are written through core ``v1`` (``/api/v1/namespaces/<ns>/events``), the way
client-go's ``tools/record`` recorder does, not events.k8s.io/v1: both are views of the same
storage (``kubectl describe`` and ``kubectl get events`` show either), but events.k8s.io/v1
requires ``eventTime`` as a ``MicroTime`` with exactly six fractional digits, which the Python
client serialises with ``datetime.isoformat()`` (no fraction when it is zero: the server answers
400), and its ``series`` only starts with the second occurrence. Core ``v1`` carries ``count``,
``firstTimestamp`` and ``lastTimestamp``, which kubectl prints as ``(x3 over 5m)``.

**Series.** Like client-go's ``EventCorrelator``/``eventLogger``: an Event with the same involved
object (kind, namespace, name, uid), type, reason and message as one this component wrote within
:data:`SERIES_WINDOW` is not created again: the existing one is PATCHed (strategic merge) with
``count + 1`` and a new ``lastTimestamp``. The daemon remembers the Events it wrote (an LRU of
:data:`CACHE_ENTRIES`); a one-shot ``rotate`` (or a new leader) finds them with one list of
this component's Events per (context, namespace) and run (field selector on the source, read
only where an Event is to be written), so a run that changes N objects of a namespace costs one
list there, not N. A series whose Event expired
(the API server keeps Events for ``--event-ttl``, 1h by default: PATCH answers 404) starts again.
Messages are built to repeat exactly: a failing key retried every minute is one Event whose
count grows, not one Event per minute.

**Best effort.** Events are optional (``rotator rbac`` grants ``create``/``patch`` on
``events``; ``doctor`` only warns without them). A failed write (403 without the permission,
404 for a namespace that is gone, a timeout) is logged once per namespace and status as a
warning (``events.not_recorded``) and never fails, delays nor changes a rotation. Dry-runs send
none (I5). ``reportingComponent``/``source.component`` is :data:`COMPONENT`;
``reportingInstance``/``source.host`` the host name (the pod).
"""

from __future__ import annotations

import re
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import structlog

from rotator.clients.kubernetes import KubeClients, client_failure, status_of
from rotator.engine.model import KeyRef, KeyResult, KeySpec, RunReport
from rotator.errors import RotatorError
from rotator.targets.kubernetes import KubernetesSecretTarget

log = structlog.get_logger(__name__)

#: ``reportingComponent`` and ``source.component`` of every Event the rotator writes.
COMPONENT: Final = "stackstate-key-rotator"
#: An identical Event within this window continues the series (count + 1) instead of a new one.
SERIES_WINDOW: Final = timedelta(hours=1)
#: Series remembered in memory (client-go's ``maxLruCacheEntries``).
CACHE_ENTRIES: Final = 4096
#: The API's message limit for Events written with ``eventTime`` (``NoteLengthLimit``); kept
#: for legacy Events too, so a message is never cut by a server.
MESSAGE_LIMIT: Final = 1024

#: client-go patches an Event's series fields with a strategic merge patch.
_STRATEGIC_MERGE: Final = "application/strategic-merge-patch+json"
#: The core v1 Events of a namespace (a path of :meth:`KubeClients.call`).
_EVENTS_PATH: Final = "/api/v1/namespaces/{namespace}/events"
#: The resource (plural) of each kind an Event can be about.
_PLURALS: Final = {
    "Secret": "secrets",
    "Deployment": "deployments",
    "DaemonSet": "daemonsets",
    "StatefulSet": "statefulsets",
}

EventType = Literal["Normal", "Warning"]
Reason = Literal["Rotated", "SwitchedOver", "Revoked", "RotationFailed"]

_WORKLOAD_ID = re.compile(
    r"^kubernetes-workload:(?P<context>[^/]+)/(?P<namespace>[^/]+)/"
    r"(?P<kind>Deployment|DaemonSet|StatefulSet)/(?P<name>[^/?]+)$"
)


@dataclass(frozen=True)
class Subject:
    """The object an Event is about (``involvedObject``) and the context it lives in."""

    context: str | None
    api_version: str
    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class PlannedEvent:
    """One Event to record: what it is about, its type, reason and message."""

    subject: Subject
    type: EventType
    reason: Reason
    message: str


# -- which Events a run raises (pure) --------------------------------------------------------


def secret_subjects(spec: KeySpec) -> list[Subject]:
    """The Secrets of the key's ``kubernetes-secret`` targets, once each."""
    found: dict[Subject, None] = {}
    for target in spec.targets:
        if isinstance(target, KubernetesSecretTarget):
            subject = Subject(target.context, "v1", "Secret", target.namespace, target.name)
            found.setdefault(subject, None)
    return list(found)


def restarted_subjects(result: KeyResult, default_context: str | None) -> list[Subject]:
    """The workloads the plan restarted (``restart`` actions on one workload each).

    A workload id names its context as the consumer resolved it; ``default`` (or the
    configured default context) is the client's default."""
    found: dict[Subject, None] = {}
    for action in result.plan.actions:
        if action.action != "restart" or action.subject is None:
            continue
        match = _WORKLOAD_ID.match(str(action.subject))
        if match is None:
            continue
        context: str | None = match["context"]
        if context in ("default", default_context):
            context = None
        subject = Subject(context, "apps/v1", match["kind"], match["namespace"], match["name"])
        found.setdefault(subject, None)
    return list(found)


def events_for(
    result: KeyResult, spec: KeySpec, *, default_context: str | None = None
) -> list[PlannedEvent]:
    """The Events one managed key's result raises (possibly none). Messages hold names, ids,
    kinds and failure fields only: never a key value, never error text."""
    secrets = secret_subjects(spec)
    if not secrets:
        return []
    plan = result.plan
    key = plan.key
    planned: list[PlannedEvent] = []

    def on(subjects: Iterable[Subject], kind: EventType, reason: Reason, message: str) -> None:
        planned.extend(PlannedEvent(s, kind, reason, message[:MESSAGE_LIMIT]) for s in subjects)

    if result.failed:
        failure = result.failure or plan.failure
        step = failure.step if failure is not None else "unknown step"
        category = failure.category if failure is not None else "retry"
        error_type = failure.error_type if failure is not None else "Unknown"
        message = (
            f"managed key {key}: {step} failed ({category}, {error_type}); the key in use is "
            f"kept. See `rotator status --key {key}`."
        )
        subjects = list(secrets)
        if step in ("restart", "switch"):
            subjects += restarted_subjects(result, default_context)
        on(subjects, "Warning", "RotationFailed", message)
        return planned
    if result.outcome == "failed":
        return planned  # category wait: a window, a rollout in progress
    new_key = result.new_key
    if new_key is not None:
        expires = f", expires {new_key.expiration:%Y-%m-%d %H:%M}Z" if new_key.expiration else ""
        previous = plan.current
        kept = (
            f"; previous key {previous.name or previous.id} stays until every consumer switched"
            if previous is not None and (previous.name or previous.id)
            else ""
        )
        on(
            secrets,
            "Normal",
            "Rotated",
            f"managed key {key}: new {plan.kind} {new_key.name} (id {new_key.id}) created, "
            f"verified and written{expires}{kept}",
        )
        on(
            restarted_subjects(result, default_context),
            "Normal",
            "Rotated",
            f"restarted to read the new {plan.kind} {new_key.name} of managed key {key}",
        )
    current = plan.current
    in_use = (current.name or f"id {current.id}") if current is not None else "the key in use"
    if plan.decision == "revoke" and result.outcome == "revoked":
        on(
            secrets,
            "Normal",
            "SwitchedOver",
            f"managed key {key}: every consumer switched to {in_use}",
        )
        for action in plan.actions:
            if action.action == "revoke" and isinstance(action.subject, KeyRef):
                ref = action.subject
                on(
                    secrets,
                    "Normal",
                    "Revoked",
                    f"managed key {key}: previous {ref.kind} (id {ref.id}) deleted in StackState",
                )
    elif plan.completes_switch:
        on(
            secrets,
            "Normal",
            "SwitchedOver",
            f"managed key {key}: every consumer switched to {in_use}; no previous key to revoke",
        )
    return planned


# -- the recorder ----------------------------------------------------------------------------


#: What makes two Events one series: the involved object's kind, name and uid, then the
#: Event's type, reason and message.
_SeriesKey = tuple[Any, Any, Any, Any, Any, Any]
#: Events listed per page, and the most pages read per namespace and run (500 x 20 = 10,000
#: Events of this component in one namespace: an Event older than that starts a new series).
_PAGE: Final = 500
_MAX_PAGES: Final = 20


@dataclass
class _Series:
    name: str
    count: int
    last: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class _NotRecorded(Exception):
    """One Event could not be written (the call and the client failure behind it)."""

    def __init__(self, verb: str, status: int | None, problem: str) -> None:
        super().__init__(problem)
        self.verb = verb
        self.status = status
        self.problem = problem


class EventRecorder:
    """Writes :class:`PlannedEvent` s as core v1 Events, continuing series (thread-safe enough
    for the daemon: one run publishes at a time)."""

    def __init__(
        self,
        kube: KubeClients,
        *,
        clock: Callable[[], datetime] = _utc_now,
        instance: str | None = None,
        window: timedelta = SERIES_WINDOW,
        cache_entries: int = CACHE_ENTRIES,
    ) -> None:
        self.kube = kube
        self.clock = clock
        self.instance = (instance or socket.gethostname() or "unknown")[:128]
        self.window = window
        self._cache: OrderedDict[tuple[str | None, ...], _Series] = OrderedDict()
        self._cache_entries = max(1, cache_entries)
        self._warned: set[tuple[str | None, str, str, int | None]] = set()
        self._uids: dict[Subject, str | None] = {}
        #: This run's index of the component's Events per (context, namespace), or why the
        #: namespace's list failed (every Event there then fails the same way).
        self._listed: dict[tuple[str | None, str], dict[_SeriesKey, _Series] | _NotRecorded] = {}

    def publish(self, report: RunReport, specs: Sequence[KeySpec]) -> int:
        """Record the Events of every key's result; returns how many were written."""
        by_name = {s.name: s for s in specs}
        written = 0
        self._uids.clear()  # read each object once per run, afresh every run
        self._listed.clear()  # and each namespace's Events
        for result in report.results:
            spec = by_name.get(result.plan.key)
            if spec is None:
                continue
            for planned in events_for(result, spec, default_context=self.kube.default_context):
                written += self.record(planned)
        return written

    def record(self, planned: PlannedEvent) -> bool:
        """Write one Event (or continue its series); False when it could not be written."""
        try:
            self._record(planned)
        except _NotRecorded as failed:
            self._warn(planned.subject, planned.reason, failed)
            return False
        return True

    def _record(self, planned: PlannedEvent) -> None:
        subject = planned.subject
        uid = self._uid(subject)
        key = (
            subject.context, subject.api_version, subject.kind, subject.namespace,
            subject.name, uid, planned.type, planned.reason, planned.message,
        )  # fmt: skip
        now = self.clock()
        series = self._cache.get(key)
        if series is None or now - series.last > self.window:
            series = self._find(planned, uid, now)
        if series is None or not self._continue(subject, series, now):
            series = self._create(planned, uid, now)
        self._remember(key, series)

    # -- API calls (each with the client's timeout) -------------------------------------------

    def _call(self, verb: str, subject: Subject, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except RotatorError as exc:  # the context's credentials cannot load
            raise _NotRecorded(verb, None, type(exc).__name__) from None
        except Exception as exc:
            if not client_failure(exc):
                raise
            raise _NotRecorded(verb, status_of(exc), _problem(exc)) from None

    def _uid(self, subject: Subject) -> str | None:
        """The involved object's uid (``kubectl describe`` and ``kubectl events --for`` select
        by it); None when the object cannot be read (the Event is still written, by name)."""
        if subject not in self._uids:
            self._uids[subject] = self._read_uid(subject)
        return self._uids[subject]

    def _read_uid(self, subject: Subject) -> str | None:
        base = "/api/v1" if subject.kind == "Secret" else "/apis/apps/v1"
        plural = _PLURALS.get(subject.kind, "statefulsets")

        def read() -> Any:
            return self.kube.call(
                "GET",
                f"{base}/namespaces/{{namespace}}/{plural}/{{name}}",
                context=subject.context,
                path_params={"namespace": subject.namespace, "name": subject.name},
            )

        try:
            obj = self._call("get", subject, read)
        except _NotRecorded:
            return None
        uid = _json(obj).get("metadata", {}).get("uid")
        return uid if isinstance(uid, str) and uid else None

    def _find(self, planned: PlannedEvent, uid: str | None, now: datetime) -> _Series | None:
        """The newest Event of this component with the same object, type, reason and message
        seen within the window (a one-shot run or a new leader continues its series)."""
        subject = planned.subject
        listed = self._namespace_events(subject)
        series = listed.get(
            (subject.kind, subject.name, uid, planned.type, planned.reason, planned.message)
        )
        if series is None or now - series.last > self.window:
            return None
        return series

    def _namespace_events(self, subject: Subject) -> dict[_SeriesKey, _Series]:
        """Index this component's Events of the subject's namespace, once per run (paged)."""
        where = (subject.context, subject.namespace)
        if where not in self._listed:
            try:
                self._listed[where] = self._list_events(subject)
            except _NotRecorded as failed:
                self._listed[where] = failed
        listed = self._listed[where]
        if isinstance(listed, _NotRecorded):
            raise listed
        return listed

    def _list_events(self, subject: Subject) -> dict[_SeriesKey, _Series]:
        index: dict[_SeriesKey, _Series] = {}
        token: str | None = None
        for _ in range(_MAX_PAGES):
            query: dict[str, Any] = {"fieldSelector": f"source={COMPONENT}", "limit": _PAGE}
            if token:
                query["continue"] = token
            page = _json(
                self._call(
                    "list",
                    subject,
                    lambda query=query: self.kube.call(  # type: ignore[misc]
                        "GET",
                        _EVENTS_PATH,
                        context=subject.context,
                        path_params={"namespace": subject.namespace},
                        query=query,
                    ),
                )
            )
            for item in page.get("items") or []:
                if isinstance(item, dict):
                    _index_event(index, item)
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                break
        return index

    def _continue(self, subject: Subject, series: _Series, now: datetime) -> bool:
        """PATCH ``count``/``lastTimestamp``; False when the Event is gone (start anew)."""
        body = {"count": series.count + 1, "lastTimestamp": _time(now)}
        try:
            self._call(
                "patch",
                subject,
                lambda: self.kube.call(
                    "PATCH",
                    f"{_EVENTS_PATH}/{{name}}",
                    context=subject.context,
                    path_params={"namespace": subject.namespace, "name": series.name},
                    body=body,
                    content_type=_STRATEGIC_MERGE,
                ),
            )
        except _NotRecorded as failed:
            if failed.status == 404:
                return False
            raise
        series.count += 1
        series.last = now
        return True

    def _create(self, planned: PlannedEvent, uid: str | None, now: datetime) -> _Series:
        subject = planned.subject
        involved: dict[str, str] = {
            "apiVersion": subject.api_version,
            "kind": subject.kind,
            "namespace": subject.namespace,
            "name": subject.name,
        }
        if uid:
            involved["uid"] = uid
        for attempt in range(2):
            # client-go's name: <object>.<unix nanoseconds, hex>; a clash (409) takes another.
            name = f"{subject.name}.{time.time_ns() + attempt:x}"
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": subject.namespace},
                "involvedObject": involved,
                "reason": planned.reason,
                "message": planned.message,
                "type": planned.type,
                "count": 1,
                "firstTimestamp": _time(now),
                "lastTimestamp": _time(now),
                "source": {"component": COMPONENT, "host": self.instance},
                "reportingComponent": COMPONENT,
                "reportingInstance": self.instance,
            }
            try:
                self._call(
                    "create",
                    subject,
                    lambda body=body: self.kube.call(  # type: ignore[misc]
                        "POST",
                        _EVENTS_PATH,
                        context=subject.context,
                        path_params={"namespace": subject.namespace},
                        body=body,
                    ),
                )
            except _NotRecorded as failed:
                if failed.status == 409 and attempt == 0:
                    continue
                raise
            log.debug(
                "events.recorded", reason=planned.reason, object=_describe(subject), name=name
            )
            return _Series(name, 1, now)
        raise AssertionError("unreachable")  # pragma: no cover

    def _remember(self, key: tuple[str | None, ...], series: _Series) -> None:
        self._cache[key] = series
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)

    def _warn(self, subject: Subject, reason: str, failed: _NotRecorded) -> None:
        """Log a failed write once per (context, namespace, call, status) as a warning."""
        key = (subject.context, subject.namespace, failed.verb, failed.status)
        level = log.debug if key in self._warned else log.warning
        self._warned.add(key)
        level(
            "events.not_recorded",
            reason=reason,
            object=_describe(subject),
            call=failed.verb,
            status=failed.status,
            problem=failed.problem,
            hint="Events are optional: grant create/patch on events (see `rotator rbac`)",
        )


def _index_event(index: dict[_SeriesKey, _Series], item: dict[str, Any]) -> None:
    """Add one listed Event to ``index`` when it is the newest of its series."""
    involved = item.get("involvedObject") or {}
    if not isinstance(involved, dict):
        return
    last = _parse_time(item.get("lastTimestamp")) or _parse_time(
        (item.get("metadata") or {}).get("creationTimestamp")
    )
    if last is None:
        return
    key: _SeriesKey = (
        involved.get("kind"),
        involved.get("name"),
        involved.get("uid") or None,
        item.get("type"),
        item.get("reason"),
        item.get("message"),
    )
    count = item.get("count")
    series = _Series(
        str((item.get("metadata") or {}).get("name")),
        count if isinstance(count, int) and count > 0 else 1,
        last,
    )
    known = index.get(key)
    if known is None or series.last > known.last:
        index[key] = series


def _describe(subject: Subject) -> str:
    context = subject.context or "default"
    return f"{context}/{subject.namespace}/{subject.kind}/{subject.name}"


def _problem(exc: BaseException) -> str:
    """A short description of a client failure: the status and its reason, never a body."""
    status = status_of(exc)
    if status is not None:
        return f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip()
    return type(exc).__name__


def _json(answer: Any) -> dict[str, Any]:
    """The answer of :meth:`KubeClients.call` when it is a JSON object, else {}."""
    return answer if isinstance(answer, dict) else {}


def publish_events(
    recorder: EventRecorder | None, report: RunReport, specs: Sequence[KeySpec]
) -> None:
    """The publish path's hook: record the run's Events; never raises (best effort)."""
    if recorder is None or report.dry_run:
        return
    try:
        recorder.publish(report, specs)
    except Exception as exc:  # noqa: BLE001 - Events must never fail a rotation
        log.warning("events.failed", error_type=type(exc).__name__)
