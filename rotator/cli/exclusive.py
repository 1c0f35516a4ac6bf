"""The locks a writing ``rotator rotate`` takes, and its hand-over to a leader daemon.

Always the per-machine run lock (two runs on one machine, :func:`rotator.cli.lock.rotation_lock`,
``--lock-file``); then the
shared lock ``lock.type`` chooses (default: ``lease`` with ``leader_election.enabled``, else
``file``, which adds nothing):

* ``lease`` — :class:`rotator.handoff.LeaseRequester`: hold the leader-election Lease for the
  run, or hand the request to the live daemon holding it, wait for its outcome and print it
  like a run of our own (``--no-wait``: print that it was handed over, exit 0);
* ``vault`` — :class:`rotator.runlock.VaultKvLock`: wait for the check-and-set entry, hold it
  (renewed) for the run.

Waiting is bounded by ``--wait-timeout``; a lock still held then exits 1 (nothing changed).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import click

from rotator.cli.lock import rotation_lock
from rotator.cli.output import emit_json, fit_line
from rotator.errors import ConfigError

if TYPE_CHECKING:
    from rotator.config import RotatorConfig
    from rotator.handoff import HandedOver


def _log() -> Any:
    """This module's logger; structlog loads on first use, so ``--help`` never imports it."""
    import structlog  # noqa: PLC0415 - keep --help fast

    return structlog.get_logger(__name__)


#: Seconds between two looks at a Vault lock entry held by another run.
VAULT_POLL_SECONDS: Final = 1.0


class RunGuard(Protocol):
    """A shared lock held for the run; the engine asks it before each key's actions."""

    def still_held(self) -> bool:
        """Whether the lock is still ours."""


def run_identity() -> str:
    """Who this run is, in a Lease or lock entry: ``rotate-<host>-<pid>``."""
    return f"rotate-{socket.gethostname()}-{os.getpid()}"


@contextlib.contextmanager
def exclusive_run(
    config: RotatorConfig,
    config_path: Path,
    lock_file: Path | None,
    *,
    keys: Sequence[str],
    force: bool,
    output: str,
    wait_timeout: float,
    no_wait: bool,
    emergency: bool = False,
) -> Iterator[RunGuard | None]:
    """Hold the locks of one writing run for the block; yields the shared lock's guard.

    When the request is handed over to a leader instead, the outcome is printed here and
    :class:`click.exceptions.Exit` is raised with ``rotate``'s exit code: the block never runs.
    """
    with rotation_lock(config, config_path, lock_file):
        kind = config.lock.effective_type(config.leader_election)
        if kind == "lease":
            with _lease(
                config, keys, force, output, wait_timeout, no_wait, emergency=emergency
            ) as guard:
                yield guard
        elif kind == "vault":
            with _vault(config, wait_timeout) as guard:
                yield guard
        else:
            yield None


@contextlib.contextmanager
def _lease(
    config: RotatorConfig,
    keys: Sequence[str],
    force: bool,
    output: str,
    wait_timeout: float,
    no_wait: bool,
    *,
    emergency: bool = False,
) -> Iterator[RunGuard]:
    from rotator.clients.kubernetes import KubeClients  # noqa: PLC0415
    from rotator.handoff import (  # noqa: PLC0415 - the Kubernetes client loads on use
        HandedOver,
        LeaseRequester,
        LeaseTimings,
        RunRequest,
    )
    from rotator.wiring import build_lease_lock  # noqa: PLC0415

    # The leader checks the names against its own configuration; a typo is a usage error here.
    configured = [k.name for k in config.keys]
    unknown = [name for name in keys if name not in configured]
    if unknown:
        raise ConfigError(
            f"--key {', '.join(unknown)}: no such managed key "
            f"(configured: {', '.join(configured) or 'none'})"
        )
    settings = config.leader_election
    assert settings.namespace is not None  # validated: a lease lock needs the namespace
    identity = run_identity()
    kube = KubeClients(config.kubernetes.kubeconfig, config.kubernetes.context)
    try:
        lock = build_lease_lock(config, kube, identity)
        requester = LeaseRequester(
            lock,
            LeaseTimings(
                lease_duration=settings.lease_duration.total_seconds(),
                renew_deadline=settings.renew_deadline.total_seconds(),
                retry_period=settings.retry_period.total_seconds(),
            ),
        )
        request = RunRequest.new(
            keys,
            force=force,
            requester=identity,
            valid_for=timedelta(seconds=wait_timeout),
            now=datetime.now(UTC),
            emergency=emergency,
        )
        claim = requester.claim(request, timeout=wait_timeout, wait=not no_wait)
        if isinstance(claim, HandedOver):
            raise click.exceptions.Exit(report_handed_over(claim, output))
        with claim:
            yield claim
    finally:
        kube.close()


