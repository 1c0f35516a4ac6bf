"""The doctor's building blocks: rows, checks, the per-key report and the environment checks use.

The checks themselves live beside this module (``stackstate_checks``, ``kubernetes_checks``,
``vault_checks``, ``local_checks``); :mod:`rotator.doctor` registers them and runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from rotator import config as cfg
from rotator.clients.kubernetes import KubeClients
from rotator.clients.stackstate import StackStateClient
from rotator.errors import RotatorError
from rotator.permissions import PermissionModel, derive_permissions

if TYPE_CHECKING:  # hvac loads only with a vault: section (clients.vault imports it)
    from rotator.clients.vault import VaultSession

T = TypeVar("T")


@dataclass(frozen=True)
class CheckResult:
    """One row of a managed key's ``checks``: what was checked, on what, and the verdict."""

    #: The check's registered name, e.g. ``kubernetes-rbac``.
    check: str
    #: What was checked: an object, a path, a URL (never a value).
    subject: str
    ok: bool
    #: One line: what was found.
    detail: str
    #: One line: what to do; None when there is nothing to do. Set on an ok row: a warning.
    fix: str | None = None

    @property
    def warning(self) -> bool:
        """Passed, but with a suggestion (e.g. an optional permission is missing)."""
        return self.ok and self.fix is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``rotator doctor -o json`` (README, "rotator doctor")."""
        return {
            "check": self.check,
            "subject": self.subject,
            "ok": self.ok,
            "detail": self.detail,
            "fix": self.fix,
        }


class CheckFunction(Protocol):
    """A doctor check: every row it has to say about one managed key, read-only.

    It may ask shared systems through :meth:`DoctorEnv.shared` so that several keys cost one
    request. It returns findings as rows (``ok: false``) rather than raising; a RotatorError it
    lets escape becomes one failed row.
    """

    def __call__(self, env: DoctorEnv, key: cfg.ManagedKey) -> Iterable[CheckResult]: ...


@dataclass(frozen=True)
class DoctorCheck:
    """A check function under its name (the ``check`` field of its rows)."""

    name: str
    run: CheckFunction


@dataclass(frozen=True)
class KeyReport:
    """Every row for one managed key."""

    key: str
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(result.ok for result in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """One entry of ``keys`` in the JSON output."""
        return {"key": self.key, "checks": [result.to_dict() for result in self.checks]}


class DoctorEnv:
    """What checks may use: the configuration, its permission model and the live connections."""

    def __init__(
        self,
        config: cfg.RotatorConfig,
        *,
        stackstate: StackStateClient,
        kube: KubeClients,
        vault: VaultSession | None,
        permissions: PermissionModel | None = None,
    ) -> None:
        self.config = config
        self.stackstate = stackstate
        self.kube = kube
        self.vault = vault
        self.permissions = permissions if permissions is not None else derive_permissions(config)
        self._memo: dict[Hashable, Any] = {}

    def shared(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()`` once per run for ``key``; later calls get the same answer.

        ``compute`` must not raise: it returns its finding (checks ask shared systems once,
        whatever the number of managed keys, and report the answer under each).
        """
        if key not in self._memo:
            self._memo[key] = compute()
        result: T = self._memo[key]
        return result

    def context_label(self, context: str | None) -> str:
        """How a kubeconfig context is named in rows (``in-cluster`` / ``current context``)."""
        name = self.kube.context_name(context)
        if name:
            return f"context {name}"
        return "in-cluster" if self.kube.in_cluster else "current context"


def doctor_document(reports: Sequence[KeyReport]) -> dict[str, Any]:
    """The whole JSON document of ``rotator doctor -o json``."""
    return {"keys": [report.to_dict() for report in reports]}


def fix_for(exc: RotatorError) -> str:
    """A generic next step for an error a check did not expect, by its category."""
    return {
        "retry": "a temporary failure: run rotator doctor again",
        "fix-config": "fix the configuration named in the message",
        "fix-permissions": "grant the permission named in the message",
        "wait": "wait, then run rotator doctor again",
    }.get(exc.category, "read the message; a person has to decide")
