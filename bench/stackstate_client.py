"""StackState client against the emulator: time, requests and memory for list/create/verify.

Figures printed: wall time per operation, HTTP requests the emulator saw per operation, and the
peak Python memory while listing a large number of keys (what one observe cycle costs per kind).
"""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from rotator.secrets import Secret
from rotator.stackstate import StackStateClient
from rotator_sandbox.stackstate import StackStateEmulator

LISTED_KEYS = 5000
CREATES = 50


def run() -> None:
    """Print the figures."""
    with StackStateEmulator() as emulator:
        expiry = datetime.now(UTC) + timedelta(days=30)
        for index in range(LISTED_KEYS):
            emulator.seed_key("service-token", f"k-{index}", expiration=expiry, roles=["r"])
        with StackStateClient(
            base_url=emulator.url, service_token=Secret(emulator.service_token), timeout=10
        ) as client:
            tracemalloc.start()
            started = time.perf_counter()
            listed = client.list_keys("service-token")
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"list {len(listed)} service tokens: {elapsed * 1000:.1f} ms, "
                f"peak {peak / 1024 / 1024:.1f} MiB, 1 request"
            )

            emulator.clear_log()
            started = time.perf_counter()
            for index in range(CREATES):
                created = client.create_key(
                    "service-token",
                    f"bench-{index}",
                    expiration=expiry,
                    roles=["stackstate-ingest-telemetry"],
                )
                assert client.verify("service-token", created.value).accepted
            elapsed = time.perf_counter() - started
            requests = len(emulator.log)
            print(
                f"create+verify {CREATES} service tokens: {elapsed / CREATES * 1000:.1f} ms each, "
                f"{requests / CREATES:.1f} requests each (create, id lookup, verify)"
            )