@contextlib.contextmanager
def _vault(config: RotatorConfig, wait_timeout: float) -> Iterator[RunGuard]:
    from rotator.runlock import HeldVaultLock, RunLockBusy, VaultKvLock  # noqa: PLC0415
    from rotator.wiring import vault_session  # noqa: PLC0415

    assert config.vault is not None  # validated: a vault lock needs the vault section
    session = vault_session(config.vault)
    try:
        lock = VaultKvLock(
            session,
            mount=config.lock.mount,
            path=config.lock.path,
            identity=run_identity(),
            ttl=config.lock.ttl,
        )
        deadline = time.monotonic() + wait_timeout
        while (holder := lock.acquire()) is not None:
            if time.monotonic() >= deadline:
                raise RunLockBusy(
                    f"{lock.describe()} is held by {holder.holder} for longer than "
                    f"{wait_timeout:g}s; not starting a second writer (nothing was changed)"
                )
            _log().info("runlock.waiting", lock=lock.describe(), holder=holder.holder)
            time.sleep(VAULT_POLL_SECONDS)
        with HeldVaultLock(lock) as held:
            yield held
    finally:
        session.close()


def report_handed_over(handed: HandedOver, output: str) -> int:
    """Print what became of a handed-over request like ``rotate`` prints a run; the exit code."""
    from rotator.handoff import exit_code  # noqa: PLC0415

    response = handed.response
    about: dict[str, Any] = {
        "leader": handed.leader,
        "lease": handed.lease,
        "request_id": handed.request.id,
        "state": "pending" if response is None else response.state,
    }
    if response is None:
        if output == "json":
            emit_json({"dry_run": False, "keys": [], "handed_over": about})
        else:
            click.echo(
                f"handed over to leader {handed.leader} through lease {handed.lease} "
                f"(request {handed.request.id}); it runs at the leader's next lease renewal. "
                "Check with `rotator status`."
            )
        return 0
    if response.state != "done" or response.report is None:
        about["error"] = response.error
        if output == "json":
            emit_json({"dry_run": False, "keys": [], "handed_over": about})
        click.echo(
            f"error: request {handed.request.id} handed over to leader {response.leader} was "
            f"not run ({response.state}): {response.error or 'no reason given'}",
            err=True,
        )
        return response.exit_code or 1
    code = exit_code(response.report, handed.request)
    if output == "json":
        emit_json({**response.report, "handed_over": about})
    else:
        click.echo(render_document(response.report, leader=response.leader))
    return code


def render_document(report: dict[str, Any], *, leader: str) -> str:
    """The text form of a ``rotate`` JSON document a leader ran (it may be summarised)."""
    lines: list[str] = []
    entries = [k for k in report.get("keys") or [] if isinstance(k, dict)]
    for entry in entries:
        lines.append(f"{entry.get('key')} ({entry.get('kind')})")
        reason = f"  decision: {entry.get('decision')}: {entry.get('reason')}"
        lines += fit_line(reason, indent="          ")
        actions = [a for a in entry.get("actions") or [] if isinstance(a, dict)]
        if actions:
            lines.append("  actions:")
            for a in actions:
                action = f"    {a.get('action')} {a.get('target') or '-'}: {a.get('detail')}"
                lines += fit_line(action, indent="    ")
        for w in entry.get("warnings") or []:
            lines += fit_line(f"  warning:  {w}", indent="          ")
        outcome = f"  outcome:  {entry.get('outcome')}"
        if entry.get("error"):
            outcome += f": {entry['error']}"
        failure = entry.get("failure")
        if isinstance(failure, dict):
            outcome += f" [step {failure.get('step')}, {failure.get('category')}]"
        lines += fit_line(outcome, indent="          ")
        lines.append("")
    counts = Counter(str(entry.get("outcome")) for entry in entries)
    parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    total = len(entries)
    lines.append(
        f"{total} managed key{'s' if total != 1 else ''}: {parts or 'none'} "
        f"(run by leader {leader})"
    )
    if report.get("summarized"):
        lines.append("(the leader's report was summarised to fit into the Lease)")
    return "\n".join(lines)
