"""Doctor checks of Vault: reachable and unsealed, the auth logs in, the token holds every
capability the key's paths need (only for keys with a vault-kv target)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rotator import config as cfg
from rotator.doctor.base import CheckResult, DoctorEnv
from rotator.errors import TargetError
from rotator.permissions import VaultPermission

if TYPE_CHECKING:  # hvac loads only when a key has a vault-kv target
    import hvac

    from rotator.clients.vault import VaultSession


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
    return [env.shared("vault-reachable", lambda: vault_reachable_row(session))]


def vault_reachable_row(session: VaultSession) -> CheckResult:
    import hvac  # noqa: PLC0415 - a configuration without Vault never loads it

    from rotator.clients.vault import map_error as map_vault_error  # noqa: PLC0415

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
    if not env.shared("vault-reachable", lambda: vault_reachable_row(session)).ok:
        return []
    return [env.shared("vault-auth", lambda: vault_auth_row(session))]


def vault_auth_row(session: VaultSession) -> CheckResult:
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
    if not env.shared("vault-auth", lambda: vault_auth_row(session)).ok:
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
