"""``python -m bench``: what a user pays, measured on the CLI as a separate process.

Start-up against ``python -c pass`` and import floors; then, per size (100, 1,000 and 3,000
keys by default), bootstrap, the run after it, steady-state ``rotate``, ``rotate --dry-run``,
``status`` and a run where one key in ten rotates, each with requests per API, the most in
flight at once and its ratio to the request-bound limit; log-log slopes between the two largest
sizes; the daemon for a bounded time at one size. Writes ``bench/results.json`` and prints a
table. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.daemon import import_baseline, run_daemon
from bench.imports import cpu_count
from bench.scenarios import MAX_SETTLE_RUNS, run_cli, run_size
from bench.startup import measure_startup
from bench.world import World

DEFAULT_SIZES = (100, 1000, 3000)
RESULTS = Path(__file__).with_name("results.json")
#: Scenarios whose slope is printed.
SLOPED = ("bootstrap", "steady rotate", "rotate --dry-run", "status", "rotate 10% due")


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "cores": cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def slope(small: float, large: float, n_small: int, n_large: int) -> float | None:
    """The log-log slope between two sizes."""
    if small <= 0 or large <= 0 or n_small == n_large:
        return None
    return round(math.log(large / small) / math.log(n_large / n_small), 3)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="comma-separated key counts (default: %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="100 keys only, a short daemon run")
    parser.add_argument(
        "--daemon-size",
        type=int,
        default=1000,
        help="keys of the daemon run (default 1000; the largest size when not among --sizes)",
    )
    parser.add_argument(
        "--daemon-seconds", type=float, default=25.0, help="0 skips the daemon (default 25)"
    )
    parser.add_argument("--daemon-interval", type=int, default=10, help="seconds per tick")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up section")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each start-up figure and of each run that changes nothing (steady rotate, "
        "--dry-run, status); the median is kept (default 3)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    if args.quick:
        args.sizes = [100]
        args.daemon_seconds = min(args.daemon_seconds, 12.0)
        args.daemon_interval = min(args.daemon_interval, 5)
    if any(n < 1 for n in args.sizes):
        parser.error("--sizes: every size must be at least 1")
    if args.daemon_size not in args.sizes:
        args.daemon_size = max(args.sizes)
    return args


def progress(line: str) -> None:
    """One progress line, at once."""
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run everything, write the results, print the table."""
    args = parse_args(argv)
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "sizes": {}, "startup": None, "daemon": None}
    progress(f"bench: sizes {args.sizes}, results to {args.output}")
    with tempfile.TemporaryDirectory(prefix="rotator-bench-") as tmp:
        root = Path(tmp)
        if not args.no_startup:
            results["startup"] = measure_startup(
                root / "startup",
                progress,
                daemon_seconds=min(6.0, args.daemon_seconds or 6.0),
                repeat=args.repeat,
            )
        for size in args.sizes:
            world = World(size, root / f"size-{size}").start()
            try:
                results["sizes"][str(size)] = run_size(world, progress, repeat=args.repeat)
                if size == args.daemon_size and args.daemon_seconds > 0:
                    for _ in range(MAX_SETTLE_RUNS):
                        settle = run_cli(world, "settle", "rotate", "--output", "json")
                        if set(settle.outcomes) <= {"unchanged"}:
                            break
                    daemon = run_daemon(
                        world, seconds=args.daemon_seconds, interval=args.daemon_interval
                    )
                    if results["startup"] is not None:
                        baseline = results["startup"]["daemon_import_baseline"]
                    else:
                        baseline = import_baseline(world, seconds=6.0, repeat=args.repeat)
                    daemon["rss_after_imports_mib"] = baseline["rss_mib"]
                    daemon["rss_over_imports_mib"] = round(
                        daemon["rss_peak_mib"] - baseline["rss_mib"], 1
                    )
                    results["daemon"] = daemon
                    progress(
                        f"  daemon {daemon['keys']} keys: {daemon['list_calls_per_tick']} list "
                        f"calls/tick, cpu {daemon['cpu_s']} s, rss peak {daemon['rss_peak_mib']} "
                        "MiB"
                    )
            finally:
                world.stop()
    results["slopes"] = slopes(results["sizes"])
    results["steady_state_model"] = steady_model(results)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(render(results))
    print(f"figures in {args.output}")
    return 0


