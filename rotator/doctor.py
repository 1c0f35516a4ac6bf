"""``rotator doctor``: read-only checks of the live systems, reported per managed key.

Every check is a function with the :class:`CheckFunction` signature, registered with a name in
:data:`CHECKS`; :func:`run_checks` calls each for each managed key and collects
:class:`CheckResult` rows, the ``checks`` list of the JSON contract (``../shared/CLI.md``)::

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

import json
import os
import shutil
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import hvac
import structlog
import urllib3.exceptions
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from rotator import config as cfg
from rotator.engine.naming import managed_owner
from rotator.errors import (
    ConfigError,
    RotatorError,
    StackStateError,
    StackStateForbidden,
    StackStateNotFound,
    StackStateUnauthorized,
    TargetError,
)
from rotator.kube import KubeClients, quote_status, status_body, transport_problem
from rotator.permissions import (
    STACKSTATE_PERMISSIONS,
    KubernetesPermission,
    PermissionModel,
    VaultPermission,
    derive_permissions,
    role_rules,
)
from rotator.secrets import redact
from rotator.stackstate import StackStateClient
from rotator.targets.vault import VaultSession
from rotator.targets.vault import map_error as map_vault_error

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: The SelfSubjectAccessReview resource, as kubectl names it, for messages.
_SSAR: Final = "selfsubjectaccessreviews.authorization.k8s.io"


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
        """The JSON form of ``../shared/CLI.md``."""
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
        return [CheckResult(check.name, "(check)", False, redact(str(exc)), _fix_for(exc))]
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


def doctor_document(reports: Sequence[KeyReport]) -> dict[str, Any]:
    """The whole JSON document of ``rotator doctor -o json``."""
    return {"keys": [report.to_dict() for report in reports]}


def _fix_for(exc: RotatorError) -> str:
    """A generic next step for an error a check did not expect, by its category."""
    return {
        "retry": "a temporary failure: run rotator doctor again",
        "fix-config": "fix the configuration named in the message",
        "fix-permissions": "grant the permission named in the message",
        "wait": "wait, then run rotator doctor again",
    }.get(exc.category, "read the message; a person has to decide")


# -- StackState ----------------------------------------------------------------------------------


def stackstate_reachable(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """StackState answers ``/server/info`` with the configured credential."""
    del key  # one StackState for every key
    return [env.shared("stackstate-reachable", lambda: _stackstate_reachable(env))]


def _stackstate_reachable(env: DoctorEnv) -> CheckResult:
    name, subject = "stackstate-reachable", env.stackstate.url
    try:
        info = env.stackstate.server_info()
    except StackStateNotFound:
        return CheckResult(name, subject, True, "reachable (this version has no /server/info)")
    except StackStateUnauthorized as exc:
        return CheckResult(
            name,
            subject,
            False,
            exc.message,
            "configure a valid credential (stackstate.service_token, api_token or "
            "service_bearer_file); create a service token with: sts service-token create",
        )
    except ConfigError as exc:
        return CheckResult(name, subject, False, exc.message, "fix the stackstate: section")
    except StackStateError as exc:
        return CheckResult(
            name,
            subject,
            False,
            exc.message,
            "check stackstate.url, network access from here, TLS (stackstate.ca_file) and "
            "the server's health",
        )
    platform = f", platform {info.platform_version}" if info.platform_version else ""
    return CheckResult(
        name, subject, True, f"StackState {info.version} ({info.deployment_mode}{platform})"
    )


def stackstate_permission(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """The credential may manage keys of the key's kind: the API's own answer, then a list."""
    if not stackstate_reachable(env, key)[0].ok:
        return []
    kind = key.kind.value
    result, names = env.shared(
        ("stackstate-permission", kind), partial(_stackstate_permission, env, kind)
    )
    if names is None:
        return [result]
    managed = sum(1 for name in names if managed_owner(name, [key.name]) is not None)
    detail = f"{result.detail}, {managed} of them {key.name}'s"
    return [CheckResult(result.check, result.subject, result.ok, detail, result.fix)]


#: How key kinds are named in rows.
_KIND_NOUNS: Final = {"service-token": "service token", "ingestion-api-key": "ingestion API key"}


def _count(number: int, kind: str) -> str:
    noun = _KIND_NOUNS.get(kind, kind)
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _stackstate_permission(env: DoctorEnv, kind: str) -> tuple[CheckResult, list[str] | None]:
    """The row for ``kind`` and the names listed (None when listing failed)."""
    permission = STACKSTATE_PERMISSIONS[kind]
    name, subject = "stackstate-permission", f"{permission} ({kind})"
    grant_fix = (
        f"give the rotator's credential a role holding {permission} (stackstate-admin has it), "
        "or configure a credential that has one"
    )
    try:
        granted = env.stackstate.authorized_for(permission)
    except StackStateError as exc:
        return CheckResult(name, subject, False, f"cannot ask: {exc.message}", _fix_for(exc)), None
    if granted is False:
        detail = (
            f"the credential lacks {permission}: it cannot list, create or delete "
            f"{_KIND_NOUNS[kind]}s (/user/authorization/for answered 403)"
        )
        return CheckResult(name, subject, False, detail, grant_fix), None
    try:
        keys = env.stackstate.list_keys(kind)  # type: ignore[arg-type]  # kind is a KeyKind value
    except StackStateForbidden:
        return CheckResult(
            name, subject, False, f"listing {_KIND_NOUNS[kind]}s was refused (403)", grant_fix
        ), None
    except StackStateError as exc:
        detail = f"cannot list {_KIND_NOUNS[kind]}s: {exc.message}"
        return CheckResult(name, subject, False, detail, _fix_for(exc)), None
    names = [k.name for k in keys]
    if granted is None:
        detail = (
            f"the server does not know permission {permission}, so creating and deleting could "
            f"not be confirmed; listing works: {_count(len(keys), kind)}"
        )
        fix = f"if a rotation is refused, give the credential a role holding {permission}"
        return CheckResult(name, subject, True, detail, fix), names
    return CheckResult(name, subject, True, f"granted; lists {_count(len(keys), kind)}"), names


# -- Kubernetes ----------------------------------------------------------------------------------


def _contexts(env: DoctorEnv, key: cfg.ManagedKey) -> list[str | None]:
    """The kubeconfig contexts the key's permissions live in, in first-seen order."""
    return list(dict.fromkeys(p.context for p in env.permissions.for_key(key.name).kubernetes))


