"""``rotator demo``: the product at work against the local sandbox, nothing outside this machine.

It starts the StackState, Vault and Kubernetes emulators in-process (with the four workloads of
the SUSE Observability agent chart), writes a configuration with one managed key delivered
through the ``suse-observability-agent`` preset, a Vault KV path and an agent YAML file, and then
runs the real engine through a whole life cycle: the dry-run plan, the bootstrap with its
restarts, the switch-over check, a forced rotation, and the revocation of the previous key once
every workload rolled out. It prints fingerprints, never values.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from rotator.cli import cli
from rotator.cli.keys import key_table
from rotator.cli.report import render_text, status_table
from rotator.engine.model import KeyResult, RunReport
from rotator.engine.run import observe_and_plan, run_once, utc_now

STEPS = 8


def _step(number: int, text: str) -> None:
    click.echo(click.style(f"\n[{number}/{STEPS}] {text}", bold=True))


@cli.command()
def demo() -> None:
    """Run the rotator against a local sandbox (no configuration needed)."""
    from rotator.config import load_config  # noqa: PLC0415 - demo only
    from rotator.sandbox.environment import EXAMPLE_KEY, Sandbox  # noqa: PLC0415
    from rotator.wiring import build_runtime  # noqa: PLC0415

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
            "(Secret + 4 workloads), a Vault KV path and an agent YAML file"
        )

        with build_runtime(config) as runtime:
            specs, client = runtime.specs, runtime.stackstate

            def run(number: int, title: str, *, dry_run: bool = False, force: bool = False) -> None:
                nonlocal failed
                _step(number, title)
                report = run_once(specs, client, dry_run=dry_run, force=force)
                failed = failed or report.failed
                click.echo(render_text(report))

            run(2, "rotator rotate --dry-run: the plan; nothing is changed", dry_run=True)
            run(3, "rotator rotate: bootstrap creates, verifies, pushes, restarts the agents")
            run(4, "rotator rotate: every agent rolled out: the switch-over is recorded")

            _step(5, "rotator status")
            now = utc_now()
            planned = observe_and_plan(specs, client, now=now)
            results = tuple(KeyResult(plan, "unchanged") for _, plan in planned)
            click.echo(status_table(RunReport(dry_run=True, started_at=now, results=results)))

            run(6, "rotator rotate --force: a new key replaces the current one", force=True)
            run(7, "rotator rotate: the agents switched, so the previous key is revoked")

            _step(8, "rotator keys list --kind service-token: one live key")
            keys = sorted(client.list_keys("service-token"), key=lambda k: k.name)
            click.echo(key_table("service-token", keys))
    if failed:
        raise click.ClickException("the demo rotation failed (see above)")
    click.echo(
        "\ndemo finished: the key was bootstrapped, rotated and the old one revoked only after "
        "all four agent workloads rolled out with the new value."
    )
