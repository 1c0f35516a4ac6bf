"""The one small Protocol every consumer satisfies, and the switch-over state it reports.

A consumer is something that reads a managed key's value and must switch to a new one: a
Kubernetes workload (restarted by us or by Reloader/VSO/ESO), a Secret synced from Vault, a
command (``systemctl restart stackstate-agent``). The engine deletes the previous key only once
every consumer *demonstrably* switched (invariant I2), so a consumer reports evidence, not hope.

The engine calls, for the value currently held by the targets (identified by ``fingerprint``,
pushed at ``pushed_at``):

- :meth:`Consumer.observe` — read-only (allowed in a dry-run): has it switched, does it need a
  trigger, has it failed? Workload consumers may hold several workloads (a label selector).
- :meth:`Consumer.trigger` — act once: restart, run the command. Only called when ``observe``
  said ``needs-trigger``; the engine coalesces workload restarts across managed keys by
  :attr:`SwitchState.workload`, so one workload is restarted once per run whatever number of
  rotated keys it consumes (all of them passed as :class:`SwitchRequest`).

Nothing is kept locally: a consumer's progress is read back from the cluster (the rollout, the
restart annotation, a record annotation on the workload) or, for commands whose effect cannot be
observed, from the ``done`` list in the targets' metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from rotator.errors import Category
from rotator.secrets import Secret

SwitchPhase = Literal["switched", "pending", "needs-trigger", "failed"]


@dataclass(frozen=True)
class SwitchState:
    """What one consumer (or one workload of it) says about the switch to a value."""

    #: Identity of what was observed (a workload consumer with a selector reports one state
    #: per matching workload, each with its own id).
    id: str
    phase: SwitchPhase
    #: Human-readable evidence, e.g. "rollout complete (3/3 updated) after restart at ...".
    reason: str
    #: For workload restarts: a key identifying the workload (context/namespace/kind/name) so
    #: the engine restarts it once however many managed keys it consumes.
    workload: str | None = None
    #: For a failed state: what to do about it (None: a person must decide, ``human``).
    category: Category | None = None

    @property
    def switched(self) -> bool:
        """Whether the consumer demonstrably runs with the value."""
        return self.phase == "switched"

    @property
    def failed(self) -> bool:
        """Whether the switch failed for good (paused, deadline exceeded, command failed)."""
        return self.phase == "failed"


@dataclass(frozen=True)
class SwitchRequest:
    """One managed key's value a consumer must switch to."""

    managed_key: str
    fingerprint: str
    pushed_at: datetime
    #: The value itself, only for consumers that take it (a command with ``pass_key: stdin``).
    value: Secret | None = None


@dataclass(frozen=True)
class Reader:
    """Something found reading a managed key's value, and how it reads it."""

    #: ``kubernetes-workload:ctx/ns/Kind/name`` (or ``.../CronJob/name`` for informational ones).
    id: str
    #: How, e.g. ``env STS_API_KEY (secretKeyRef)``, ``envFrom secretRef``, ``volume config``.
    how: str
    #: False for readers the rotator never restarts (Jobs and CronJobs read it when they start).
    restarted: bool = True


@dataclass(frozen=True)
class Resolution:
    """What a consumer stands for in this run, checked before anything is written.

    ``blocking`` problems hold every step of the key (no reader at all, readers still on another
    Secret: revoking would cut them off). ``before_create`` problems hold only a new rotation:
    the consumer cannot switch now (missing, paused, ``OnDelete``), while the current key works.
    """

    consumer: str
    readers: tuple[Reader, ...] = ()
    blocking: tuple[str, ...] = ()
    before_create: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: What to do about the problems.
    category: Category = "human"
    #: Secrets (context, namespace, name) other than the targets that readers read the key
    #: from: a key they hold must never be swept.
    other_secrets: tuple[tuple[str | None, str, str], ...] = ()


def consumer_token(consumer_id: str) -> str:
    """A short, stable token for a consumer id, stored in metadata ``done`` lists."""
    return hashlib.sha256(consumer_id.encode()).hexdigest()[:10]


@runtime_checkable
class Consumer(Protocol):
    """One consumer of a managed key's value."""

    @property
    def id(self) -> str:
        """Stable, human-readable identity, e.g. ``kubernetes-workload:ctx/ns/Deployment/x``."""
        ...

    def describe(self) -> str:
        """One line for plans and logs."""
        ...

    @property
    def plan_action(self) -> Literal["restart", "await"]:
        """How a rotation plan lists this consumer: ``restart`` when the rotator acts (restart,
        run a command), ``await`` when something else does (Reloader, ESO/VSO)."""
        ...

    def resolve(self) -> Resolution:
        """Read-only, every run, before planning: what this consumer covers now (discovered
        readers) and what would stop it from switching. Raises a RotatorError when it cannot
        be read."""
        ...

    def observe(self, request: SwitchRequest, done: frozenset[str]) -> list[SwitchState]:
        """Read-only: the switch state of each thing this consumer covers, for ``request``.

        ``done`` holds :func:`consumer_token` values recorded as switched in the targets'
        metadata (for consumers whose effect cannot be observed, like commands). Raises a
        RotatorError when the state cannot be read.
        """
        ...

    def trigger(self, state: SwitchState, requests: Sequence[SwitchRequest]) -> SwitchState:
        """Act once for ``state`` (restart, record, run); return the state right after acting.

        ``requests`` lists every managed key whose new value this consumer must switch to in
        this run (several when one workload consumes several rotated keys: it is restarted
        once, recording all of them). Raises a RotatorError when the action failed.
        """
        ...
