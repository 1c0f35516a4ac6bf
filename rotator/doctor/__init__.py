"""``rotator doctor``: read-only checks of the live systems, reported per managed key.

Every check is a function with the :class:`CheckFunction` signature, registered with a name in
:data:`CHECKS`; :func:`run_checks` calls each for each managed key and collects
:class:`CheckResult` rows, the ``checks`` list of the JSON contract (README, "rotator doctor")::

    {"keys": [{"key": "<managed name>",
               "checks": [{"check", "subject", "ok", "detail", "fix"}]}]}

A result with ``ok: true`` and a ``fix`` is a warning (an optional permission is missing, say):
nothing is broken, but something could be better.

Shared systems (StackState, each Kubernetes context, Vault) are asked once per run — the
answers are memoised in :meth:`DoctorEnv.shared` — and reported under every managed key that
depends on them, so the document holds managed keys only (no synthetic "global" entry). The
leader-election Lease, which every key needs when the daemon runs with several replicas, is
checked under every key the same way. A check of a system that is not reachable is skipped: the
``*-reachable`` check already says why.

What each check asks (all read-only, invariant I5):

====================  ========================================================================
stackstate-reachable  ``GET /server/info`` with the configured credential
stackstate-permission ``GET /user/authorization/for?permission=manage-service-tokens`` (or
                      ``manage-ingestion-api-keys``) for the caller's own credential, then a
                      plain list of the kind: the ground truth
kubernetes-reachable  ``GET /version`` of every context the key uses
kubernetes-rbac       one SelfSubjectAccessReview per permission of
                      :func:`rotator.permissions.derive_permissions` (a POST that stores
                      nothing); a denied optional ``create`` GETs the objects it is for, and
                      fails only when one is missing
vault-reachable       ``GET /v1/sys/health`` (unauthenticated)
vault-auth            the session's login (or ``lookup-self`` of a static token)
vault-capabilities    ``POST /v1/sys/capabilities-self`` with every path of the model (a query)
file-writable         the file target's directory is writable (atomic writes need it)
command-available     the command consumer's program is on PATH
====================  ========================================================================

A check never raises for a finding; an unexpected :class:`~rotator.errors.RotatorError` from a
check becomes one failed row, so one broken system never hides the others. No key value or
credential is ever part of a row: subjects name objects and paths, details quote what the
systems said through the adapters' redacting error messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from rotator import config as cfg
from rotator.doctor.base import (
    CheckFunction,
    CheckResult,
    DoctorCheck,
    DoctorEnv,
    KeyReport,
    doctor_document,
    fix_for,
)
from rotator.doctor.kubernetes_checks import kubernetes_rbac, kubernetes_reachable
from rotator.doctor.local_checks import command_available, consumers, file_writable, secret_owner
from rotator.doctor.stackstate_checks import stackstate_permission, stackstate_reachable
from rotator.doctor.vault_checks import vault_auth, vault_capabilities, vault_reachable
from rotator.errors import RotatorError
from rotator.secrets import redact

log = structlog.get_logger(__name__)

#: Every check, in the order rows appear. To add one, write a function with the CheckFunction
#: signature (``(env, key) -> Iterable[CheckResult]``, read-only, findings as rows) and append a
#: DoctorCheck here; ``rotator doctor`` picks it up, the JSON contract needs no change.
CHECKS: list[DoctorCheck] = [
    DoctorCheck("stackstate-reachable", stackstate_reachable),
    DoctorCheck("stackstate-permission", stackstate_permission),
    DoctorCheck("kubernetes-reachable", kubernetes_reachable),
    DoctorCheck("kubernetes-rbac", kubernetes_rbac),
    DoctorCheck("secret-owner", secret_owner),
    DoctorCheck("consumers", consumers),
    DoctorCheck("vault-reachable", vault_reachable),
    DoctorCheck("vault-auth", vault_auth),
    DoctorCheck("vault-capabilities", vault_capabilities),
    DoctorCheck("file-writable", file_writable),
    DoctorCheck("command-available", command_available),
]


# -- running -------------------------------------------------------------------------------------

Progress = Callable[[int, int, str, str], None]
"""Called before each check: (key number from 1, number of keys, managed key, check name)."""


def run_checks(
    env: DoctorEnv,
    keys: Sequence[cfg.ManagedKey],
    *,
    checks: Sequence[DoctorCheck] | None = None,
    progress: Progress | None = None,
) -> list[KeyReport]:
    """Run every check (default :data:`CHECKS`) for every key, in order; never raises a finding."""
    reports = []
    for index, key in enumerate(keys, start=1):
        rows: list[CheckResult] = []
        for check in CHECKS if checks is None else checks:
            if progress is not None:
                progress(index, len(keys), key.name, check.name)
            rows.extend(_run_one(check, env, key))
        reports.append(KeyReport(key.name, tuple(rows)))
    return reports


def _run_one(check: DoctorCheck, env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    try:
        return list(check.run(env, key))
    except RotatorError as exc:
        return [CheckResult(check.name, "(check)", False, redact(str(exc)), fix_for(exc))]
    except Exception as exc:  # noqa: BLE001 - a broken check must not hide the other checks
        log.error("doctor.check_crashed", check=check.name, error=type(exc).__name__)
        return [
            CheckResult(
                check.name,
                "(check)",
                False,
                f"the check itself failed ({type(exc).__name__})",
                "run again with --log-level debug and report this as a bug",
            )
        ]


__all__ = [
    "CHECKS",
    "CheckFunction",
    "CheckResult",
    "DoctorCheck",
    "DoctorEnv",
    "KeyReport",
    "doctor_document",
    "run_checks",
]
