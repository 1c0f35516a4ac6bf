"""``rotator run`` (the daemon) and ``rotator history`` (the audit trail)."""

from __future__ import annotations

import click

from rotator.cli import EXIT_USAGE, CliState, cli, config_option
from rotator.cli.output import emit_json, table


@cli.command()
@config_option
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run as a service: scheduled rotations, leader election, /metrics, /healthz, /readyz."""
    from rotator.daemon.service import Service  # noqa: PLC0415 - the daemon's dependencies load on use

    state = ctx.ensure_object(CliState)
    service = Service(state.config_path())
    service.load()  # a bad configuration is a ConfigError here: exit 2, nothing started
    ctx.exit(service.run_forever())


@cli.command()
@click.option("--key", "key", metavar="NAME", help="Only this managed key.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")
@config_option
@click.pass_context
def history(ctx: click.Context, key: str | None, limit: int, output: str) -> None:
    """Show the audit history of runs (newest last); needs history.path in the config."""
    from rotator.daemon.history import History  # noqa: PLC0415

    config = ctx.ensure_object(CliState).load_config()
    if config.history.path is None:
        click.echo("error: history.path is not set in the configuration", err=True)
        ctx.exit(EXIT_USAGE)
    assert config.history.path is not None
    entries = list(History(config.history.path).entries(key=key))[-limit:]
    if output == "json":
        emit_json({"history": entries})
        return
    rows = [
        [
            e.get("timestamp"),
            e.get("key"),
            e.get("decision"),
            e.get("outcome"),
            ", ".join(a.get("action", "") for a in e.get("actions") or []),
            e.get("error") or e.get("reason"),
        ]
        for e in entries
    ]
    click.echo(table(["TIME", "KEY", "DECISION", "OUTCOME", "ACTIONS", "REASON / ERROR"], rows))
