"""``rotator run`` (the daemon) and ``rotator history`` (the audit trail)."""

from __future__ import annotations

import click

from rotator.cli import EXIT_USAGE, CliState, cli, config_option
from rotator.cli.output import emit_json, output_option, table, wide_option


@cli.command()
@config_option
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run as a service: scheduled rotations, leader election, /metrics, /healthz, /readyz.

    SIGTERM or SIGINT stops it after the run in progress; SIGHUP reloads the configuration, and
    so does a change of the file (an edit, or a mounted ConfigMap's update), seen within seconds.

    \b
    Examples:
      rotator --config /etc/rotator/rotator.yaml run
      rotator --log-format json --log-level debug run
      curl -s localhost:9108/metrics | grep ^rotator_key_rotation_runway
    """
    from rotator.daemon.service import Service  # noqa: PLC0415 - the daemon's dependencies load on use

    state = ctx.ensure_object(CliState)
    service = Service(state.config_path())
    service.load()  # a bad configuration is a ConfigError here: exit 2, nothing started
    ctx.exit(service.run_forever())


@cli.command()
@click.option(
    "--key", "keys", multiple=True, metavar="NAME", help="Only this managed key (repeatable)."
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Show at most this many entries, the newest.",
)
@output_option("table")
@wide_option
@config_option
@click.pass_context
def history(ctx: click.Context, keys: tuple[str, ...], limit: int, output: str) -> None:
    """Show the audit history of runs (newest last); needs history.path in the config.

    \b
    Examples:
      rotator --config rotator.yaml history
      rotator history --key agent-prod --key otel-prod --limit 10
      rotator history -o json | jq '.history[] | select(.outcome == "failed")'
    """
    from rotator.wiring import build_history  # noqa: PLC0415

    config = ctx.ensure_object(CliState).load_config()
    history = build_history(config)
    if history is None:
        click.echo("error: history.path is not set in the configuration", err=True)
        ctx.exit(EXIT_USAGE)
    assert history is not None
    wanted = set(keys)
    entries = [e for e in history.entries() if not wanted or e.get("key") in wanted][-limit:]
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
    headers = ["TIME", "KEY", "DECISION", "OUTCOME", "ACTIONS", "REASON / ERROR"]
    click.echo(table(headers, rows, keep={"TIME", "KEY"}))
