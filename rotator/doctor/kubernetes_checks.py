"""Doctor checks of Kubernetes: every context reachable, every permission of the model held
(SelfSubjectAccessReview, one row per object)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Final

import urllib3.exceptions

from rotator import config as cfg
from rotator.clients.kubernetes import quote_status, status_body, transport_problem
from rotator.doctor.base import CheckResult, DoctorEnv
from rotator.errors import ConfigError
from rotator.permissions import KubernetesPermission, role_rules

#: The SelfSubjectAccessReview resource, as kubectl names it, for messages.
_SSAR: Final = "selfsubjectaccessreviews.authorization.k8s.io"
#: Where the objects whose existence :func:`_exists` checks live (paths of ``KubeClients.call``).
_COLLECTIONS: Final = {
    "secrets": "/api/v1/namespaces/{namespace}/secrets",
    "leases": "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
}


def _contexts(env: DoctorEnv, key: cfg.ManagedKey) -> list[str | None]:
    """The kubeconfig contexts the key's permissions live in, in first-seen order."""
    return list(dict.fromkeys(p.context for p in env.permissions.for_key(key.name).kubernetes))


def kubernetes_reachable(env: DoctorEnv, key: cfg.ManagedKey) -> list[CheckResult]:
    """Every context the key uses answers ``GET /version``."""
    return [
        env.shared(("kubernetes-reachable", ctx), partial(kubernetes_reachable_row, env, ctx))
        for ctx in _contexts(env, key)
    ]


def kubernetes_reachable_row(env: DoctorEnv, context: str | None) -> CheckResult:
    # Imported here: a configuration without Kubernetes never loads the package.
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

    name, subject = "kubernetes-reachable", env.context_label(context)
    try:
        api_client = env.kube.api_client(context)
        answer = env.kube.call("GET", "/version", context=context)
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
    version = str((answer.get("gitVersion") if isinstance(answer, dict) else "") or "")
    version = version or "unknown version"
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
            ("kubernetes-reachable", context), partial(kubernetes_reachable_row, env, context)
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
    # Imported here: a configuration without Kubernetes never loads the package.
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

    attributes = {
        "group": permission.group,
        "resource": permission.resource,
        "verb": permission.verb,
        "namespace": permission.namespace,
        "name": permission.name,
    }
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {k: v for k, v in attributes.items() if v is not None}},
    }
    try:
        answer = env.kube.call(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            context=permission.context,
            body=body,
        )
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


def _exists(env: DoctorEnv, permission: KubernetesPermission, name: str) -> bool | None:
    """Whether object ``name`` of the permission's type exists (None: cannot tell).

    Only the status matters: the body is read unparsed and discarded (``parse=False``), never
    decoded. (Releasing a connection with its body unread puts it back in the pool mid-answer,
    and the next request on it fails with "connection lost".)
    """
    # Imported here: a configuration without Kubernetes never loads the package.
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

    collection = _COLLECTIONS.get(permission.resource)
    if collection is None:
        return None
    try:
        env.kube.call(
            "GET",
            f"{collection}/{{name}}",
            context=permission.context,
            path_params={"namespace": permission.namespace, "name": name},
            parse=False,
        )
    except ApiException as exc:
        return False if exc.status == 404 else None
    except (urllib3.exceptions.HTTPError, ConfigError, ConfigException):
        return None
    return True
