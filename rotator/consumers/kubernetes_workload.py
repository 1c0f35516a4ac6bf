"""The ``kubernetes-workload`` consumer: a Deployment, DaemonSet or StatefulSet that reads a key.

It is switched over when a rollout that started *after* the push has completed, judged by the
rules of ``kubectl rollout status``. Two actions get that rollout going:

- ``restart`` — the rotator restarts the workload itself, exactly as ``kubectl rollout restart``
  does: a strategic-merge PATCH setting the pod-template annotation
  ``kubectl.kubernetes.io/restartedAt`` to the current time (RFC 3339). A paused Deployment is
  refused with kubectl's words, and nothing is written.
- ``wait`` — Reloader, the Vault Secrets Operator or External Secrets (with Reloader) restart it
  when the Secret changes; the rotator only records the push and waits for the template to change.

Identity: a consumer names one workload (``kubernetes-workload:ctx/ns/Kind/name``) or a label
selector (``kubernetes-workload:ctx/ns/Kind?app=x,tier=y``), and reports one state per workload
whose ``id`` and ``workload`` are ``kubernetes-workload:ctx/ns/Kind/name``, whichever managed
key's consumer observed it, so the engine restarts a shared workload once. ``ctx`` is the context
the calls go to: the consumer's own, else the configured default, else ``default``.

Evidence, not hope (invariant I2). Every trigger writes, in the *same* PATCH as the restart, a
record on the workload's own metadata (never the pod template, so writing it rolls no pod)::

    rotator.stackstate.io/pushed: {"<managed key>": {"fingerprint": "...",
                                                     "template": "<hash before the restart>",
                                                     "at": "<pushed_at, RFC 3339>"}}

``template`` is :func:`template_hash` of ``spec.template`` as the API server returned it just
before the PATCH; the PATCH carries that read's ``metadata.resourceVersion``, so a concurrent
template change makes it fail with 409 and the workload is read again (up to
``conflict_attempts`` times). Entries of other managed keys are preserved, so one workload can
consume several keys; a trigger for several keys writes all their entries and restarts once.

:meth:`KubernetesWorkloadConsumer.observe` (read-only, allowed in a dry-run) then decides, for
one managed key's value (``request``) and each workload::

    no entry for this key, or one for another value ...... needs-trigger
        (failed instead when a restart cannot switch it: a paused Deployment with action
        restart, updateStrategy OnDelete, or a StatefulSet partition above 0)
    entry for this value, template unchanged since ........ restart: needs-trigger (a crash
                                                            between record and restart)
                                                            wait: pending
                                                            (failed when blocked, as above)
    entry for this value, template changed since .......... the rollout's verdict:
        complete ........................................ switched
        Deployment ProgressDeadlineExceeded ............. failed
        paused Deployment, OnDelete, partition > 0 ...... failed (it will not finish by itself)
        otherwise ....................................... pending, with progress

Nothing else is trusted: a completed rollout whose template did not change after the record may
still run pods started before the push. Known limit of ``wait``: when Reloader/VSO restarts the
workload *before* the rotator recorded the push (it reacts within a second), the record already
holds the new template and the consumer stays pending until the switch timeout; the reason says
how to finish by hand. This errs on the side of I2: the old key is never revoked early.

The pure judging helpers (template hash, the record, kubectl's rollout verdict) live in
:mod:`rotator.consumers.rollout` and are re-exported here.

Errors are translated in one place, :func:`map_error` (the Kubernetes client's one translation,
:func:`rotator.clients.kubernetes.map_api_error`, with the consumer family; messages name the
workload)::

    401, 403 ............................... ConsumerForbidden (verb, resource, namespace)
    404 on get or patch .................... not an error: the state is failed, "... not found"
    other 404, 400, 422, other 4xx ......... ConsumerInvalid
    409 (after the retries above) .......... ConsumerConflict
    429, 5xx ............................... ConsumerUnavailable (``delay`` from Retry-After)
    urllib3 errors (refused, reset, DNS,
      timeouts), TLS failures .............. ConsumerUnavailable
    kubeconfig credential refresh failed ... ConsumerForbidden
    an answer that is not a JSON object .... ConsumerInvalid

Their categories are those of the ``Target*`` classes of the same kind. Messages carry the API
server's Status ``message`` (redacted, shortened), never a request or response body; the
client's exception is dropped from the chain (``from None``) because its text
holds the whole response body. Every call goes through :meth:`KubeClients.call` (the
client's timeout applies): objects are read and written as raw JSON by path, so the template
hash describes exactly what the API server stores and does not change when a newer client
learns more fields, and no API class of the client is imported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, get_args

from rotator.clients.kubernetes import (
    DEFAULT_CONFLICT_ATTEMPTS,
    DEFAULT_CONFLICT_BACKOFF,
    Conflict,
    KubeClients,
    map_api_error,
    retry_on_conflict,
    status_of,
    translated,
)
from rotator.consumers.base import Resolution, SwitchPhase, SwitchRequest, SwitchState
from rotator.consumers.rollout import (
    PUSHED_ANNOTATION,
    PushRecord,
    RolloutPhase,
    RolloutStatus,
    partition_of,
    read_records,
    records_json,
    rfc3339,
    rollout_status,
    template_hash,
)
from rotator.errors import (
    CONSUMER_ERRORS,
    ConfigError,
    ConsumerConflict,
    ConsumerInvalid,
    RotatorError,
)

__all__ = [
    "PAUSED_REFUSAL",
    "PUSHED_ANNOTATION",
    "RESTARTED_AT_ANNOTATION",
    "KubernetesWorkloadConsumer",
    "PushRecord",
    "RolloutPhase",
    "RolloutStatus",
    "json_object",
    "map_error",
    "read_records",
    "rfc3339",
    "rollout_status",
    "template_hash",
]

WorkloadKind = Literal["Deployment", "DaemonSet", "StatefulSet"]
WorkloadAction = Literal["restart", "wait"]

#: The pod-template annotation ``kubectl rollout restart`` sets (and so does this consumer).
RESTARTED_AT_ANNOTATION: Final = "kubectl.kubernetes.io/restartedAt"
#: Who restarts the workload in ``wait`` mode, for messages.
RESTARTERS: Final = "Reloader/VSO/ESO"
#: kubectl's refusal to restart a paused Deployment, word for word.
PAUSED_REFUSAL: Final = "can't restart paused deployment (run rollout resume first)"

#: Page size when listing workloads by label selector.
LIST_PAGE_SIZE: Final = 500

#: How long a caller should wait after losing every attempt to concurrent writers (seconds).
_CONFLICT_DELAY: Final = 5.0
_PATCH_CONTENT_TYPE: Final = "application/strategic-merge-patch+json"


@dataclass(frozen=True)
class _KindApi:
    """How one workload kind is named in the API (``/apis/apps/v1/.../<plural>``)."""

    plural: str


_KINDS: Final[dict[str, _KindApi]] = {
    "Deployment": _KindApi("deployments"),
    "DaemonSet": _KindApi("daemonsets"),
    "StatefulSet": _KindApi("statefulsets"),
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


# -- the consumer ------------------------------------------------------------------------------


class KubernetesWorkloadConsumer:
    """Workloads (one by name, or all matching a selector) that must roll out after a push."""

    def __init__(
        self,
        clients: KubeClients,
        *,
        namespace: str,
        kind: WorkloadKind,
        name: str | None = None,
        selector: Mapping[str, str] | None = None,
        action: WorkloadAction = "restart",
        context: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        conflict_attempts: int = DEFAULT_CONFLICT_ATTEMPTS,
        conflict_backoff: float = DEFAULT_CONFLICT_BACKOFF,
        page_size: int = LIST_PAGE_SIZE,
    ) -> None:
        """Remember what to watch; nothing is read before the first call.

        Exactly one of ``name`` and ``selector`` (a non-empty label map, all labels must match).
        ``clock`` gives the ``restartedAt`` time (aware UTC); ``page_size`` is how many workloads
        one LIST call returns (further pages are followed).
        """
        if kind not in _KINDS:
            raise ConfigError(f"kubernetes-workload: kind must be one of {', '.join(_KINDS)}")
        if action not in get_args(WorkloadAction):
            raise ConfigError("kubernetes-workload: action must be restart or wait")
        if (name is None) == (selector is None) or (selector is not None and not selector):
            raise ConfigError(
                "kubernetes-workload: give either name or a non-empty selector (exactly one)"
            )
        self.clients = clients
        self.namespace = namespace
        self.kind: WorkloadKind = kind
        self.name = name
        self.selector = dict(selector) if selector is not None else None
        self.action: WorkloadAction = action
        self.context = context
        self.clock = clock
        self.conflict_attempts = max(1, conflict_attempts)
        self.conflict_backoff = conflict_backoff
        self.page_size = max(1, page_size)
        self._api = _KINDS[kind]

    # -- Consumer protocol -----------------------------------------------------------------------

    @property
    def id(self) -> str:
        """``kubernetes-workload:ctx/ns/Kind/name`` or ``...:ctx/ns/Kind?k=v,...``."""
        if self.name is not None:
            return self.workload_id(self.name)
        return f"kubernetes-workload:{self._prefix()}?{self.label_selector}"

    @property
    def label_selector(self) -> str:
        """The selector as the API takes it (``k=v,...``, sorted); empty for a named workload."""
        return ",".join(f"{k}={v}" for k, v in sorted((self.selector or {}).items()))

    @property
    def context_label(self) -> str:
        """The context calls go to: this consumer's, else the configured default, else
        ``default`` (the kubeconfig's current context or in-cluster).

        Resolved, so two consumers naming the same cluster differently (one through the
        default) still produce the same workload id and are restarted once.
        """
        return self.clients.context_name(self.context) or "default"

    def workload_id(self, name: str) -> str:
        """The id (and coalescing key) of one workload: the same whichever key observes it."""
        return f"kubernetes-workload:{self._prefix()}/{name}"

    @property
    def plan_action(self) -> Literal["restart", "await"]:
        """How rotation plans list this consumer."""
        return "restart" if self.action == "restart" else "await"

    def describe(self) -> str:
        """One line for plans."""
        if self.name is not None:
            what = f"{self.kind} {self.namespace}/{self.name}"
        else:
            what = f"{self.kind}s matching {self.label_selector} in namespace {self.namespace}"
        context = f"(context {self.context_label})"
        if self.action == "restart":
            return f"restart {what} {context}"
        return f"wait for {RESTARTERS} to roll {what} {context}"

    def resolve(self) -> Resolution:
        """Read-only: does the workload (or any workload of the selector) exist, and can a
        restart switch it? A problem holds a new rotation back while the current key works."""
        if self.name is not None:
            workload = self._get(self.name)
            if workload is None:
                problem = f"{self.kind} {self.namespace}/{self.name} not found"
                return Resolution(self.id, before_create=(problem,), category="fix-config")
            workloads = [workload]
        else:
            workloads = self._list()
            if not workloads:
                problem = (
                    f"no {self.kind} matches {self.label_selector} in namespace {self.namespace}"
                )
                return Resolution(self.id, before_create=(problem,), category="fix-config")
        problems = tuple(p for p in (self.blocked(w) for w in workloads) if p is not None)
        return Resolution(self.id, before_create=problems)

    def observe(self, request: SwitchRequest, done: frozenset[str]) -> list[SwitchState]:
        """Read-only: one state per workload (see the module docstring for the rules).

        ``done`` is not used: a workload's switch is always observable in the cluster.
        """
        if self.name is not None:
            workload = self._get(self.name)
            if workload is None:
                return [self._missing(self.name)]
            return [self.judge(workload, request)]
        workloads = self._list()
        if not workloads:
            return [
                SwitchState(
                    id=self.id,
                    phase="failed",
                    reason=f"no {self.kind} matches {self.label_selector} "
                    f"in namespace {self.namespace}",
                )
            ]
        return [self.judge(workload, request) for workload in workloads]

    def trigger(self, state: SwitchState, requests: Sequence[SwitchRequest]) -> SwitchState:
        """Record every request on the workload of ``state`` and, for restart, restart it.

        One strategic-merge PATCH carrying the resourceVersion read just before (re-read and
        retried on 409). Nothing is written when a restart cannot switch the workload (paused,
        OnDelete, partition) or when every request's record and restart are already in place.
        """
        name = self._name_of(state)

        def attempt() -> SwitchState:
            workload = self._get(name)
            if workload is None:
                return self._missing(name)
            blocked = self.blocked(workload)
            if blocked is not None:
                return self._state(name, "failed", blocked)
            body, done_reason = self._trigger_patch(workload, requests)
            if body is None:
                return self._state(name, "pending", done_reason)
            if self._patch(name, body) is None:  # Conflict on 409: read again
                return self._missing(name)
            return self._state(name, "pending", done_reason)

        try:
            return retry_on_conflict(
                attempt, attempts=self.conflict_attempts, backoff=self.conflict_backoff
            )
        except Conflict:
            raise ConsumerConflict(
                f"{self.workload_id(name)}: {self.kind} {self.namespace}/{name} kept changing "
                f"under us (409 Conflict on {self.conflict_attempts} attempts)",
                delay=_CONFLICT_DELAY,
            ) from None

    # -- decisions -------------------------------------------------------------------------------

    def judge(self, workload: Mapping[str, Any], request: SwitchRequest) -> SwitchState:
        """The state of one workload for ``request``."""
        name = str(workload["metadata"]["name"])
        record = read_records(workload).get(request.managed_key)
        blocked = self.blocked(workload)
        if record is None or record.fingerprint != request.fingerprint:
            if blocked is not None:
                return self._state(name, "failed", blocked)
            if self.action == "restart":
                return self._state(name, "needs-trigger", "not restarted since the push")
            return self._state(
                name, "needs-trigger", f"recording the push, then waiting for {RESTARTERS}"
            )
        current = template_hash((workload.get("spec") or {}).get("template"))
        if current == record.template:
            if blocked is not None:
                return self._state(name, "failed", blocked)
            if self.action == "restart":
                return self._state(
                    name, "needs-trigger", "push recorded but the workload was not restarted"
                )
            return self._state(
                name,
                "pending",
                f"waiting for {RESTARTERS} to roll it (pod template unchanged since the push "
                f"of {record.at} was recorded; if they rolled it before that, run kubectl "
                "rollout restart)",
            )
        return self._rollout_state(name, workload)

    def _rollout_state(self, name: str, workload: Mapping[str, Any]) -> SwitchState:
        """Judge a rollout that started after the record by kubectl's rules."""
        verdict = rollout_status(self.kind, workload)
        partition = partition_of(workload) if self.kind == "StatefulSet" else 0
        if verdict.phase == "failed":
            return self._state(name, "failed", f"rollout failed: {verdict.message}")
        if partition > 0:
            return self._state(name, "failed", self._partition_problem(partition))
        if verdict.phase == "complete":
            return self._state(name, "switched", f"rollout complete: {verdict.message}")
        if self.kind == "Deployment" and (workload.get("spec") or {}).get("paused"):
            return self._state(
                name,
                "failed",
                f"Deployment {name} is paused (run kubectl rollout resume); rollout stopped "
                f"at {verdict.message}",
            )
        return self._state(name, "pending", f"rollout in progress: {verdict.message}")

    def blocked(self, workload: Mapping[str, Any]) -> str | None:
        """Why a trigger cannot switch this workload, or None when it can."""
        spec = workload.get("spec") or {}
        if self.kind == "Deployment":
            if self.action == "restart" and spec.get("paused"):
                return f"Deployment {workload['metadata']['name']}: {PAUSED_REFUSAL}"
            return None
        strategy = (spec.get("updateStrategy") or {}).get("type") or "RollingUpdate"
        if strategy != "RollingUpdate":
            return (
                f"{self.kind} {workload['metadata']['name']} has updateStrategy {strategy}: a "
                "restart replaces no pod (delete its pods by hand or use RollingUpdate)"
            )
        partition = partition_of(workload) if self.kind == "StatefulSet" else 0
        if partition > 0:
            return self._partition_problem(partition)
        return None

    @staticmethod
    def _partition_problem(partition: int) -> str:
        return (
            f"rollingUpdate.partition {partition} keeps pods with ordinal below {partition} on "
            "their old template, so they keep the old key (set the partition to 0)"
        )

    def _trigger_patch(
        self, workload: Mapping[str, Any], requests: Sequence[SwitchRequest]
    ) -> tuple[dict[str, Any] | None, str]:
        """The PATCH body for ``requests`` (None when nothing is left to do) and the reason."""
        meta = workload.get("metadata") or {}
        spec = workload.get("spec") or {}
        template = spec.get("template") or {}
        current = template_hash(template)
        records = read_records(workload)

        def recorded(request: SwitchRequest) -> bool:
            record = records.get(request.managed_key)
            return record is not None and record.fingerprint == request.fingerprint

        def restarted(request: SwitchRequest) -> bool:
            return recorded(request) and records[request.managed_key].template != current

        keys = ", ".join(sorted(r.managed_key for r in requests))
        if self.action == "wait":
            missing = [r for r in requests if not recorded(r)]
            reason = f"push of {keys} recorded; waiting for {RESTARTERS} to roll it"
            if not missing:
                return None, reason
        else:
            if all(restarted(r) for r in requests):
                return None, f"already restarted after the push of {keys}; rollout under way"
            # The restart is the new evidence for every request, so every entry is rewritten.
            missing = list(requests)
        for request in missing:
            records[request.managed_key] = PushRecord(
                request.fingerprint, current, rfc3339(request.pushed_at)
            )
        body: dict[str, Any] = {
            "metadata": {
                "resourceVersion": meta.get("resourceVersion"),
                "annotations": {PUSHED_ANNOTATION: records_json(records)},
            }
        }
        if self.action == "wait":
            return body, reason
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        moment = self.clock()
        stamp = rfc3339(moment)
        while stamp == annotations.get(RESTARTED_AT_ANNOTATION):
            # Same second as the last restart: an unchanged template would roll nothing.
            moment += timedelta(seconds=1)
            stamp = rfc3339(moment)
        body["spec"] = {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}
        return body, f"restarted at {stamp} for {keys}; rollout started"

    # -- identity helpers ------------------------------------------------------------------------

    def _prefix(self) -> str:
        return f"{self.context_label}/{self.namespace}/{self.kind}"

    def _state(self, name: str, phase: SwitchPhase, reason: str) -> SwitchState:
        workload = self.workload_id(name)
        return SwitchState(id=workload, phase=phase, reason=reason, workload=workload)

    def _missing(self, name: str) -> SwitchState:
        """The state of a workload that does not exist: the configuration names it wrongly."""
        return dataclasses.replace(
            self._state(name, "failed", f"{self.kind} {name} not found"), category="fix-config"
        )

    def _name_of(self, state: SwitchState) -> str:
        """The workload name of a state this consumer reported."""
        prefix = f"kubernetes-workload:{self._prefix()}/"
        key = state.workload or state.id
        name = key.removeprefix(prefix)
        if name == key or not name or "/" in name or (self.name not in (None, name)):
            raise ConsumerInvalid(
                f"{self.id}: cannot trigger {key}: not a workload of this consumer"
            )
        return name

    # -- API calls -------------------------------------------------------------------------------

    def _path(self, name: str | None = None) -> str:
        """The API path of this kind's collection, or of one workload (a template)."""
        collection = f"/apis/apps/v1/namespaces/{{namespace}}/{self._api.plural}"
        return collection if name is None else collection + "/{name}"

    def _get(self, name: str) -> dict[str, Any] | None:
        """The workload as raw JSON, or None when it does not exist."""
        with self._translated("get", name):
            try:
                answer = self.clients.call(
                    "GET",
                    self._path(name),
                    context=self.context,
                    path_params={"namespace": self.namespace, "name": name},
                )
            except Exception as exc:
                if status_of(exc) == 404:
                    return None
                raise
        return json_object(answer, self.workload_id(name))

    def _list(self) -> list[dict[str, Any]]:
        """Every workload matching the selector (all pages), sorted by name."""
        found: list[dict[str, Any]] = []
        token: str | None = None
        with self._translated("list", None):
            while True:
                query: dict[str, str | int] = {
                    "labelSelector": self.label_selector,
                    "limit": self.page_size,
                }
                if token:
                    query["continue"] = token
                answer = self.clients.call(
                    "GET",
                    self._path(),
                    context=self.context,
                    path_params={"namespace": self.namespace},
                    query=query,
                )
                page = json_object(answer, self.id)
                items = page.get("items") or []
                found += [item for item in items if isinstance(item, dict)]
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    break
        return sorted(found, key=lambda item: str((item.get("metadata") or {}).get("name")))

    def _patch(self, name: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Strategic-merge PATCH; None when the workload vanished; :class:`Conflict` on 409."""
        with self._translated("patch", name):
            try:
                answer = self.clients.call(
                    "PATCH",
                    self._path(name),
                    context=self.context,
                    path_params={"namespace": self.namespace, "name": name},
                    body=body,
                    content_type=_PATCH_CONTENT_TYPE,
                )
            except Exception as exc:
                status = status_of(exc)
                if status == 404:
                    return None
                if status == 409:
                    raise Conflict from None
                raise
        return json_object(answer, self.workload_id(name))

    @contextmanager
    def _translated(self, verb: str, name: str | None) -> Iterator[None]:
        with translated(
            where=self.workload_id(name) if name is not None else self.id,
            verb=verb,
            resource=self._api.plural,
            namespace=self.namespace,
            timeout=self.clients.request_timeout,
            kinds=CONSUMER_ERRORS,
        ):
            yield


def json_object(answer: Any, where: str) -> dict[str, Any]:
    """``answer`` (parsed JSON of :meth:`KubeClients.call`) when it is an object."""
    if not isinstance(answer, dict):
        raise ConsumerInvalid(f"{where}: the API server's answer is not a JSON object")
    return answer


def map_error(
    exc: BaseException,
    *,
    where: str,
    verb: str,
    resource: str,
    namespace: str,
    timeout: float,
) -> RotatorError:
    """Translate a failure of a workload call (see the module table): the client's one
    translation, :func:`~rotator.clients.kubernetes.map_api_error`, in the ``Consumer*`` family."""
    return map_api_error(
        exc,
        where=where,
        verb=verb,
        resource=resource,
        namespace=namespace,
        timeout=timeout,
        kinds=CONSUMER_ERRORS,
    )
