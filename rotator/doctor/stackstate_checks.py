"""Doctor checks of StackState: reachable with the configured credential, and allowed to manage
the key's kind (the API's own answer, then a plain list: the ground truth)."""

from __future__ import annotations

from functools import partial
from typing import Final

from rotator import config as cfg
from rotator.doctor.base import CheckResult, DoctorEnv, fix_for
from rotator.engine.naming import managed_owner
from rotator.errors import (
    ConfigError,
    StackStateError,
    StackStateForbidden,
    StackStateNotFound,
    StackStateUnauthorized,
)
from rotator.permissions import STACKSTATE_PERMISSIONS


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
        return CheckResult(name, subject, False, f"cannot ask: {exc.message}", fix_for(exc)), None
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
        return CheckResult(name, subject, False, detail, fix_for(exc)), None
    names = [k.name for k in keys]
    if granted is None:
        detail = (
            f"the server does not know permission {permission}, so creating and deleting could "
            f"not be confirmed; listing works: {_count(len(keys), kind)}"
        )
        fix = f"if a rotation is refused, give the credential a role holding {permission}"
        return CheckResult(name, subject, True, detail, fix), names
    return CheckResult(name, subject, True, f"granted; lists {_count(len(keys), kind)}"), names
