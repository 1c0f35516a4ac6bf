"""``rotator check-config`` and ``rotator config schema``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from rotator.cli import CliState, cli, config_option
from rotator.cli.output import emit_json

if TYPE_CHECKING:
    from rotator.config import ManagedKey


@cli.command("check-config")
@config_option
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the configuration: ok and one line per managed key, or the errors (exit 2).

    Contacts nothing; `rotator doctor` checks the systems themselves.

    \b
    Examples:
      rotator --config rotator.yaml check-config
      ROTATOR_CONFIG=/etc/rotator/rotator.yaml rotator check-config
      rotator check-config --config examples/otel-collector.yaml
    """
    state = ctx.ensure_object(CliState)
    config = state.load_config()
    click.echo(f"ok: {state.config_path()} ({_count(len(config.keys), 'managed key')})")
    for key in config.keys:
        click.echo(f"  {describe_key(key)}")
        if key.preset is None:
            continue
        for target in key.effective_targets[:1]:
            click.echo(f"    preset writes {target.type} {_where(target)}")
        if key.helm_hint is not None:
            click.echo(f"    {key.helm_hint}")


def describe_key(key: ManagedKey) -> str:
    """One line for ``rotator check-config``.

    e.g. ``agent-prod: service-token, validity 90d, rotate 14d before expiry, 2 targets,
    1 consumer, schedule every 1h``.
    """
    from rotator.timespec import format_duration  # noqa: PLC0415 - keep --help fast

    policy = key.policy
    rotate = format_duration(policy.rotate_before)
    if policy.rotate_before_percent is not None:
        rotate += f" ({policy.rotate_before_percent:g}% of validity)"
    parts = [
        str(key.kind),
        f"validity {format_duration(policy.validity)}",
        f"rotate {rotate} before expiry",
        _count(len(key.targets), "target"),
        _count(len(key.consumers), "consumer"),
        f"schedule {policy.schedule.describe()}",
    ]
    if policy.windows:
        parts.append(_count(len(policy.windows), "window"))
    if key.preset is not None:
        parts.append(f"preset {key.preset.type}")
    if key.adopt_key_id is not None:
        parts.append(f"adopts key {key.adopt_key_id}")
    if key.suspend:
        parts.append("SUSPENDED (observed and reported, never acted on)")
    return f"{key.name}: " + ", ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _where(target: object) -> str:
    """Where a preset's target writes, for people."""
    namespace, name = getattr(target, "namespace", None), getattr(target, "name", None)
    key = getattr(target, "key", None) or getattr(target, "field", None)
    place = f"{namespace}/{name}" if namespace else str(getattr(target, "path", "?"))
    return f"{place} key {key}" if key else place


@cli.group("config")
def config_group() -> None:
    """Configuration helpers.

    \b
    Examples:
      rotator config schema > rotator-config.schema.json
    """


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the configuration file (for editors).

    \b
    Examples:
      rotator config schema > rotator-config.schema.json
      # first line of rotator.yaml:
      # yaml-language-server: $schema=rotator-config.schema.json
    """
    from rotator.config import config_json_schema  # noqa: PLC0415 - keep --help fast

    emit_json(config_json_schema())
