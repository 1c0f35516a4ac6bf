"""``rotator demo``: the product at work against the local sandbox, nothing outside this machine.

It starts the StackState, Vault and Kubernetes emulators in-process (with the five workloads of
the SUSE Observability agent chart, pointed at the rotator's own Secret with
``global.apiKey.fromSecret``; their rollouts take a few seconds, as on a cluster), writes a
configuration with one managed key delivered through the ``suse-observability-agent`` preset, a
Vault KV path and an agent YAML file, and then runs the real engine through a whole life cycle:
the dry-run plan with the discovered readers, the bootstrap with its restarts, the wait for every
rollout, a forced rotation, and the revocation of the previous key once every workload rolled out.
It prints fingerprints, never values. The emulators come from the separate ``sandbox/``
distribution (``pip install -e ./sandbox``); without it the command exits 2 saying so.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rotator.cli import cli

if TYPE_CHECKING:
    from rotator.clients.stackstate import StackStateClient
    from rotator.engine.model import KeySpec

STEPS = 8
#: How long the demo waits for the sandbox's rollouts (they take a few seconds each).
ROLLOUT_WAIT = 60.0
#: Seconds between two looks while waiting.
POLL = 1.0


def _step(number: int, text: str) -> None:
    click.echo(click.style(f"\n[{number}/{STEPS}] {text}", bold=True))


def _run(
    specs: Sequence[KeySpec],
    client: StackStateClient,
    *,
    dry_run: bool = False,
    force: bool = False,
    settle: bool = False,
) -> bool:
    """One engine run (with ``settle``: repeated while a switch-over waits for rollouts);
    prints the report, returns whether it failed."""
    from rotator.cli.report import render_text  # noqa: PLC0415 - keep --help fast
    from rotator.engine.run import run_once  # noqa: PLC0415

    deadline = time.monotonic() + ROLLOUT_WAIT
    while True:
        report = run_once(specs, client, dry_run=dry_run, force=force)
        waiting = [r for r in report.results if r.plan.decision == "switch"]
        if not settle or not waiting or time.monotonic() > deadline:
            break
        click.echo(f"  ... {waiting[0].plan.reason}")
        time.sleep(POLL)
    click.echo(render_text(report))
    return report.failed


@cli.command()
def demo() -> None:
    """Run the rotator against a local sandbox (no configuration needed).

    Needs the emulators, a distribution of their own: from a checkout of this repository,
    `pip install -e ./sandbox`.

    \b
    Examples:
      make demo                        # creates .venv, installs, runs this
      rotator --log-level warning demo
    """
    from rotator.cli.keys import key_table  # noqa: PLC0415 - keep --help fast
    from rotator.cli.report import status_table  # noqa: PLC0415
    from rotator.cli.sandbox_cmd import sandbox_missing  # noqa: PLC0415 - demo only
    from rotator.config import load_config  # noqa: PLC0415
    from rotator.engine.model import KeyResult, RunReport  # noqa: PLC0415
    from rotator.engine.run import observe_and_plan, utc_now  # noqa: PLC0415
    from rotator.keytypes import KeyKind  # noqa: PLC0415
    from rotator.wiring import build_runtime  # noqa: PLC0415

    try:
        from rotator_sandbox.environment import EXAMPLE_KEY, Sandbox  # noqa: PLC0415 - optional
    except ModuleNotFoundError as exc:
        sandbox_missing("demo", exc)

    failed = False
    with tempfile.TemporaryDirectory(prefix="rotator-demo-") as tmp, Sandbox() as env:
        root = Path(tmp)
        _step(1, "sandbox started")
        for name, url in env.urls().items():
            click.echo(f"  {name:<11} {url}")
        kubeconfig = env.write_kubeconfig(root / "kubeconfig")
        config_path = env.write_config(root / "rotator.yaml", kubeconfig)
        config = load_config(config_path)
        click.echo(
            f"  config      {config_path}\n"
            f"              managed key {EXAMPLE_KEY!r}: preset suse-observability-agent "
            "(its own Secret, readers discovered), a Vault KV path and an agent YAML file"
        )

        with build_runtime(config) as runtime:
            specs, client = runtime.specs, runtime.stackstate
            _step(2, "rotator rotate --dry-run: the plan; nothing is changed")
            failed |= _run(specs, client, dry_run=True)
            _step(3, "rotator rotate: bootstrap creates, verifies, pushes, restarts the agents")
            failed |= _run(specs, client)
            _step(4, "rotator rotate, until every agent rolled out: the switch-over is recorded")
            failed |= _run(specs, client, settle=True)

            _step(5, "rotator status")
            now = utc_now()
            planned = observe_and_plan(specs, client, now=now)
            results = tuple(KeyResult(plan, "unchanged") for _, plan in planned)
            click.echo(status_table(RunReport(dry_run=True, started_at=now, results=results)))

            _step(6, "rotator rotate --force: a new key replaces the current one")
            failed |= _run(specs, client, force=True)
            _step(7, "rotator rotate, until the agents switched: the previous key is revoked")
            failed |= _run(specs, client, settle=True)

            _step(8, "rotator keys list --kind service-token: one live key")
            keys = sorted(client.list_keys(KeyKind.SERVICE_TOKEN), key=lambda k: k.name)
            click.echo(key_table("service-token", keys))
    if failed:
        raise click.ClickException("the demo rotation failed (see above)")
    click.echo(
        "\ndemo finished: the key was bootstrapped, rotated and the old one revoked only after "
        "every agent workload rolled out with the new value."
    )
