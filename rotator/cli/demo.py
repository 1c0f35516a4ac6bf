"""``rotator demo``: the product at work against the local sandbox, nothing outside this machine.

Today it starts the StackState emulator in-process, creates one key of each kind through the real
client (named the way the rotator names managed keys), proves StackState accepts each one, and
lists them — printing fingerprints, never values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from rotator.cli import cli
from rotator.cli.keys import KIND_TITLES, key_table
from rotator.secrets import Secret
from rotator.stackstate import KEY_KINDS, StackStateClient


@cli.command()
def demo() -> None:
    """Run the rotator against a local StackState sandbox (no configuration needed)."""
    from rotator.sandbox.stackstate import StackStateEmulator  # noqa: PLC0415 - demo only

    emulator = StackStateEmulator()
    emulator.start()
    try:
        click.echo(f"[1/4] StackState sandbox listening on {emulator.url}/api")
        client = StackStateClient(
            base_url=emulator.url,
            service_token=Secret(emulator.service_token),
            timeout=5.0,
        )
        with client:
            info = client.server_info()
            click.echo(f"[2/4] connected: StackState {info.version} ({info.deployment_mode})")
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            expiry = datetime.now(UTC) + timedelta(days=90)
            for kind in KEY_KINDS:
                created = client.create_key(
                    kind,
                    f"demo-agent-{stamp}",
                    expiration=expiry,
                    roles=["stackstate-ingest-telemetry"] if kind == "service-token" else None,
                    description="managed-by: stackstate-key-rotator (demo)"
                    if kind == "ingestion-api-key"
                    else None,
                )
                verdict = client.verify(kind, created.value)
                click.echo(
                    f"[3/4] created {KIND_TITLES[kind].lower()} {created.key.name} "
                    f"(id {created.key.id}, value {created.value.fingerprint}): "
                    f"{verdict.reason}"
                )
            click.echo("[4/4] keys in the sandbox:")
            for kind in KEY_KINDS:
                click.echo(f"\n{KIND_TITLES[kind]}s:")
                click.echo(key_table(kind, sorted(client.list_keys(kind), key=lambda k: k.name)))
    finally:
        emulator.stop()
    click.echo("\ndemo finished: both kinds created and verified against the sandbox.")
