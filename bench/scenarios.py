"""One benchmark size: the CLI runs a user pays for, each as a separate process.

In order: ``check-config``; bootstrap (the first ``rotate``: create, verify, push every key) and
the run after it (records the switch-overs); runs until nothing changes; steady-state ``rotate``
(nothing due), ``rotate --dry-run``, ``status``; then one key in ten is made due (its expiry
moved to one day ahead in the StackState emulator) and ``rotate`` rotates them. Each run's
requests are counted per API and kind, with the most in flight at once; the round trips of
each kind are measured after the steady-state runs, so the request-bound limit of every run
uses the same state size.
"""

from __future__ import annotations

import json
import resource
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.proc import Cost, env_without_proxies, measure, rotator
from bench.requests import by_kind, kind_of, request_bound, round_trips
from bench.world import APIS, World

#: Runs that settle the keys after bootstrap (switch-over recorded, old keys revoked).
MAX_SETTLE_RUNS = 4


@dataclass
class Run:
    """One measured CLI run."""

    scenario: str
    cost: Cost
    outcomes: dict[str, int]
    kinds: dict[str, dict[str, int]]  #: api → kind → requests
    max_in_flight: dict[str, int]  #: api (and "all") → most requests in flight at once
    response_mib: dict[str, float]  #: api (and "stackstate list") → answered body MiB
    emulator_cpu: float  #: CPU seconds the emulators (this process) spent meanwhile
    bound: float = 0.0  #: request-bound limit, seconds
    repeats: int = 1  #: runs whose median ``cost`` is
    estimated: list[str] = field(default_factory=list)

    @property
    def requests(self) -> dict[str, int]:
        """Requests per API."""
        return {api: sum(self.kinds.get(api, {}).values()) for api in APIS}

    def as_dict(self) -> dict[str, Any]:
        """For results.json."""
        return {
            "scenario": self.scenario,
            "repeats": self.repeats,
            **self.cost.as_dict(),
            "outcomes": self.outcomes,
            "requests": self.requests,
            "requests_by_kind": self.kinds,
            "max_in_flight": self.max_in_flight,
            "response_mib": self.response_mib,
            "emulator_cpu": round(self.emulator_cpu, 3),
            "request_bound_s": round(self.bound, 4),
            "wall_to_bound": round(self.cost.wall / self.bound, 2) if self.bound else None,
            "bound_estimated_kinds": self.estimated,
        }


def _outcomes(out: str) -> dict[str, int]:
    try:
        document = json.loads(out)
    except ValueError:
        return {"unreadable-output": 1}
    return dict(Counter(str(k.get("outcome", "?")) for k in document.get("keys", [])))


def run_cli(world: World, scenario: str, *args: str) -> Run:
    """Run ``rotator --config <world> ARGS`` as a child and count its requests."""
    world.reset_stats()
    before = resource.getrusage(resource.RUSAGE_SELF)
    finished = measure(rotator(world.config_path, *args), cwd=world.root, env=env_without_proxies())
    after = resource.getrusage(resource.RUSAGE_SELF)
    # CPU of this process meanwhile: the three emulators serving the run.
    served = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    kinds = {
        api: dict(sorted(by_kind(api, emulator.stats.counts()).items()))
        for api, emulator in world.emulators().items()
    }
    in_flight = {api: e.stats.max_in_flight for api, e in world.emulators().items()}
    in_flight["all"] = world.combined.max_in_flight
    sent = {api: e.stats.response_bytes() for api, e in world.emulators().items()}
    mib = {api: round(sum(b.values()) / 2**20, 3) for api, b in sent.items()}
    mib["stackstate list"] = round(
        sum(
            size
            for (method, path), size in sent["stackstate"].items()
            if kind_of("stackstate", method, path) == "stackstate list"
        )
        / 2**20,
        3,
    )
    outcomes = _outcomes(finished.out) if "--output" in args else {}
    if (
        finished.cost.code not in (0, 1)
        or (finished.cost.code and not outcomes)
        or ("unreadable-output" in outcomes)
    ):
        # Exit 1 with a report is a run where a key failed (reported); anything else is a crash.
        tail = "\n".join(finished.err.strip().splitlines()[-8:])
        raise RuntimeError(f"{scenario}: rotator exited {finished.cost.code}:\n{tail}")
    return Run(scenario, finished.cost, outcomes, kinds, in_flight, mib, served)


def run_size(world: World, progress: Any, *, repeat: int = 1) -> dict[str, Any]:
    """Every scenario at ``world.size`` keys; returns the size's section of results.json.

    The runs that change nothing (steady ``rotate``, ``--dry-run``, ``status``) are repeated
    ``repeat`` times and each figure's median kept; the others happen once by nature.
    """
    runs: list[Run] = []

    def step(scenario: str, *args: str, times: int = 1) -> Run:
        tries = [run_cli(world, scenario, *args) for _ in range(times)]
        run = tries[-1]
        if times > 1:
            run.cost = Cost(
                wall=_median([t.cost.wall for t in tries]),
                cpu=_median([t.cost.cpu for t in tries]),
                rss_mib=_median([t.cost.rss_mib for t in tries]),
                code=max(t.cost.code for t in tries),
            )
        run.repeats = times
        progress(
            f"  {world.size:>5} keys  {scenario:<18} wall {run.cost.wall:7.2f} s  "
            f"cpu {run.cost.cpu:7.2f} s  rss {run.cost.rss_mib:6.1f} MiB  "
            f"requests {sum(run.requests.values()):>6}  {run.outcomes}"
        )
        return run

    runs.append(step("check-config", "check-config"))
    runs.append(step("bootstrap", "rotate", "--output", "json"))
    runs.append(step("bootstrap, 2nd run", "rotate", "--output", "json"))
    for _ in range(MAX_SETTLE_RUNS):
        settle = run_cli(world, "settle", "rotate", "--output", "json")
        if set(settle.outcomes) <= {"unchanged"}:
            break
    runs.append(step("steady rotate", "rotate", "--output", "json", times=repeat))
    runs.append(step("rotate --dry-run", "rotate", "--dry-run", "--output", "json", times=repeat))
    runs.append(step("status", "status", "--output", "json", times=repeat))
    rtt = round_trips(world)
    moved = world.make_due()
    runs.append(step("rotate 10% due", "rotate", "--output", "json"))
    for run in runs:
        run.bound, run.estimated = request_bound(run.kinds, rtt)
    return {
        "keys": world.size,
        "made_due": moved,
        "round_trip_ms": {kind: round(seconds * 1000, 3) for kind, seconds in sorted(rtt.items())},
        "runs": {run.scenario: run.as_dict() for run in runs},
    }


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]
