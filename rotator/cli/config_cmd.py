"""``rotator check-config`` and ``rotator config schema``."""

from __future__ import annotations

import click

from rotator.cli import CliState, cli, config_option
from rotator.cli.output import emit_json


@cli.command("check-config")
@config_option
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the configuration: ``ok`` and one line per managed key, or the errors (exit 2)."""
    from rotator.config import describe_key  # noqa: PLC0415 - keep --help fast

    state = ctx.ensure_object(CliState)
    config = state.load_config()
    click.echo(f"ok: {state.config_path()} ({len(config.keys)} managed keys)")
    for key in config.keys:
        click.echo(f"  {describe_key(key)}")


@cli.group("config")
def config_group() -> None:
    """Configuration helpers."""


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the configuration file (for editors)."""
    from rotator.config import config_json_schema  # noqa: PLC0415 - keep --help fast

    emit_json(config_json_schema())