def kubernetes_reachable(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """Every context the key uses answers ``GET /version``."""
    return [
        env.shared(("kubernetes-reachable", ctx), partial(_kubernetes_reachable, env, ctx))
        for ctx in _contexts(env, key)
    ]


def _kubernetes_reachable(env: DoctorEnv, context: str | None) -> CheckResult:
    name, subject = "kubernetes-reachable", env.context_label(context)
    try:
        api_client = env.kube.api_client(context)
        answer = k8s_client.VersionApi(api_client).get_code(
            _request_timeout=env.kube.request_timeout
        )
    except ConfigError as exc:
        return CheckResult(
            name,
            subject,
            False,
            exc.message,
            "fix kubernetes.kubeconfig / the context name, or run where the kubeconfig is",
        )
    except ConfigException as exc:
        return CheckResult(
            name, subject, False, f"cannot obtain credentials: {exc}", "refresh the credentials"
        )
    except urllib3.exceptions.HTTPError as exc:
        return CheckResult(
            name,
            subject,
            False,
            transport_problem(exc, env.kube.request_timeout),
            "check the API server address in the kubeconfig and network access from here",
        )
    except ApiException as exc:
        status = exc.status or 0
        fix = (
            "the API server does not accept the context's credentials: refresh them"
            if status in (401, 403)
            else "check the API server's health"
        )
        return CheckResult(name, subject, False, f"GET /version answered {status}", fix)
    host = str(getattr(api_client.configuration, "host", "") or "")
    version = str(getattr(answer, "git_version", "") or "unknown version")
    return CheckResult(name, subject, True, f"Kubernetes {version} at {host}")


@dataclass(frozen=True)
class _Access:
    """The API server's verdict on one permission: allowed, denied, or None (could not ask)."""

    allowed: bool | None
    detail: str = ""


def kubernetes_rbac(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """Every Kubernetes permission of the key, by SelfSubjectAccessReview; one row per object."""
    rows = []
    for (context, namespace, group, resource, object_name), permissions in _objects(
        env.permissions.for_key(key.name).kubernetes
    ).items():
        reachable = env.shared(
            ("kubernetes-reachable", context), partial(_kubernetes_reachable, env, context)
        )
        if not reachable.ok:
            continue
        qualified = f"{resource}.{group}" if group else resource
        what = f"{qualified}/{object_name}" if object_name else f"{qualified} (any name)"
        subject = f"{what} in namespace {namespace}"
        if context is not None:
            subject += f" ({env.context_label(context)})"
        rows.append(_object_row(env, subject, permissions))
    return rows


def _objects(
    permissions: Iterable[KubernetesPermission],
) -> dict[tuple[str | None, str, str, str, str | None], list[KubernetesPermission]]:
    grouped: dict[tuple[str | None, str, str, str, str | None], list[KubernetesPermission]] = {}
    for p in permissions:
        grouped.setdefault((p.context, p.namespace, p.group, p.resource, p.name), []).append(p)
    return grouped


def _object_row(
    env: DoctorEnv, subject: str, permissions: list[KubernetesPermission]
) -> CheckResult:
    name = "kubernetes-rbac"
    allowed: list[str] = []
    failures: list[str] = []
    warnings: list[str] = []
    to_grant: list[KubernetesPermission] = []
    unknown: list[str] = []
    for permission in permissions:
        access = env.shared(("ssar", permission.identity), partial(_review, env, permission))
        if access.allowed:
            allowed.append(permission.verb)
            continue
        if access.allowed is None:
            unknown.append(f"{permission.verb}: {access.detail}")
            continue
        target = permission.qualified_resource + (f"/{permission.name}" if permission.name else "")
        denied = f"forbidden: {permission.verb} {target} ({permission.why})"
        if permission.required:
            failures.append(denied)
            to_grant.append(permission)
            continue
        missing = [
            o
            for o in permission.objects
            if env.shared(
                ("exists", permission.context, permission.namespace, permission.resource, o),
                partial(_exists, env, permission, o),
            )
            is False
        ]
        if missing:
            verb = "does" if len(missing) == 1 else "do"
            failures.append(f"{denied}, and {', '.join(missing)} {verb} not exist yet")
            to_grant.append(permission)
        else:
            warnings.append(f"optional: {denied}")
    if unknown:
        return CheckResult(
            name,
            subject,
            False,
            "cannot check: " + "; ".join(unknown),
            f"let the rotator's identity create {_SSAR} (the built-in system:basic-user "
            "ClusterRole grants it), or check by hand with kubectl auth can-i",
        )
    if failures:
        return CheckResult(name, subject, False, "; ".join(failures), _grant_fix(to_grant))
    detail = f"allowed: {', '.join(allowed) or 'none'}"
    if warnings:
        optional = [p for p in permissions if not p.required and p.verb not in allowed]
        return CheckResult(
            name, subject, True, f"{detail}; {'; '.join(warnings)}", _grant_fix(optional)
        )
    return CheckResult(name, subject, True, detail)


def _grant_fix(permissions: list[KubernetesPermission]) -> str:
    """``add this rule to the rotator's Role in namespace ns: {...}`` for the permissions."""
    first = permissions[0]
    rules = " and ".join(
        json.dumps(rule.to_dict(), separators=(", ", ": ")) for rule in role_rules(permissions)
    )
    where = f"namespace {first.namespace}"
    if first.context:
        where += f" (context {first.context})"
    return f"add to the rotator's Role in {where}: {rules}"


def _review(env: DoctorEnv, permission: KubernetesPermission) -> _Access:
    """Ask the API server (SelfSubjectAccessReview) whether we hold ``permission``."""
    body = k8s_client.V1SelfSubjectAccessReview(
        api_version="authorization.k8s.io/v1",
        kind="SelfSubjectAccessReview",
        spec=k8s_client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=k8s_client.V1ResourceAttributes(
                group=permission.group,
                resource=permission.resource,
                verb=permission.verb,
                namespace=permission.namespace,
                name=permission.name,
            )
        ),
    )
    try:
        api = k8s_client.AuthorizationV1Api(env.kube.api_client(permission.context))
        response = api.create_self_subject_access_review(
            body, _preload_content=False, _request_timeout=env.kube.request_timeout
        )
        answer = _raw_json(response)
    except ApiException as exc:
        status = exc.status or 0
        said = quote_status(status_body(exc).get("message") or exc.reason or "")
        if status == 404:
            return _Access(None, "the API server does not serve SelfSubjectAccessReview (404)")
        return _Access(None, f"SelfSubjectAccessReview answered {status}: {said}")
    except urllib3.exceptions.HTTPError as exc:
        return _Access(None, transport_problem(exc, env.kube.request_timeout))
    except (ConfigError, ConfigException) as exc:
        return _Access(None, str(exc))
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, dict):
        return _Access(None, "SelfSubjectAccessReview answered without a status")
    reason = quote_status(status.get("reason") or status.get("evaluationError") or "")
    return _Access(bool(status.get("allowed")) and not status.get("denied"), reason)


