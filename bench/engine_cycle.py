"""One engine cycle over many managed keys: time, StackState requests and memory.

Keys are service tokens delivered to file targets (so the figures isolate the engine and the
StackState client from Kubernetes and Vault). Measured: the bootstrap run (create, verify, push
per key), the run that records the switch-overs, and a steady-state run where nothing is due —
the cost every scheduled cycle pays.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from collections import Counter
from datetime import timedelta
from pathlib import Path

from rotator.engine.model import KeySpec
from rotator.engine.policy import Windows
from rotator.engine.run import run_once
from rotator.secrets import Secret
from rotator.stackstate import StackStateClient
from rotator.targets.file import FileTarget
from rotator_sandbox.stackstate import StackStateEmulator

SIZES = (10, 100, 300)


def _specs(root: Path, count: int) -> list[KeySpec]:
    return [
        KeySpec(
            name=f"agent-{index}",
            kind="service-token",
            roles=("stackstate-ingest-telemetry",),
            description=None,
            dedicated_subject=None,
            validity=timedelta(days=90),
            rotate_before=timedelta(days=14),
            grace_period=timedelta(0),
            switch_timeout=timedelta(minutes=30),
            orphan_min_age=timedelta(hours=1),
            windows=Windows([]),
            targets=(FileTarget(root / f"agent-{index}.env", file_format="env", field="API_KEY"),),
        )
        for index in range(count)
    ]


def _run(emulator: StackStateEmulator, client: StackStateClient, specs: list[KeySpec]) -> str:
    emulator.clear_log()
    started = time.perf_counter()
    report = run_once(specs, client, dry_run=False)
    elapsed = time.perf_counter() - started
    outcomes = Counter(r.outcome for r in report.results)
    requests = Counter(
        f"{r.method} {r.path.rsplit('/', 1)[0] if r.path[-1].isdigit() else r.path}"
        for r in emulator.log
    )
    lists = sum(n for k, n in requests.items() if k == "GET /api/security/tokens")
    return (
        f"{elapsed * 1000:8.1f} ms, {len(emulator.log):4d} requests "
        f"({lists} list), outcomes {dict(outcomes)}"
    )


def _peak_memory(client: StackStateClient, specs: list[KeySpec]) -> float:
    """Peak Python allocation (MiB) of one steady-state run (timed separately: tracemalloc
    slows allocation-heavy code several times over)."""
    tracemalloc.start()
    run_once(specs, client, dry_run=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1024 / 1024


def run() -> None:
    """Print the figures for each size."""
    for count in SIZES:
        with tempfile.TemporaryDirectory() as tmp, StackStateEmulator() as emulator:
            client = StackStateClient(
                base_url=emulator.url, service_token=Secret(emulator.service_token), timeout=10
            )
            with client:
                specs = _specs(Path(tmp), count)
                print(f"{count} keys, bootstrap : {_run(emulator, client, specs)}")
                print(f"{count} keys, switch    : {_run(emulator, client, specs)}")
                print(f"{count} keys, steady    : {_run(emulator, client, specs)}")
                print(
                    f"{count} keys, steady run peak memory: {_peak_memory(client, specs):.1f} MiB"
                )
