"""The daemon (``rotator run``) for a bounded time: list calls per tick, CPU and RSS.

The world's keys are settled first (nothing due), so every tick is a steady-state pass. The
daemon runs with ``schedule.interval`` = ``interval`` (no jitter) for ``seconds``; a tick is one
interval, counted from the daemon's first request (its start-up run). Sampled every 0.1 s from
/proc: RSS and CPU; the RSS when the first request arrives is the daemon's footprint before its
first run; the *import baseline* is a separate process importing every module the daemon
imports (measured by the caller with ``python -X importtime``), and nothing else.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import Any

from bench.imports import floor_cost, imported_modules, third_party, top_level
from bench.proc import ROTATOR, cpu_of, env_without_proxies, rss_of
from bench.requests import by_kind
from bench.world import World

#: Sampling period of RSS, CPU and request counts.
SAMPLE_SECONDS = 0.1
#: How long SIGTERM may take before the daemon is killed.
STOP_TIMEOUT = 90.0


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_daemon(world: World, *, seconds: float, interval: int) -> dict[str, Any]:
    """Run ``rotator run`` against ``world`` for ``seconds``; returns the daemon's figures."""
    config = world.write_config("daemon.yaml", server_port=free_port(), interval=f"{interval}s")
    world.reset_stats()
    log_path = world.root / "daemon.log"
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [ROTATOR, "--log-level", "warning", "--config", str(config), "run"],
            stdout=log,
            stderr=log,
            cwd=world.root,
            env=env_without_proxies(),
        )
        first_request: float | None = None
        rss_first: float | None = None
        cpu_first: float | None = None
        rss_last = 0.0
        cpu_last = 0.0
        deadline = started + seconds
        reaped: Any = None
        while time.perf_counter() < deadline:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:  # it exited by itself (a configuration or start-up error)
                process.returncode = os.waitstatus_to_exitcode(status)
                reaped = usage
                break
            rss = rss_of(process.pid)
            cpu = cpu_of(process.pid)
            if rss is not None and cpu is not None:
                rss_last, cpu_last = rss, cpu
            if first_request is None and world.combined.total > 0:
                first_request = time.perf_counter()
                rss_first, cpu_first = rss_last, cpu_last
            time.sleep(SAMPLE_SECONDS)
        ended = time.perf_counter()
        counts = {api: by_kind(api, e.stats.counts()) for api, e in world.emulators().items()}
        in_flight = world.combined.max_in_flight
        alive = reaped is None
        if alive:
            process.send_signal(signal.SIGTERM)
        usage = _wait(process) if alive else reaped
    window = ended - (first_request or ended)
    ticks = int(window // interval) + 1 if first_request is not None else 0
    lists = counts["stackstate"].get("stackstate list", 0)
    secret_gets = counts["kubernetes"].get("secret get", 0)
    return {
        "keys": world.size,
        "seconds": round(ended - started, 2),
        "interval_s": interval,
        "ran_until_stopped": alive,
        "start_to_first_request_s": (
            None if first_request is None else round(first_request - started, 2)
        ),
        "ticks": ticks,
        "stackstate_list_calls": lists,
        "list_calls_per_tick": round(lists / ticks, 2) if ticks else None,
        "secret_gets_per_tick": round(secret_gets / ticks, 1) if ticks else None,
        "requests": {api: sum(c.values()) for api, c in counts.items()},
        "max_in_flight": in_flight,
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "cpu_s_before_first_request": None if cpu_first is None else round(cpu_first, 2),
        "cpu_fraction_after_first_request": (
            round((cpu_last - (cpu_first or 0.0)) / window, 3) if window > 0 else None
        ),
        "rss_at_first_request_mib": None if rss_first is None else round(rss_first, 1),
        "rss_end_mib": round(rss_last, 1),
        "rss_peak_mib": round(usage.ru_maxrss / 1024, 1),
        "exit_code": process.returncode,
    }


def import_baseline(world: World, *, seconds: float, repeat: int) -> dict[str, Any]:
    """The daemon's RSS baseline: run it on ``world`` for ``seconds`` under ``-X importtime``
    to learn every module it imports, then measure a process importing just those."""
    config = world.write_config("daemon-imports.yaml", server_port=free_port())
    modules = imported_modules(
        ["--log-level", "warning", "--config", str(config), "run"], cwd=world.root, run_for=seconds
    )
    return {
        "modules": len(modules),
        "libraries": sorted(top_level(third_party(modules))),
        **floor_cost(modules, cwd=world.root, repeat=repeat).as_dict(),
    }


def _wait(process: subprocess.Popen[bytes]) -> Any:
    """Reap ``process`` with its rusage, killing it after :data:`STOP_TIMEOUT`."""
    deadline = time.perf_counter() + STOP_TIMEOUT
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage
        if time.perf_counter() > deadline:
            process.kill()
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage
        time.sleep(0.05)