def _raw_json(response: Any) -> Any:
    """The parsed JSON of an unpreloaded answer; the connection goes back to the pool."""
    try:
        raw = response.data
    finally:
        response.release_conn()
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return None


def _exists(env: DoctorEnv, permission: KubernetesPermission, name: str) -> bool | None:
    """Whether object ``name`` of the permission's type exists (None: cannot tell).

    Only the status matters: the body is drained unparsed and discarded (``drain_conn``), never
    decoded into objects. (Releasing a connection with its body unread puts it back in the
    pool mid-answer, and the next request on it fails with "connection lost".)
    """
    readers = {
        "secrets": lambda: env.kube.core(permission.context).read_namespaced_secret,
        "leases": lambda: env.kube.coordination(permission.context).read_namespaced_lease,
    }
    reader = readers.get(permission.resource)
    if reader is None:
        return None
    try:
        response = reader()(
            name,
            permission.namespace,
            _preload_content=False,
            _request_timeout=env.kube.request_timeout,
        )
        try:
            response.drain_conn()
        finally:
            response.release_conn()
    except ApiException as exc:
        return False if exc.status == 404 else None
    except (urllib3.exceptions.HTTPError, ConfigError, ConfigException):
        return None
    return True


# -- Vault ---------------------------------------------------------------------------------------


