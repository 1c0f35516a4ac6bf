"""How the service runs: its HTTP endpoints, leader election, the lock of writing runs, and the
audit history."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Final, Literal

from pydantic import Field, field_validator, model_validator

from rotator.config.base import ConfigModel, raise_problems
from rotator.config.types import (
    ConfigPath,
    Namespace,
    NonEmptyStr,
    ObjectName,
    PositiveDuration,
    VaultMount,
    VaultPath,
)


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError('must be "host:port" with a port from 0 to 65535, e.g. 0.0.0.0:9108')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(char.isspace() for char in host):
        raise ValueError('must be "host:port", e.g. 0.0.0.0:9108 or [::]:9108')
    return host, int(port)


#: Bounds of ``workers``: reads in flight at once (each holds one pooled connection).
MIN_WORKERS: Final = 1
MAX_WORKERS: Final = 64

#: ``workers``: how many target reads and consumer look-ups of one run overlap.
Workers = Annotated[int, Field(ge=MIN_WORKERS, le=MAX_WORKERS)]


class ServerSettings(ConfigModel):
    """The daemon's HTTP endpoints: /metrics, /healthz, /readyz."""

    listen: str = "0.0.0.0:9108"
    """Address to listen on: host:port ([::]:port for IPv6; port 0 picks a free one)."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _split_listen(value.strip())
        return value.strip()

    @property
    def host(self) -> str:
        """The host part of ``listen`` (brackets of an IPv6 address removed)."""
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port part of ``listen``."""
        return _split_listen(self.listen)[1]


#: client-go's JitterFactor: renew_deadline must exceed retry_period by this factor.
_LEADER_JITTER: Final = 1.2


class LeaderElectionSettings(ConfigModel):
    """Several replicas elect one active leader through a coordination.k8s.io Lease."""

    enabled: bool = False
    namespace: Namespace | None = None
    """Namespace of the Lease (required when enabled)."""
    lease_name: ObjectName = "stackstate-key-rotator"
    lease_duration: PositiveDuration = timedelta(seconds=15)
    """How long a lease is valid without renewal."""
    renew_deadline: PositiveDuration = timedelta(seconds=10)
    """The leader gives up leadership when it could not renew for this long."""
    retry_period: PositiveDuration = timedelta(seconds=2)
    """Time between attempts to acquire or renew."""
    identity: NonEmptyStr | None = None
    """Holder identity; default: the host (pod) name."""
    context: NonEmptyStr | None = None
    """Kubeconfig context of the cluster holding the Lease."""

    @model_validator(mode="after")
    def _timings(self) -> LeaderElectionSettings:
        problems = []
        if self.enabled and self.namespace is None:
            problems.append(("namespace", "required when leader election is enabled"))
        if self.renew_deadline >= self.lease_duration:
            problems.append(("renew_deadline", "must be shorter than lease_duration"))
        elif self.renew_deadline <= self.retry_period * _LEADER_JITTER:
            problems.append(
                ("retry_period", "must be shorter than renew_deadline / 1.2 (as in client-go)")
            )
        if problems:
            raise_problems(problems)
        return self


#: The kinds of shared lock a writing run takes (see :class:`LockSettings`).
LockType = Literal["lease", "vault", "file"]


class LockSettings(ConfigModel):
    """The lock that lets one actor at a time write: ``rotate`` runs and the daemon's leader.

    ``lease`` is the ``leader_election`` Lease (its namespace, name and timings): a ``rotate``
    finding a live daemon holding it hands its request over to that daemon, otherwise it holds
    the Lease for the duration of its run. ``vault`` is a check-and-set entry in Vault KV v2, for
    hosts without Kubernetes. ``file`` is the per-config lock file: one machine only.
    """

    type: LockType | None = None
    """lease, vault or file; default: lease when leader_election is enabled, else file."""
    mount: VaultMount = "secret"
    """vault: the KV v2 mount holding the lock entry."""
    path: VaultPath = "stackstate-key-rotator/lock"
    """vault: path of the lock entry (holder and expiry in its data)."""
    ttl: PositiveDuration = timedelta(seconds=60)
    """vault: the entry expires this long after its last renewal (renewed every ttl/3)."""

    def effective_type(self, leader_election: LeaderElectionSettings) -> LockType:
        """The lock in use: ``type``, else lease with leader election, else file."""
        if self.type is not None:
            return self.type
        return "lease" if leader_election.enabled else "file"


class HistorySettings(ConfigModel):
    """The audit history: every action and outcome appended as JSON lines (optional)."""

    path: ConfigPath | None = None
    """JSON-lines file; null keeps no history (the daemon needs no writable disk)."""
    max_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024
    """When the file grows past this it is rotated once to <path>.1."""
