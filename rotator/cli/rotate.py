"""``rotator rotate [--dry-run]`` and ``rotator status``: one run of the engine from the CLI."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rotator.cli import EXIT_FAILED, CliState, cli, config_option
from rotator.cli.exclusive import RunGuard, exclusive_run
from rotator.cli.output import emit_json
from rotator.cli.report import Progress, render_text, report_document, status_table, summary_line
from rotator.engine.model import KeyResult, KeySpec, RunReport
from rotator.engine.run import observe_and_plan, run_once, utc_now

if TYPE_CHECKING:
    from rotator.config import RotatorConfig


def _duration_seconds(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    from rotator.timespec import parse_duration  # noqa: PLC0415 - keep --help fast

    try:
        seconds = parse_duration(value).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise click.BadParameter("must be longer than 0s")
    return seconds


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
    help="Lock held while rotating (default: one per config file in $XDG_RUNTIME_DIR, else in "
    "a private <tmp>/rotator-<uid>/).",
)
@click.option(
    "--wait-timeout",
    default="5m",
    show_default=True,
    callback=_duration_seconds,
    metavar="DURATION",
    help="How long to wait for the shared lock (lock: lease or vault), or for the leader's "
    "outcome of a handed-over request.",
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="When a leader daemon takes the request, return once it is handed over (exit 0).",
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
    wait_timeout: float,
    no_wait: bool,
) -> None:
    """Observe every managed key, plan, and rotate what is due (exit 1 if any key failed)."""
    from rotator.wiring import build_runtime  # noqa: PLC0415 - adapters load on use

    state = ctx.ensure_object(CliState)
    config = state.load_config()
    # A dry-run changes nothing, so it never waits for nor blocks a real run. A writing run
    # holds the run lock and the shared lock, or hands its request to the leader (then the
    # outcome is printed and the command exits inside exclusive_run).
    lock: contextlib.AbstractContextManager[RunGuard | None] = (
        contextlib.nullcontext()
        if dry_run
        else exclusive_run(
            config,
            state.config_path(),
            lock_file,
            keys=keys,
            force=force,
            output=output,
            wait_timeout=wait_timeout,
            no_wait=no_wait,
        )
    )
    with lock as shared, build_runtime(config) as runtime:
        specs = runtime.select(keys)
        report = run_once(
            specs,
            runtime.stackstate,
            dry_run=dry_run,
            force=force,
            progress=Progress() if output == "text" else None,
            guard=shared.still_held if shared is not None else None,
        )
        if not dry_run:
            # Cron users get the same alerts and history as the daemon (a dry-run sends none).
            _publish(config, specs, report)
    if output == "json":
        emit_json(report_document(report))
    else:
        click.echo(render_text(report))
    if report.failed or (force and keys and _not_forced(report)):
        # A key named with --key that could not be forced is a failure of what was asked; a
        # plain --force over every key may leave some mid-switch (each is reported).
        ctx.exit(EXIT_FAILED)


def _not_forced(report: RunReport) -> bool:
    """Whether a forced run left a key blocked instead of rotating it."""
    return any(r.plan.decision == "blocked" for r in report.results)


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
    progress = Progress()
    with build_runtime(config) as runtime:
        now = utc_now()
        planned = observe_and_plan(
            runtime.select(keys), runtime.stackstate, now=now, notice=progress.note
        )
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
    from rotator.daemon.history import History, alert_state_path  # noqa: PLC0415
    from rotator.daemon.notify import publish  # noqa: PLC0415

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