def _vault_permissions(env: DoctorEnv, key: cfg.ManagedKey) -> list[VaultPermission]:
    """The key's Vault entries; none when the key has no vault-kv target."""
    if not any(key.name in p.keys for p in env.permissions.vault):
        return []
    return list(env.permissions.for_key(key.name).vault)


def vault_reachable(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """Vault answers ``sys/health`` unsealed (only for keys with a vault-kv target)."""
    if env.vault is None or not _vault_permissions(env, key):
        return []
    session = env.vault
    return [env.shared("vault-reachable", lambda: _vault_reachable(session))]


def _vault_reachable(session: VaultSession) -> CheckResult:
    name, subject = "vault-reachable", session.describe()
    # An unauthenticated client: health needs no token and must not depend on the login.
    client = hvac.Client(
        url=session.url,
        token="",
        verify=str(session.ca_file) if session.ca_file else True,
        timeout=session.timeout,
    )
    try:
        answer = client.sys.read_health_status(method="GET")
    except Exception as exc:  # noqa: BLE001 - translated once, by the target's own mapping
        error = map_vault_error(exc, where=subject, timeout=session.timeout)
        return CheckResult(
            name, subject, False, error.message, "check vault.url, network access and TLS"
        )
    finally:
        client.adapter.close()
    if isinstance(answer, dict):
        status, body = 200, answer
    else:
        status = int(getattr(answer, "status_code", 0))
        try:
            body = answer.json()
        except ValueError:
            body = {}
    version = body.get("version") if isinstance(body, dict) else None
    what = f"Vault {version}" if version else "Vault"
    if status == 200:
        return CheckResult(name, subject, True, f"{what}, unsealed, active")
    if status in (429, 472, 473):
        return CheckResult(name, subject, True, f"{what}, unsealed, standby ({status})")
    if status == 503:
        return CheckResult(name, subject, False, f"{what} is sealed", "unseal Vault")
    if status == 501:
        return CheckResult(name, subject, False, f"{what} is not initialized", "initialize Vault")
    return CheckResult(
        name, subject, False, f"sys/health answered {status}", "check Vault's health"
    )


def vault_auth(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """The configured Vault auth logs in (a static token is looked up)."""
    if env.vault is None or not _vault_permissions(env, key):
        return []
    session = env.vault
    if not env.shared("vault-reachable", lambda: _vault_reachable(session)).ok:
        return []
    return [env.shared("vault-auth", lambda: _vault_auth(session))]


def _vault_auth(session: VaultSession) -> CheckResult:
    name, subject = "vault-auth", f"vault auth ({session.auth.describe()})"
    try:
        session.ensure_fresh()
    except TargetError as exc:
        return CheckResult(
            name,
            subject,
            False,
            exc.message,
            "check vault.auth: the role and its binding to the rotator's service account, "
            "the AppRole ids, or the token",
        )
    return CheckResult(name, subject, True, "logged in")


def vault_capabilities(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """The Vault token holds every capability the key's paths need (``sys/capabilities-self``)."""
    permissions = _vault_permissions(env, key)
    if env.vault is None or not permissions:
        return []
    session = env.vault
    if not env.shared("vault-auth", lambda: _vault_auth(session)).ok:
        return []
    paths = list(env.permissions.vault_paths())
    answer = env.shared("vault-capabilities", lambda: _ask_capabilities(session, paths))
    if isinstance(answer, CheckResult):
        return [answer]
    namespace = env.permissions.vault_namespace
    rows: list[CheckResult] = []
    by_path: dict[str, list[VaultPermission]] = {}
    for permission in permissions:
        by_path.setdefault(permission.path, []).append(permission)
    shared: list[CheckResult] = []
    for path, needed in by_path.items():
        subject = path if not namespace else f"{path} (namespace {namespace})"
        row = _capability_row(subject, path, needed, answer.get(path, []))
        # The token's own paths (shared by every key) fold into one row unless one fails.
        (shared if all(not p.keys for p in needed) and row.ok else rows).append(row)
    if shared:
        rows.append(_fold(shared, namespace))
    return rows


def _fold(rows: list[CheckResult], namespace: str | None) -> CheckResult:
    """One row for the token's self-service paths (lookup-self, renew-self, ...)."""
    subject = ", ".join(r.subject.split(" (namespace ")[0] for r in rows)
    if namespace:
        subject += f" (namespace {namespace})"
    warnings = [r for r in rows if r.warning]
    if not warnings:
        return CheckResult("vault-capabilities", subject, True, "the token's own paths: allowed")
    detail = "; ".join(r.detail.split("; ", 1)[-1] for r in warnings)
    fixes = " and ".join(
        r.fix.removeprefix("add to the rotator's Vault policy: ") for r in warnings if r.fix
    )
    return CheckResult(
        "vault-capabilities", subject, True, detail, f"add to the rotator's Vault policy: {fixes}"
    )


def _ask_capabilities(
    session: VaultSession, paths: list[str]
) -> dict[str, list[str]] | CheckResult:
    """The token's capabilities per path, or a failed row saying why Vault would not tell."""

    def ask(client: hvac.Client) -> Any:
        return client.sys.get_capabilities(paths=paths)

    try:
        answer = session.call(ask, where=f"{session.describe()}: sys/capabilities-self")
    except TargetError as exc:
        return CheckResult(
            "vault-capabilities",
            "sys/capabilities-self",
            False,
            f"cannot check: {exc.message}",
            "give the token Vault's default policy (it grants update on sys/capabilities-self), "
            "or check by hand: vault token capabilities <path>",
        )
    data = answer.get("data") if isinstance(answer, dict) else None
    source = data if isinstance(data, dict) else answer if isinstance(answer, dict) else {}
    found: dict[str, list[str]] = {}
    for path in paths:
        raw = source.get(path)
        found[path] = [str(c) for c in raw] if isinstance(raw, list) else []
    return found


def _capability_row(
    subject: str, path: str, needed: list[VaultPermission], granted: list[str]
) -> CheckResult:
    name = "vault-capabilities"
    has = set(granted)
    root = "root" in has
    missing = [p for p in needed if not root and p.capability not in has]
    required = [p for p in missing if p.required]
    everything = sorted({p.capability for p in needed})
    fix_block = (
        f'add to the rotator\'s Vault policy: path "{path}" '
        f"{{ capabilities = {json.dumps(everything)} }}"
    )
    shown = ", ".join(sorted(has)) if has else "none"
    if required:
        lacking = "; ".join(f"missing {p.capability} ({p.why})" for p in required)
        return CheckResult(name, subject, False, f"{lacking}; the token has: {shown}", fix_block)
    if missing:
        lacking = "; ".join(f"optional: missing {p.capability} ({p.why})" for p in missing)
        return CheckResult(name, subject, True, f"has: {shown}; {lacking}", fix_block)
    return CheckResult(name, subject, True, f"has: {shown}")


# -- local: files and commands -------------------------------------------------------------------


def file_writable(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """Each file target can be written atomically: its directory is writable, the file readable."""
    del env
    rows = []
    for target in key.effective_targets:
        if isinstance(target, cfg.FileTarget):
            rows.append(_file_row(target.path))
    return rows


def _file_row(path: Path) -> CheckResult:
    name, subject = "file-writable", str(path)
    directory = path.parent
    fix = (
        f"run the rotator as a user that may write {directory} (writes are atomic: a "
        "temporary file is created beside the target)"
    )
    if not directory.is_dir():
        return CheckResult(
            name, subject, False, f"directory {directory} does not exist", f"create {directory}"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        return CheckResult(name, subject, False, f"directory {directory} is not writable", fix)
    if path.exists() and not os.access(path, os.R_OK):
        return CheckResult(name, subject, False, "the file is not readable", fix)
    state = "exists" if path.exists() else "does not exist yet (it will be created)"
    return CheckResult(name, subject, True, f"directory writable; the file {state}")


def command_available(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """Each command consumer's program can be found (only the program is shown: arguments
    may hold anything)."""
    del env
    rows = []
    for consumer in key.effective_consumers:
        if isinstance(consumer, cfg.CommandConsumer):
            program = consumer.command[0]
            found = shutil.which(program)
            subject = f"command {program}"
            if found is None:
                rows.append(
                    CheckResult(
                        "command-available",
                        subject,
                        False,
                        f"{program} is not found (PATH of this process)",
                        "install it, or give its absolute path in the command consumer",
                    )
                )
            else:
                rows.append(CheckResult("command-available", subject, True, f"found: {found}"))
    return rows


# -- Secrets and their readers -------------------------------------------------------------------


def secret_owner(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """Who owns each Secret the key writes: Helm, Argo CD, Flux or a controller would write
    their own value back, so the rotator refuses such a target (``allow_foreign_owner``)."""
    from rotator.wiring import build_target  # noqa: PLC0415 - the one place adapters are built

    labels = env.config.kubernetes.foreign_owner_labels
    rows = []
    hint = key.helm_hint
    for spec in key.effective_targets:
        if not isinstance(spec, cfg.KubernetesSecretTarget):
            continue
        target = build_target(spec, env.kube, None, labels)
        subject = f"Secret {spec.namespace}/{spec.name} ({env.context_label(spec.context)})"
        state = target.read()
        if state.version is None:
            detail = "does not exist yet: the rotator creates it, labelled as its own"
            rows.append(CheckResult("secret-owner", subject, True, detail, hint))
        elif state.owner is None:
            rows.append(CheckResult("secret-owner", subject, True, "no other owner", None))
        elif state.owner_allowed:
            rows.append(
                CheckResult(
                    "secret-owner",
                    subject,
                    True,
                    f"owned by {state.owner}; written anyway (allow_foreign_owner: true)",
                    "make sure that owner renders the rotator's value, or its next sync writes "
                    "the old key back",
                )
            )
        else:
            fix = hint or (
                "let the rotator write a Secret of its own and point the chart at it "
                "(suse-observability-agent: global.apiKey.fromSecret)"
            )
            rows.append(
                CheckResult(
                    "secret-owner",
                    subject,
                    False,
                    f"owned by {state.owner}: its next sync writes its own value back",
                    f"{fix}; or set allow_foreign_owner: true if that owner renders our value",
                )
            )
    return rows


def consumers(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """Which workloads read the key (discovered ones included), and what would stop them from
    switching: no reader, readers on another Secret, paused or unrollable workloads."""
    from rotator.wiring import build_consumers  # noqa: PLC0415 - the one place adapters are built

    rows = []
    for spec in key.effective_consumers:
        for consumer in build_consumers(spec, env.kube, key, env.config.kubernetes.context):
            resolution = consumer.resolve()
            rows += [
                CheckResult(
                    "consumers",
                    reader.id,
                    True,
                    f"reads the key: {reader.how}",
                    None if reader.restarted else "not restarted by the rotator (Job/CronJob)",
                )
                for reader in resolution.readers
            ]
            problems = [*resolution.blocking, *resolution.before_create]
            rows += [
                CheckResult("consumers", consumer.id, False, problem, _consumer_fix(problem))
                for problem in problems
            ]
            rows += [
                CheckResult("consumers", consumer.id, True, warning, "grant list on batch/v1")
                for warning in resolution.warnings
            ]
            if not resolution.readers and not problems:
                rows.append(CheckResult("consumers", consumer.id, True, consumer.describe()))
    return rows


def _consumer_fix(problem: str) -> str:
    if "paused" in problem:
        return "kubectl rollout resume it, or the rotation waits"
    if "Point the chart at it" in problem:
        return problem[problem.index("Point the chart at it") :]
    return "fix the workload or the consumer's configuration (see the detail)"


# -- the registry ----------------------------------------------------------------------------------

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
