"""``rotator rotate [--dry-run]`` and ``rotator status``: one run of the engine from the CLI."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rotator.cli import EXIT_FAILED, CliState, cli, config_option
from rotator.cli.lock import default_lock_path, run_lock
from rotator.cli.output import emit_json
from rotator.cli.report import Progress, render_text, report_document, status_table, summary_line
from rotator.engine.model import KeyResult, KeySpec, RunReport
from rotator.engine.run import observe_and_plan, run_once, utc_now

if TYPE_CHECKING:
    from rotator.config import RotatorConfig


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing anywhere.")
@click.option(
    "--key", "keys", multiple=True, metavar="NAME", help="Only this managed key (repeatable)."
)
@click.option("--force", is_flag=True, help="Rotate even keys that are not due yet.")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--lock-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Lock held while rotating (default: one per config file in $XDG_RUNTIME_DIR or /tmp).",
)
@config_option
@click.pass_context
def rotate(
    ctx: click.Context,
    dry_run: bool,
    keys: tuple[str, ...],
    force: bool,
    output: str,
    lock_file: Path | None,
) -> None:
    """Observe every managed key, plan, and rotate what is due (exit 1 if any key failed)."""
    from rotator.wiring import build_runtime  # noqa: PLC0415 - adapters load on use

    state = ctx.ensure_object(CliState)
    config = state.load_config()
    # A dry-run changes nothing, so it never waits for nor blocks a real run.
    lock = (
        contextlib.nullcontext()
        if dry_run
        else run_lock(lock_file or default_lock_path(state.config_path()))
    )
    with lock, build_runtime(config) as runtime:
        specs = runtime.select(keys)
        report = run_once(
            specs,
            runtime.stackstate,
            dry_run=dry_run,
            force=force,
            progress=Progress() if output == "text" else None,
        )
        if not dry_run:
            # Cron users get the same alerts and history as the daemon (a dry-run sends none).
            _publish(config, specs, report)
    if output == "json":
        emit_json(report_document(report))
    else:
        click.echo(render_text(report))
    if report.failed:
        ctx.exit(EXIT_FAILED)


@cli.command()
@click.option(
    "--key", "keys", multiple=True, metavar="NAME", help="Only this managed key (repeatable)."
)
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")
@config_option
@click.pass_context
def status(ctx: click.Context, keys: tuple[str, ...], output: str) -> None:
    """Show each managed key's current key, expiry, target agreement and the next action."""
    from rotator.wiring import build_runtime  # noqa: PLC0415 - adapters load on use

    config = ctx.ensure_object(CliState).load_config()
    with build_runtime(config) as runtime:
        now = utc_now()
        planned = observe_and_plan(runtime.select(keys), runtime.stackstate, now=now)
    results = tuple(
        KeyResult(
            plan,
            "failed" if plan.failed else "unchanged",
            plan.reason if plan.failed else None,
            failure=plan.failure,
        )
        for _, plan in planned
    )
    report = RunReport(dry_run=True, started_at=now, results=results)
    if output == "json":
        emit_json(report_document(report))
    else:
        click.echo(status_table(report))
        click.echo(summary_line(report).replace(" (dry-run: nothing was changed)", ""))
    if report.failed:
        ctx.exit(EXIT_FAILED)


def _publish(config: RotatorConfig, specs: list[KeySpec], report: RunReport) -> None:
    from rotator.alerts.dispatch import Alerter, build_hooks  # noqa: PLC0415
    from rotator.history import History, alert_state_path  # noqa: PLC0415
    from rotator.notify import publish  # noqa: PLC0415

    history = (
        History(config.history.path, max_bytes=config.history.max_bytes)
        if config.history.path is not None
        else None
    )
    publish(
        report,
        specs,
        alerter=Alerter(
            build_hooks(config.alerts),
            clock=utc_now,
            state_path=alert_state_path(config.history.path),
        ),
        history=history,
        run_id=uuid.uuid4().hex[:12],
        source="rotate",
        now=utc_now(),
    )
