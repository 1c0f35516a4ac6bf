"""The leader-election Lease: one ``coordination.k8s.io/v1`` Lease read and written as a lock.

:class:`LeaseLock` reads, creates and replaces one Lease of a kubeconfig context, as raw JSON by
path (:meth:`~rotator.clients.kubernetes.KubeClients.call`: no API class of the client loads);
:class:`~rotator.daemon.leader.LeaderElector` runs client-go's election on it, and
:mod:`rotator.handoff` passes ``rotate`` requests to the leader in its annotations.

``MicroTime`` values always carry six fractional digits (``2006-01-02T15:04:05.000000Z``): the API
server rejects the form ``datetime.isoformat()`` produces at microsecond 0, and the client
serialises every datetime with ``isoformat()``. :class:`MicroTime` is a ``datetime`` whose
``isoformat`` writes the six digits, so the client's own serialisation sends the right text.

Errors of the API are translated by the Kubernetes client's one translation
(:func:`rotator.clients.kubernetes.map_api_error`) into the ``Lease*`` family::

    409 ....................................... LeaseConflict (a concurrent writer won)
    401, 403 .................................. LeaseForbidden
    404 (create: no namespace; update: gone),
      400, 422, other 4xx ..................... LeaseInvalid
    429, 5xx, connection failures, timeouts ... LeaseUnavailable

A missing Lease on GET is not an error: :meth:`LeaseLock.get` returns None.

**Annotations.** A PUT replaces the whole object, so every write carries the annotations of the
record it was computed from: a renewal never drops a request someone wrote meanwhile (a write in
between changes the ``resourceVersion``, and the renewal's PUT gets 409).
:meth:`LeaseLock.update_annotations` is a read-modify-write of the annotations alone, retried on
409 (:func:`~rotator.clients.kubernetes.retry_on_conflict`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from rotator.clients.kubernetes import KubeClients, retry_on_conflict, status_of, translated
from rotator.errors import LEASE_ERRORS, LeaseConflict, LeaseInvalid

#: API paths of the Leases of a namespace and of one Lease.
_LEASES: Final = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
_LEASE: Final = _LEASES + "/{name}"

#: strftime format of a Kubernetes ``MicroTime`` (always six fractional digits, UTC).
MICROTIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"

#: Attempts of a read-modify-write of the annotations before a run of 409s wins.
ANNOTATION_ATTEMPTS: Final = 8

#: ``change`` of :meth:`LeaseLock.update_annotations`: the new annotations, or None to write
#: nothing (the current ones do not allow the change, or already have it).
AnnotationChange = Callable[[Mapping[str, str]], Mapping[str, str] | None]


class MicroTime(datetime):
    """A UTC ``datetime`` that serialises as a Kubernetes ``MicroTime`` with six digits.

    The Python client turns datetimes into JSON with ``isoformat()``; overriding it here makes
    the request carry ``2025-06-01T12:00:00.000000Z`` rather than ``...12:00:00+00:00``.
    """

    @classmethod
    def of(cls, moment: datetime) -> MicroTime:
        """``moment`` (timezone-aware) in UTC as a MicroTime."""
        if moment.tzinfo is None:
            raise ValueError("a MicroTime needs a timezone-aware datetime")
        utc = moment.astimezone(UTC)
        return cls(
            utc.year,
            utc.month,
            utc.day,
            utc.hour,
            utc.minute,
            utc.second,
            utc.microsecond,
            tzinfo=UTC,
        )

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        """The MicroTime text; ``sep`` and ``timespec`` are ignored (the format is fixed)."""
        return format_microtime(self)


def format_microtime(moment: datetime) -> str:
    """``moment`` (timezone-aware) as a Kubernetes MicroTime: UTC, six fractional digits, Z."""
    if moment.tzinfo is None:
        raise ValueError("a MicroTime needs a timezone-aware datetime")
    return moment.astimezone(UTC).strftime(MICROTIME_FORMAT)


@dataclass(frozen=True)
class LeaderRecord:
    """The election fields of a Lease's spec; ``holder`` is "" when nobody holds it.

    Two records are equal when their election fields are: ``resource_version`` and
    ``annotations`` are not compared, so "the record changed" means what client-go's raw-record
    comparison means.
    """

    holder: str
    lease_duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str | None = field(default=None, compare=False)
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False)


class LeaseLock:
    """One Lease, read and written as raw JSON by path (:meth:`KubeClients.call`) in a context."""

    def __init__(
        self,
        clients: KubeClients,
        *,
        namespace: str,
        name: str,
        identity: str,
        context: str | None = None,
    ) -> None:
        """Remember where the Lease lives; nothing is read before the first call."""
        self.clients = clients
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.context = context

    def describe(self) -> str:
        """``namespace/name`` of the Lease, for messages."""
        return f"{self.namespace}/{self.name}"

    def get(self) -> LeaderRecord | None:
        """The Lease's record, or None when the Lease does not exist."""
        with self._translated("get"):
            try:
                lease = self._call("GET", _LEASE)
            except Exception as exc:
                if status_of(exc) == 404:
                    return None
                raise
        return _record_of(lease)

    def create(self, record: LeaderRecord) -> LeaderRecord:
        """Create the Lease holding ``record``; returns what the server stored.

        :raises LeaseConflict: someone created the Lease first.
        """
        with self._translated("create"):
            lease = self._call("POST", _LEASES, self._body(record, None))
        return _record_of(lease)

    def update(self, record: LeaderRecord, resource_version: str | None) -> LeaderRecord:
        """Replace the Lease's record, guarded by ``resource_version``; returns what was stored.

        :raises LeaseConflict: the Lease changed since ``resource_version`` was read.
        """
        with self._translated("update"):
            lease = self._call("PUT", _LEASE, self._body(record, resource_version))
        return _record_of(lease)

    def update_annotations(
        self, change: AnnotationChange, *, holder: str | None = None
    ) -> LeaderRecord | None:
        """Read the Lease, let ``change`` compute its new annotations, write them back.

        The write carries the ``resourceVersion`` read and the spec as read, so it changes
        nothing of the election; on 409 the read-modify-write starts again (at most
        :data:`ANNOTATION_ATTEMPTS` times). Returns the stored record, or None when nothing was
        written: the Lease does not exist, ``holder`` is given and does not hold it, or
        ``change`` answered None.

        :raises LeaseConflict: every attempt lost to a concurrent writer.
        """

        def attempt() -> LeaderRecord | None:
            current = self.get()
            if current is None or (holder is not None and current.holder != holder):
                return None
            wanted = change(current.annotations)
            if wanted is None:
                return None
            return self.update(replace(current, annotations=dict(wanted)), current.resource_version)

        return retry_on_conflict(
            attempt, attempts=ANNOTATION_ATTEMPTS, backoff=0.0, conflict=LeaseConflict
        )

    def __repr__(self) -> str:
        return f"LeaseLock({self.describe()}, identity={self.identity!r}, context={self.context!r})"

    # -- internals -------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.clients.call(
            method,
            path,
            context=self.context,
            path_params={"namespace": self.namespace, "name": self.name},
            body=body,
        )

    def _body(self, record: LeaderRecord, resource_version: str | None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": record.holder,
            "leaseDurationSeconds": record.lease_duration_seconds,
            "leaseTransitions": record.transitions,
        }
        # MicroTime instances: the client serialises them with their six-digit isoformat().
        if record.acquire_time is not None:
            spec["acquireTime"] = MicroTime.of(record.acquire_time)
        if record.renew_time is not None:
            spec["renewTime"] = MicroTime.of(record.renew_time)
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        if record.annotations:
            metadata["annotations"] = dict(record.annotations)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def _translated(self, verb: str) -> contextlib.AbstractContextManager[None]:
        return translated(
            where=f"lease {self.describe()}",
            verb=verb,
            resource="leases",
            namespace=self.namespace,
            timeout=self.clients.request_timeout,
            kinds=LEASE_ERRORS,
        )


def _record_of(lease: Any) -> LeaderRecord:
    """The record of a Lease as the API server answered it (JSON); odd fields read as unset."""
    if not isinstance(lease, dict):
        raise LeaseInvalid("the API server's answer is not a Lease (not a JSON object)")
    spec = _mapping(lease.get("spec"))
    metadata = _mapping(lease.get("metadata"))
    version = metadata.get("resourceVersion")
    return LeaderRecord(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration_seconds=_int(spec.get("leaseDurationSeconds")),
        acquire_time=_moment(spec.get("acquireTime")),
        renew_time=_moment(spec.get("renewTime")),
        transitions=_int(spec.get("leaseTransitions")),
        resource_version=str(version) if version else None,
        annotations={str(k): str(v) for k, v in _mapping(metadata.get("annotations")).items()},
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _moment(value: Any) -> datetime | None:
    """A ``MicroTime`` text as an aware datetime (UTC when it names no zone); None if unset."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
