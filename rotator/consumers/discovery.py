"""Discovered consumers: every workload whose pod template reads a managed key's Secret.

Charts add and drop components between versions (the agent chart's ``rbac-agent`` reads the key
through ``envFrom`` and was missing from every hand-written list), so a fixed list of workloads
goes stale. Like Reloader's auto mode, a ``kubernetes-workload`` consumer with ``discover: true``
finds its workloads afresh on every run: each Deployment, DaemonSet and StatefulSet of the Secret's
namespace whose pod template reads the data key by any of

- ``env[].valueFrom.secretKeyRef`` naming the Secret and the data key;
- ``envFrom[].secretRef`` naming the Secret (the whole Secret becomes environment);
- a ``secret`` volume of the Secret without ``items``, or with an item for the data key;
- a ``projected`` volume with a ``secret`` source of that kind;

in any container or init container. Each reader is then judged and restarted exactly like a
named workload (:class:`~rotator.consumers.kubernetes_workload.KubernetesWorkloadConsumer`), with
the same workload id, so a workload found by two keys is restarted once.

CronJobs and Jobs read the Secret when their pods start: they are listed as informational readers
and never restarted. Listing them needs ``list`` on ``batch/v1``; where that is refused the
resolution carries a warning, not a problem.

Safety rules (invariant I2: the previous key is revoked only once every reader switched):

- no reader at all is a *blocking* problem, never "all 0 consumers switched";
- readers of a *legacy* Secret (the chart's own ``<release>-secrets`` that a preset migrates
  away from) still use the old key: a blocking problem with the migration steps;
- a reader that a restart cannot switch (paused, ``OnDelete``, a partition) holds a new rotation.

Listing: one LIST per workload kind and namespace per run, shared by every discovering consumer
of every key in that namespace (:mod:`rotator.shared_reads`); it needs ``list`` on the workloads,
never a Secret privilege.

One resolution per run: :meth:`DiscoveredWorkloads.resolve` lists the workloads and remembers
them; :meth:`observe` and :meth:`trigger` in the same run act on that list, so a workload that
appears after the push is the next run's business (where it counts as switched once its own
rollout completes after the push).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from rotator.clients.kubernetes import KubeClients, translated
from rotator.consumers.base import Reader, Resolution, SwitchRequest, SwitchState
from rotator.consumers.kubernetes_workload import (
    LIST_PAGE_SIZE,
    RESTARTERS,
    KubernetesWorkloadConsumer,
    WorkloadAction,
    WorkloadKind,
    json_object,
)
from rotator.errors import CONSUMER_ERRORS, ConsumerForbidden, ConsumerInvalid
from rotator.shared_reads import shared

#: Workload kinds searched (``apps/v1``), with their resource name.
_WORKLOADS: Final[tuple[tuple[WorkloadKind, str], ...]] = (
    ("Deployment", "deployments"),
    ("DaemonSet", "daemonsets"),
    ("StatefulSet", "statefulsets"),
)
#: Informational kinds (``batch/v1``), with where their pod template sits.
_BATCH: Final[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
    ("CronJob", "cronjobs", ("spec", "jobTemplate", "spec", "template")),
    ("Job", "jobs", ("spec", "template")),
)


# -- pure: how a pod template reads a Secret ----------------------------------------------------


def template_reads(template: Any, secret: str, key: str) -> list[str]:
    """How a pod template reads data key ``key`` of Secret ``secret`` (empty: it does not).

    Each entry is one way, for people: ``container agent: env STS_API_KEY (secretKeyRef)``.
    """
    if not isinstance(template, Mapping):
        return []
    spec = template.get("spec")
    if not isinstance(spec, Mapping):
        return []
    found: list[str] = []
    for group in ("initContainers", "containers"):
        for container in _dicts(spec.get(group)):
            where = f"container {container.get('name', '?')}"
            for env in _dicts(container.get("env")):
                ref = _path(env, "valueFrom", "secretKeyRef")
                if isinstance(ref, Mapping) and ref.get("name") == secret and ref.get("key") == key:
                    found.append(f"{where}: env {env.get('name', '?')} (secretKeyRef)")
            for source in _dicts(container.get("envFrom")):
                ref = source.get("secretRef")
                if isinstance(ref, Mapping) and ref.get("name") == secret:
                    prefix = source.get("prefix")
                    extra = f", prefix {prefix}" if prefix else ""
                    found.append(f"{where}: envFrom secretRef{extra}")
    for volume in _dicts(spec.get("volumes")):
        name = volume.get("name", "?")
        plain = volume.get("secret")
        if (
            isinstance(plain, Mapping)
            and plain.get("secretName") == secret
            and _items_include(plain.get("items"), key)
        ):
            found.append(f"volume {name} (secret)")
        projected = volume.get("projected")
        if isinstance(projected, Mapping):
            for source in _dicts(projected.get("sources")):
                ref = source.get("secret")
                if (
                    isinstance(ref, Mapping)
                    and ref.get("name") == secret
                    and _items_include(ref.get("items"), key)
                ):
                    found.append(f"volume {name} (projected secret)")
    return found


def _items_include(items: Any, key: str) -> bool:
    """A volume without ``items`` projects every key; with items, only those listed."""
    if items is None:
        return True
    return any(item.get("key") == key for item in _dicts(items))


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, Mapping))


def _path(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "?")


@dataclass(frozen=True)
class _Found:
    kind: WorkloadKind
    obj: dict[str, Any]


# -- the consumer --------------------------------------------------------------------------------


class DiscoveredWorkloads:
    """Every workload of a namespace that reads one data key of one Secret, found each run."""

    def __init__(
        self,
        clients: KubeClients,
        *,
        namespace: str,
        secret: str,
        key: str,
        action: WorkloadAction = "restart",
        context: str | None = None,
        legacy_secrets: Sequence[str] = (),
        migration_hint: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        page_size: int = LIST_PAGE_SIZE,
    ) -> None:
        """``legacy_secrets`` are Secrets readers must have left (with the same data key);
        ``migration_hint`` tells people how (the chart values that point at ``secret``)."""
        self.clients = clients
        self.namespace = namespace
        self.secret = secret
        self.key = key
        self.action: WorkloadAction = action
        self.context = context
        self.legacy_secrets = tuple(s for s in legacy_secrets if s != secret)
        self.migration_hint = migration_hint
        self.page_size = max(1, page_size)
        self._clock = clock
        self._found: list[_Found] | None = None
        self._named: dict[WorkloadKind, KubernetesWorkloadConsumer] = {}

    # -- Consumer protocol -----------------------------------------------------------------------

    @property
    def context_label(self) -> str:
        """The context calls go to (resolved, as workload ids use it)."""
        return self.clients.context_name(self.context) or "default"

    @property
    def id(self) -> str:
        """``kubernetes-workload:ctx/ns/*?reads=<secret>[<key>]``."""
        return (
            f"kubernetes-workload:{self.context_label}/{self.namespace}/*"
            f"?reads={self.secret}[{self.key}]"
        )

    @property
    def plan_action(self) -> Literal["restart", "await"]:
        """How rotation plans list this consumer."""
        return "restart" if self.action == "restart" else "await"

    def describe(self) -> str:
        """One line for plans (with the readers found, once resolved)."""
        what = f"every workload reading Secret {self.namespace}/{self.secret} key {self.key}"
        if self._found is not None:
            names = ", ".join(f"{f.kind}/{_name(f.obj)}" for f in self._found)
            what += f" ({len(self._found)} found: {names or 'none'})"
        if self.action == "restart":
            return f"restart {what} (context {self.context_label})"
        return f"wait for {RESTARTERS} to roll {what} (context {self.context_label})"

    def resolve(self) -> Resolution:
        """List the namespace's workloads (and Jobs/CronJobs) and judge what reads the key."""
        found: list[_Found] = []
        readers: list[Reader] = []
        stale: list[str] = []
        other: set[str] = set()
        for kind, plural in _WORKLOADS:
            for obj in self._list_apps(plural):
                template = _path(obj, "spec", "template")
                ways = template_reads(template, self.secret, self.key)
                if ways:
                    found.append(_Found(kind, obj))
                    readers.append(
                        Reader(self._consumer(kind).workload_id(_name(obj)), "; ".join(ways))
                    )
                for legacy in self.legacy_secrets:
                    if template_reads(template, legacy, self.key):
                        stale.append(f"{kind} {_name(obj)} reads Secret {legacy}")
                        other.add(legacy)
        warnings: list[str] = []
        for batch_kind, plural, where in _BATCH:
            try:
                items = self._list_batch(plural)
            except ConsumerForbidden as exc:
                warnings.append(f"cannot list {plural} to find more readers: {exc.message}")
                continue
            for obj in items:
                ways = template_reads(_path(obj, *where), self.secret, self.key)
                if ways:
                    ident = (
                        f"kubernetes-workload:{self.context_label}/{self.namespace}/{batch_kind}"
                    )
                    readers.append(
                        Reader(
                            f"{ident}/{_name(obj)}",
                            "; ".join(ways) + " (read when its pods start; never restarted)",
                            restarted=False,
                        )
                    )
        self._found = found
        blocking: list[str] = []
        if stale:
            blocking.append(
                f"{len(stale)} workload(s) still read the key from another Secret "
                f"({'; '.join(stale)}): they would keep the old key, so nothing is rotated or "
                f"revoked until they read Secret {self.secret}" + self._hint()
            )
        if not found:
            blocking.append(
                f"no Deployment, DaemonSet or StatefulSet in namespace {self.namespace} reads "
                f"Secret {self.secret} key {self.key}" + self._hint()
            )
        before_create = tuple(
            f"{f.kind} {_name(f.obj)}: {problem}"
            for f in found
            if (problem := self._consumer(f.kind).blocked(f.obj)) is not None
        )
        return Resolution(
            self.id,
            readers=tuple(readers),
            blocking=tuple(blocking),
            before_create=before_create,
            warnings=tuple(warnings),
            other_secrets=tuple((self.context, self.namespace, name) for name in sorted(other)),
        )

    def observe(self, request: SwitchRequest, done: frozenset[str]) -> list[SwitchState]:
        """Each reader's switch state (resolving first when this run has not yet)."""
        if self._found is None:
            self.resolve()
        assert self._found is not None
        return [self._consumer(f.kind).judge(f.obj, request) for f in self._found]

    def trigger(self, state: SwitchState, requests: Sequence[SwitchRequest]) -> SwitchState:
        """Restart (or record for ``wait``) the reader ``state`` names, as a named consumer."""
        ident = state.workload or state.id
        for kind, _ in _WORKLOADS:
            prefix = f"kubernetes-workload:{self.context_label}/{self.namespace}/{kind}/"
            if ident.startswith(prefix):
                return self._consumer(kind).trigger(state, requests)
        raise ConsumerInvalid(f"{self.id}: cannot trigger {ident}: not a workload it discovered")

    # -- helpers ---------------------------------------------------------------------------------

    def _hint(self) -> str:
        return f". {self.migration_hint}" if self.migration_hint else ""

    def _consumer(self, kind: WorkloadKind) -> KubernetesWorkloadConsumer:
        """The judge and restarter of one kind's readers (its selector is never listed: only
        ids, :meth:`judge`, :meth:`blocked` and :meth:`trigger` by workload id are used)."""
        consumer = self._named.get(kind)
        if consumer is None:
            consumer = KubernetesWorkloadConsumer(
                self.clients,
                namespace=self.namespace,
                kind=kind,
                selector={"discovered": "true"},
                action=self.action,
                context=self.context,
                clock=self._clock,
            )
            self._named[kind] = consumer
        return consumer

    def _list_apps(self, plural: str) -> list[dict[str, Any]]:
        return self._pages(f"/apis/apps/v1/namespaces/{{namespace}}/{plural}", plural)

    def _list_batch(self, plural: str) -> list[dict[str, Any]]:
        return self._pages(f"/apis/batch/v1/namespaces/{{namespace}}/{plural}", plural)

    def _pages(self, path: str, plural: str) -> list[dict[str, Any]]:
        """Every object of one LIST (all pages), raw JSON, sorted by name.

        Within one observation (:mod:`rotator.shared_reads`) each (context, namespace, kind) is
        listed once for every discovering consumer of every key; the objects are shared and
        only read."""
        key = ("discovery", id(self.clients), self.context_label, self.namespace, plural)
        return shared(key, lambda: self._fetch_pages(path, plural))

    def _fetch_pages(self, path: str, plural: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: str | None = None
        # Named by namespace, not by this consumer: every consumer sharing the LIST shows it.
        where = f"kubernetes-workload:{self.context_label}/{self.namespace}/*"
        with self._translated(plural, where):
            while True:
                query: dict[str, str | int] = {"limit": self.page_size}
                if token:
                    query["continue"] = token
                answer = self.clients.call(
                    "GET",
                    path,
                    context=self.context,
                    path_params={"namespace": self.namespace},
                    query=query,
                )
                page = json_object(answer, where)
                found += [i for i in page.get("items") or [] if isinstance(i, dict)]
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    break
        return sorted(found, key=_name)

    @contextmanager
    def _translated(self, plural: str, where: str) -> Iterator[None]:
        with translated(
            where=where,
            verb="list",
            resource=plural,
            namespace=self.namespace,
            timeout=self.clients.request_timeout,
            kinds=CONSUMER_ERRORS,
        ):
            yield
