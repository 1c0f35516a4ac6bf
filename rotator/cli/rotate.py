"""``rotator rotate [--dry-run]`` and ``rotator status``: one run of the engine from the CLI."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rotator.cli import EXIT_FAILED, CliState, cli, config_option
from rotator.cli.exclusive import RunGuard, exclusive_run
from rotator.cli.output import emit_json, output_option, wide_option

if TYPE_CHECKING:
    from rotator.clients.kubernetes import KubeClients
    from rotator.config import RotatorConfig
    from rotator.engine.model import KeySpec, RunReport


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
@click.option(
    "--emergency",
    is_flag=True,
    help="For a leaked key (exactly one --key, not suspended: else exit 2): rotate now "
    "whatever the windows, push, "
    "restart the consumers, and revoke the old key as soon as every consumer demonstrably "
    "switched, without the grace period; waits for that (at most switch_timeout), never "
    "revokes before, and sends the critical alert emergency_rotation. Exit 1 when the old key "
    "could not be revoked. With --dry-run: the plan only.",
)
@output_option("text")
@wide_option
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
    emergency: bool = False,
) -> None:
    """Observe every managed key, plan, and rotate what is due (exit 1 if any key failed).

    \b
    Examples:
      rotator --config rotator.yaml rotate --dry-run   # the plan; nothing is changed
      rotator rotate                                   # rotate every key that is due
      rotator rotate --key agent-prod --force          # rotate one key now, due or not
      rotator rotate --key agent-prod --emergency      # a leaked key: replace and revoke it now
      rotator rotate -o json | jq -r '.keys[] | "\\(.key) \\(.outcome)"'
    """
    from rotator.cli.report import Progress, render_text, report_document  # noqa: PLC0415
    from rotator.engine.run import run_once  # noqa: PLC0415 - keep --help fast
    from rotator.wiring import build_runtime  # noqa: PLC0415 - adapters load on use

    state = ctx.ensure_object(CliState)
    config = state.load_config()
    if emergency:
        from rotator.cli.emergency import check_emergency  # noqa: PLC0415

        check_emergency(keys, config)
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
            force=force or emergency,
            output=output,
            wait_timeout=wait_timeout,
            no_wait=no_wait,
            emergency=emergency,
        )
    )
    emergency_failed = False
    with lock as shared, build_runtime(config) as runtime:
        specs = runtime.select(keys)
        report = run_once(
            specs,
            runtime.stackstate,
            dry_run=dry_run,
            force=force,
            progress=Progress() if output == "text" else None,
            guard=shared.still_held if shared is not None else None,
            workers=config.workers,
            emergency=emergency,
        )
        if not dry_run:
            # Cron users get the same alerts and history as the daemon (a dry-run sends none).
            _publish(config, specs, report, runtime.kube)
        if emergency and not dry_run:
            from rotator.cli.emergency import follow, poll_seconds, summary  # noqa: PLC0415

            def rerun(again: bool) -> RunReport:
                later = run_once(
                    specs,
                    runtime.stackstate,
                    dry_run=False,
                    guard=shared.still_held if shared is not None else None,
                    workers=config.workers,
                    emergency=again,
                )
                _publish(config, specs, later, runtime.kube)
                return later

            if output == "text":
                click.echo(render_text(report))
            report, succeeded = follow(
                report,
                specs[0],
                rerun,
                poll=poll_seconds(config, specs[0].name),
                still_held=shared.still_held if shared is not None else None,
                note=lambda line: click.echo(line, err=True),
            )
            click.echo(summary(report, succeeded), err=True)
            emergency_failed = not succeeded
    if output == "json":
        emit_json(report_document(report))
    else:
        click.echo(render_text(report))
    if emergency_failed:
        ctx.exit(EXIT_FAILED)  # the old key could not be revoked: never a success
    if report.failed or ((force or emergency) and keys and _not_forced(report)):
        # A key named with --key that could not be forced is a failure of what was asked; a
        # plain --force over every key may leave some mid-switch (each is reported).
        ctx.exit(EXIT_FAILED)


def _not_forced(report: RunReport) -> bool:
    """Whether a forced run left a key blocked (or suspended) instead of rotating it."""
    return any(r.plan.decision in ("blocked", "suspended") for r in report.results)


@cli.command()
@click.option(
    "--key", "keys", multiple=True, metavar="NAME", help="Only this managed key (repeatable)."
)
@output_option("table")
@wide_option
@config_option
@click.pass_context
def status(ctx: click.Context, keys: tuple[str, ...], output: str) -> None:
    """Show each managed key's current key, expiry, target agreement and the next action.

    Read-only. The table fits the terminal (long ids are elided in the middle with '…',
    reasons wrapped); --wide prints everything in full.

    \b
    Examples:
      rotator --config rotator.yaml status
      rotator status --key agent-prod --wide
      rotator status -o json | jq '.keys[] | {key, days_left, decision}'
    """
    from rotator.cli.report import (  # noqa: PLC0415 - keep --help fast
        Progress,
        report_document,
        status_table,
        summary_line,
    )
    from rotator.engine.model import KeyResult, RunReport  # noqa: PLC0415
    from rotator.engine.run import observe_and_plan, utc_now  # noqa: PLC0415
    from rotator.wiring import build_runtime  # noqa: PLC0415 - adapters load on use

    config = ctx.ensure_object(CliState).load_config()
    progress = Progress()
    with build_runtime(config) as runtime:
        now = utc_now()
        planned = observe_and_plan(
            runtime.select(keys),
            runtime.stackstate,
            now=now,
            notice=progress.note,
            workers=config.workers,
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


def _publish(
    config: RotatorConfig, specs: list[KeySpec], report: RunReport, kube: KubeClients
) -> None:
    from rotator.daemon.notify import publish  # noqa: PLC0415
    from rotator.engine.run import utc_now  # noqa: PLC0415
    from rotator.events import EventRecorder  # noqa: PLC0415
    from rotator.wiring import build_alerter, build_history  # noqa: PLC0415

    publish(
        report,
        specs,
        alerter=build_alerter(config, clock=utc_now),
        history=build_history(config),
        run_id=uuid.uuid4().hex[:12],
        source="rotate",
        now=utc_now(),
        events=EventRecorder(kube, clock=utc_now),
    )