def slopes(sizes: dict[str, Any]) -> dict[str, Any]:
    """Log-log slopes of wall and CPU between the two largest sizes, per scenario."""
    ordered = sorted(int(n) for n in sizes)
    if len(ordered) < 2:
        return {}
    small, large = ordered[-2], ordered[-1]
    out: dict[str, Any] = {"between": [small, large]}
    for scenario in SLOPED:
        a = sizes[str(small)]["runs"].get(scenario)
        b = sizes[str(large)]["runs"].get(scenario)
        if a is None or b is None:
            continue
        out[scenario] = {
            "wall": slope(a["wall"], b["wall"], small, large),
            "cpu": slope(a["cpu"], b["cpu"], small, large),
            "stackstate_list_mib": slope(
                a["response_mib"]["stackstate list"],
                b["response_mib"]["stackstate list"],
                small,
                large,
            ),
            "requests": slope(
                sum(a["requests"].values()), sum(b["requests"].values()), small, large
            ),
        }
    return out


def steady_model(results: dict[str, Any]) -> dict[str, Any]:
    """Steady-state ``rotate`` as fixed + marginal cost per key (the two largest sizes), the
    marginal cost against one Secret GET round trip, the fixed cost against the import floor."""
    sizes = results["sizes"]
    ordered = sorted(int(n) for n in sizes)
    if len(ordered) < 2:
        return {}
    small, large = ordered[-2], ordered[-1]
    a = sizes[str(small)]["runs"]["steady rotate"]
    b = sizes[str(large)]["runs"]["steady rotate"]
    out: dict[str, Any] = {"between": [small, large]}
    for figure in ("wall", "cpu"):
        marginal = (b[figure] - a[figure]) / (large - small)
        out[f"{figure}_per_key_ms"] = round(marginal * 1000, 3)
        out[f"{figure}_fixed_s"] = round(a[figure] - marginal * small, 3)
    rtt = sizes[str(large)]["round_trip_ms"].get("secret get")
    if rtt:
        out["secret_get_round_trip_ms"] = rtt
        out["wall_per_key_to_secret_get"] = round(out["wall_per_key_ms"] / rtt, 3)
    startup = results.get("startup")
    if startup:
        floor = startup["imports"]["rotate"]["floor"]
        out["rotate_import_floor_cpu_s"] = floor["cpu"]
        out["cpu_fixed_to_import_floor"] = (
            round(out["cpu_fixed_s"] / floor["cpu"], 2) if floor["cpu"] else None
        )
    return out


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render(results: dict[str, Any]) -> str:
    """The readable table."""
    m = results["machine"]
    lines = [
        f"machine: {m['cores']} cores, {m['cpu_model']}, Python {m['python']}, "
        f"load average at start {m['load_average_at_start']}",
    ]
    startup = results.get("startup")
    if startup:
        commands = startup["commands"]
        base = commands["python -c pass"]
        lines += [
            "",
            f"start-up (medians; python -c pass = {base['cpu']:.3f} s CPU, {base['rss_mib']} MiB)",
            f"  {'command':<24}{'wall s':>8}{'cpu s':>8}{'x pass':>8}{'x floor':>9}{'rss MiB':>9}",
        ]
        for name, c in commands.items():
            if name == "python -c pass":
                continue
            lines.append(
                f"  {name:<24}{c['wall']:>8.2f}{c['cpu']:>8.2f}"
                f"{_fmt(c.get('cpu_to_python_pass')):>8}{_fmt(c.get('cpu_to_import_floor')):>9}"
                f"{c['rss_mib']:>9.1f}"
            )
        for name, info in startup["imports"].items():
            heavy = ", ".join(info["imports_heavy"]) or "none"
            lines.append(
                f"  {name:<13} imports {len(info['libraries'])} libraries "
                f"(floor {info['floor']['cpu']:.2f} s CPU); kubernetes/hvac/apscheduler: {heavy}"
            )
    lines += [
        "",
        "per size (each run a separate `rotator` process; cpu = its user+sys, emu cpu = the "
        "emulators' meanwhile; requests per API; in-flight = most "
        "requests at once across the three APIs; list MiB = StackState list answers; "
        "bound = Σ requests x median round trip)",
        f"  {'scenario':<20}{'keys':>6}{'wall s':>9}{'cpu s':>8}{'emu cpu':>8}{'rss MiB':>9}"
        f"{'stackstate':>11}{'kube':>7}{'vault':>7}{'inflt':>6}{'list MiB':>9}{'bound s':>9}"
        f"{'wall/bound':>11}",
    ]
    for size, section in sorted(results["sizes"].items(), key=lambda kv: int(kv[0])):
        for name, run in section["runs"].items():
            req = run["requests"]
            lines.append(
                f"  {name:<20}{size:>6}{run['wall']:>9.2f}{run['cpu']:>8.2f}"
                f"{run['emulator_cpu']:>8.2f}{run['rss_mib']:>9.1f}"
                f"{req['stackstate']:>11}{req['kubernetes']:>7}{req['vault']:>7}"
                f"{run['max_in_flight']['all']:>6}"
                f"{run['response_mib']['stackstate list']:>9.2f}{run['request_bound_s']:>9.3f}"
                f"{_fmt(run['wall_to_bound'], 1):>11}"
            )
        rtt = section["round_trip_ms"]
        lines.append(
            f"  round trips at {size} keys (ms): "
            + ", ".join(f"{k} {v:.2f}" for k, v in rtt.items() if k in _SHOWN_RTT)
        )
    sl = results.get("slopes") or {}
    if sl:
        a, b = sl["between"]
        lines += ["", f"log-log slopes {a} -> {b} keys (wall / cpu / requests / list MiB)"]
        for name in SLOPED:
            if name in sl:
                s = sl[name]
                lines.append(
                    f"  {name:<20}{_fmt(s['wall'], 3):>8}{_fmt(s['cpu'], 3):>8}"
                    f"{_fmt(s['requests'], 3):>8}{_fmt(s['stackstate_list_mib'], 3):>8}"
                )
    model = results.get("steady_state_model") or {}
    if model:
        lines += [
            "",
            "steady-state rotate = fixed + per key: "
            f"wall {model['wall_fixed_s']} s + {model['wall_per_key_ms']} ms/key, "
            f"cpu {model['cpu_fixed_s']} s + {model['cpu_per_key_ms']} ms/key",
        ]
        if "wall_per_key_to_secret_get" in model:
            lines.append(
                f"  wall per key = {model['wall_per_key_to_secret_get']}x one Secret GET round "
                f"trip ({model['secret_get_round_trip_ms']} ms)"
            )
        if model.get("cpu_fixed_to_import_floor") is not None:
            lines.append(
                f"  fixed cpu = {model['cpu_fixed_to_import_floor']}x the import floor of rotate "
                f"({model['rotate_import_floor_cpu_s']} s)"
            )
    daemon = results.get("daemon")
    if daemon:
        lines += [
            "",
            f"daemon ({daemon['keys']} keys, interval {daemon['interval_s']} s, "
            f"{daemon['seconds']} s, {daemon['ticks']} ticks): "
            f"{daemon['list_calls_per_tick']} StackState list calls per tick, "
            f"{daemon['secret_gets_per_tick']} Secret GETs per tick",
            f"  cpu {daemon['cpu_s']} s ({daemon['cpu_fraction_after_first_request']} of a core "
            f"after start-up); rss: after imports {daemon['rss_after_imports_mib']} MiB, "
            f"at first request {daemon['rss_at_first_request_mib']} MiB, "
            f"peak {daemon['rss_peak_mib']} MiB (+{daemon['rss_over_imports_mib']} MiB)",
        ]
    lines += ["", f"total {results['total_seconds']} s"]
    return "\n".join(lines)


_SHOWN_RTT = ("stackstate list", "secret get", "workload get", "kv read", "stackstate create")

if __name__ == "__main__":
    sys.exit(main())
