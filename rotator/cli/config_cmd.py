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
    from rotator.presets import effective_targets, helm_hint  # noqa: PLC0415

    state = ctx.ensure_object(CliState)
    config = state.load_config()
    click.echo(f"ok: {state.config_path()} ({len(config.keys)} managed keys)")
    for key in config.keys:
        click.echo(f"  {describe_key(key)}")
        if key.preset is None:
            continue
        for target in effective_targets(key)[:1]:
            click.echo(f"    preset writes {target.type} {_where(target)}")
        hint = helm_hint(key.preset)
        if hint is not None:
            click.echo(f"    {hint}")


def _where(target: object) -> str:
    """Where a preset's target writes, for people."""
    namespace, name = getattr(target, "namespace", None), getattr(target, "name", None)
    key = getattr(target, "key", None) or getattr(target, "field", None)
    place = f"{namespace}/{name}" if namespace else str(getattr(target, "path", "?"))
    return f"{place} key {key}" if key else place


@cli.group("config")
def config_group() -> None:
    """Configuration helpers."""


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the configuration file (for editors)."""
    from rotator.config import config_json_schema  # noqa: PLC0415 - keep --help fast

    emit_json(config_json_schema())
