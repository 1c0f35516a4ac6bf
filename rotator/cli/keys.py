"""``rotator keys list|create|delete``: the StackState key commands, mirroring the ``sts`` CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import click

from rotator.cli import CliState, cli, config_option
from rotator.cli.output import day, emit_json, output_option, table, wide_option

if TYPE_CHECKING:
    from rotator.clients.stackstate import ApiKey, KeyKind, StackStateClient


def _log() -> Any:
    """This module's logger; structlog loads on first use, so ``--help`` never imports it."""
    import structlog  # noqa: PLC0415 - keep --help fast

    return structlog.get_logger(__name__)


#: ``rotator.keytypes.KEY_KINDS``, spelled out so that ``--help`` loads no HTTP client (a test
#: of the start-up imports checks that the two agree).
KEY_KIND_NAMES: Final = ("service-token", "ingestion-api-key")
KIND_CHOICE = click.Choice(list(KEY_KIND_NAMES))
KIND_TITLES: dict[str, str] = {
    "service-token": "Service token",
    "ingestion-api-key": "Ingestion API key",
}


def key_document(key: ApiKey) -> dict[str, Any]:
    """The stable JSON shape of one key (README, "Commands")."""
    from rotator.report import rfc3339  # noqa: PLC0415 - keep --help fast

    return {
        "kind": key.kind,
        "id": key.id,
        "name": key.name,
        "description": key.description,
        "expiration": rfc3339(key.expiration),
        "roles": list(key.roles) if key.roles is not None else None,
        "last_updated": rfc3339(key.last_updated),
    }


def key_table(kind: str, keys: list[ApiKey]) -> str:
    """The ``sts``-style table: ID | NAME | EXPIRATION | DESCRIPTION (+ ROLES for tokens)."""
    headers = ["ID", "NAME", "EXPIRATION", "DESCRIPTION"]
    if kind == "service-token":
        headers.append("ROLES")
    rows = []
    for key in keys:
        row: list[Any] = [key.id, key.name, day(key.expiration), key.description]
        if kind == "service-token":
            row.append(", ".join(key.roles or ()))
        rows.append(row)
    return table(headers, rows, keep={"ID"})  # the id is what keys delete takes


def _client(ctx: click.Context) -> StackStateClient:
    from rotator.wiring import build_stackstate_client  # noqa: PLC0415 - keep --help fast

    config = ctx.ensure_object(CliState).load_config()
    return build_stackstate_client(config.stackstate)


@cli.group()
def keys() -> None:
    """List, create and delete StackState keys by hand (both kinds).

    \b
    Examples:
      rotator keys list --kind service-token
      rotator keys delete --kind ingestion-api-key --id 250558013078953
    """


@keys.command("list")
@click.option("--kind", type=KIND_CHOICE, help="Only this kind (default: both).")
@output_option("table")
@wide_option
@config_option
@click.pass_context
def list_keys(ctx: click.Context, kind: str | None, output: str) -> None:
    """List keys (metadata only: StackState never lists values), sorted by name.

    \b
    Examples:
      rotator --config rotator.yaml keys list
      rotator keys list --kind service-token --wide
      rotator keys list -o json | jq '.[] | select(.name | startswith("agent-prod-"))'
    """
    from rotator.keytypes import KeyKind  # noqa: PLC0415 - keep --help fast

    kinds = [KeyKind(name) for name in ([kind] if kind else KEY_KIND_NAMES)]
    with _client(ctx) as client:
        found = {k: sorted(client.list_keys(k), key=lambda key: (key.name, key.id)) for k in kinds}
    if output == "json":
        emit_json({"keys": [key_document(key) for k in kinds for key in found[k]]})
        return
    for index, k in enumerate(kinds):
        if len(kinds) > 1:
            if index:
                click.echo()
            click.echo(f"{KIND_TITLES[k]}s:")
        click.echo(key_table(k, found[k]))


def _parse_day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in the form yyyy-MM-dd") from None
    if moment <= datetime.now(UTC):
        raise click.BadParameter(f"{value} is not in the future")
    return moment


@keys.command("create")
@click.option("--kind", type=KIND_CHOICE, required=True)
@click.option("--name", required=True, help="Name of the new key.")
@click.option("--description", help="Description (ingestion API keys only).")
@click.option(
    "--expiration",
    callback=_parse_day,
    metavar="yyyy-MM-dd",
    help="Expiry at 00:00 UTC of that day (default: never).",
)
@click.option("--roles", help="Comma-separated roles (service tokens; required).")
@click.option("--dedicated-subject", help="Dedicated subject of the service token (optional).")
@output_option("text")
@config_option
@click.pass_context
def create_key(
    ctx: click.Context,
    kind: KeyKind,
    name: str,
    description: str | None,
    expiration: datetime | None,
    roles: str | None,
    dedicated_subject: str | None,
    output: str,
) -> None:
    """Create a key and print its value once, on stdout only.

    \b
    Examples:
      rotator keys create --kind service-token --name ci-smoke \\
        --roles stackstate-ingest-telemetry --expiration 2027-01-31
      rotator keys create --kind ingestion-api-key --name host-db-01 -o json > key.json
    """
    from rotator.report import rfc3339  # noqa: PLC0415 - keep --help fast

    role_list = [r.strip() for r in (roles or "").split(",") if r.strip()]
    if kind == "service-token" and not role_list:
        raise click.UsageError("--roles is required for --kind service-token")
    if kind == "ingestion-api-key" and (role_list or dedicated_subject):
        raise click.UsageError("--roles/--dedicated-subject apply to service tokens only")
    if kind == "service-token" and description:
        raise click.UsageError("service tokens have no description; use --name")
    with _client(ctx) as client:
        created = client.create_key(
            kind,
            name,
            expiration=expiration,
            roles=role_list or None,
            description=description,
            dedicated_subject=dedicated_subject,
        )
    _log().info("key.created", kind=kind, id=created.key.id, name=created.key.name)
    if output == "json":
        emit_json(
            {
                "kind": kind,
                "id": created.key.id,
                "name": created.key.name,
                "expiration": rfc3339(created.key.expiration),
                "value": created.value.reveal(),
            }
        )
    else:
        click.echo(f"{KIND_TITLES[kind]} created: {created.value.reveal()}")
    click.echo(
        "warning: this value cannot be shown again; store it now "
        f"(id {created.key.id}, name {created.key.name}).",
        err=True,
    )


@keys.command("delete")
@click.option("--kind", type=KIND_CHOICE, required=True)
@click.option("--id", "key_id", type=int, required=True, help="Id of the key to delete.")
@config_option
@click.pass_context
def delete_key(ctx: click.Context, kind: KeyKind, key_id: int) -> None:
    """Delete a key by id. Agents still using it stop ingesting at once.

    \b
    Examples:
      rotator keys list --kind service-token          # find the id
      rotator keys delete --kind service-token --id 250558013078953
    """
    with _client(ctx) as client:
        client.delete_key(kind, key_id)
    _log().info("key.deleted", kind=kind, id=key_id)
    click.echo(f"{KIND_TITLES[kind]} {key_id} deleted.")
