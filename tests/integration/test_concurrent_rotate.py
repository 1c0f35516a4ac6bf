"""Two ``rotator rotate --force`` processes at once on one configuration, as from two hosts.

Each process has its own ``--lock-file`` (the per-machine lock cannot help across hosts). Every
DELETE StackState receives is held after StackState processed it and before the answer goes
back, and while the deleting process waits the test checks invariants I1 and I2 at that
instant: every target holds a key StackState still has (so the deleted key is held by no
target). After every round I1 holds again and no two managed keys share a name, and a plain
``rotate`` finishes the switch-over (revoking the previous key: more DELETEs to check) so that
the next round's ``--force`` runs rotate again; leftovers of the runs that lost a race are swept
by later runs once ``orphan_min_age`` old. After the last round the key converges (I3: every
leftover is swept, one live key held by every target).

* without a shared lock the runs overlap: the random suffix of key names keeps their creates
  apart (the bug of issue 10: both created ``<name>-<same second>`` and one deleted both);
* with the Lease (``leader_election.enabled``, no daemon) the runs take turns: their engine
  runs never overlap;
* with the Vault lock (``lock: {type: vault}``) likewise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import structlog

from rotator_sandbox._server import Hold
from tests.plugins.world import NAMESPACE, World

#: Rounds per variant: 20 in all (a round is two processes, about 3s on two idle cores).
ROUNDS = {"none": 8, "lease": 6, "vault": 6}
PROCESS_TIMEOUT = 60
TOKEN_DELETE = r"/api/security/tokens/\d+"
#: Holds kept armed at once: more than the DELETEs two processes can have in flight.
ARMED_HOLDS = 3


@dataclass
class DeleteWatch:
    """Holds every service-token DELETE after processing and checks I1/I2 while it waits."""

    world: World
    managed: str
    deletes: int = 0
    violations: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> DeleteWatch:
        self._thread = threading.Thread(target=self._run, name="delete-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)
        self.world.stackstate.clear_faults()

    def _arm(self) -> Hold:
        return self.world.stackstate.hold("DELETE", TOKEN_DELETE, after_processing=True)

    def _run(self) -> None:
        armed = [self._arm() for _ in range(ARMED_HOLDS)]
        while not self._stop.is_set():
            for hold in list(armed):
                if not hold.arrived.is_set():
                    continue
                armed.remove(hold)
                armed.append(self._arm())  # re-armed before the check: none slips through
                try:
                    self._check()
                finally:
                    self.deletes += 1
                    hold.release()
            time.sleep(0.002)
        for hold in armed:
            hold.release()

    def _check(self) -> None:
        """At this instant every target holds a key StackState has (the deleted one is gone)."""
        live = {
            self.world.stackstate.value_of("service-token", k["id"])
            for k in self.world.stackstate.keys("service-token")
        }
        held = dict(zip(("secret", "vault", "file"), self.world.values(self.managed), strict=True))
        for target, value in held.items():
            if value not in live:
                self.violations.append(
                    f"DELETE #{self.deletes + 1}: target {target} holds a deleted key"
                )


@dataclass
class Run:
    """One ``rotate --force`` process."""

    process: subprocess.Popen[bytes]
    log_path: Path
    _log: Any

    def wait(self) -> int:
        """Wait for the exit code."""
        code = self.process.wait(timeout=PROCESS_TIMEOUT)
        self._log.close()
        return code

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines it wrote."""
        found = []
        for line in self.log_path.read_text().splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def run_window(self) -> tuple[datetime, datetime] | None:
        """From its engine run's start to its end, by its own log."""
        stamps = {e["event"]: e["timestamp"] for e in self.events() if "event" in e}
        if "run.started" not in stamps or "run.finished" not in stamps:
            return None
        return (
            datetime.fromisoformat(stamps["run.started"].replace("Z", "+00:00")),
            datetime.fromisoformat(stamps["run.finished"].replace("Z", "+00:00")),
        )


def start_rotate(config: Path, host: str, log_path: Path) -> Run:
    """``rotator rotate --force`` as a process with its own lock file (its own "host")."""
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rotator.cli",
            "--log-format",
            "json",
            "--config",
            str(config),
            "rotate",
            "--force",
            "--lock-file",
            str(config.parent / f"{host}.lock"),
            "--wait-timeout",
            "45s",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return Run(process, log_path, log)


def configure(world: World, variant: str) -> None:
    """The shared lock of the variant (none: each run has only its own lock file)."""
    if variant == "lease":
        world.sections["leader_election"] = {
            "enabled": True,
            "namespace": NAMESPACE,
            "lease_duration": "4s",
            "renew_deadline": "3s",
            "retry_period": "1s",
        }
    elif variant == "vault":
        world.sections["lock"] = {"type": "vault", "path": "stackstate-key-rotator/lock"}


def overlapped(first: tuple[datetime, datetime], second: tuple[datetime, datetime]) -> bool:
    """Whether two run windows overlap."""
    return first[0] < second[1] and second[0] < first[1]


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(ROUNDS))
def test_two_hosts_rotating_at_once_never_delete_a_held_key(world: World, variant: str) -> None:
    """Rounds of two concurrent ``rotate --force`` processes: I1/I2 at every DELETE, I1 and
    unique names after every round, convergence at the end; with a shared lock, no overlap."""
    world.add_key_with_workload("agent")
    world.settle()
    # Old enough to protect a concurrent run between its create and its push (about a
    # second here), young enough for later rounds to sweep what a lost race left behind.
    world.defaults = {"orphan_min_age": "8s"}
    configure(world, variant)
    config = world.write_config()
    structlog.reset_defaults()  # settle() logged to this phase's captured stderr
    overlapping_rounds = 0
    same_second_creates = 0
    rotations = 0
    codes: list[int] = []
    started = time.monotonic()
    with DeleteWatch(world, "agent") as watch:
        for round_number in range(ROUNDS[variant]):
            runs = [
                start_rotate(config, f"host-{i}", world.root / f"r{round_number}-{i}.log")
                for i in (0, 1)
            ]
            codes += [run.wait() for run in runs]
            windows = [run.run_window() for run in runs]
            assert all(windows), [run.log_path.read_text()[-2000:] for run in runs]
            if overlapped(windows[0], windows[1]):  # type: ignore[arg-type]
                overlapping_rounds += 1
            keys = world.managed_keys("service-token", "agent")
            names = [k["name"] for k in keys]
            assert len(names) == len(set(names)), f"round {round_number}: shared names {names}"
            stamps = [n.split("-")[1] for n in names]
            same_second_creates += len(stamps) - len(set(stamps))
            live = {world.stackstate.value_of("service-token", k["id"]) for k in keys}
            assert set(world.values("agent")) <= live, f"round {round_number}: I1 violated"
            rotations += sum(
                1 for run in runs for e in run.events() if e.get("event") == "key.rotated"
            )
            world.settle()  # switch-over recorded, previous key revoked: --force rotates again
            structlog.reset_defaults()
    print(  # shown with -s: what the rounds exercised
        f"\n{variant}: {ROUNDS[variant]} rounds in {time.monotonic() - started:.1f}s, "
        f"exit codes {codes}, {rotations} rotations, {watch.deletes} DELETEs held and checked, "
        f"{overlapping_rounds} rounds with overlapping runs, {same_second_creates} key names "
        "sharing their second with another one listed",
        file=sys.__stdout__,
    )
    assert watch.violations == []
    assert watch.deletes > 0, "no DELETE was exercised"
    if variant != "none":
        # One actor at a time: the second run waited for the first (no hand-over: no daemon).
        assert overlapping_rounds == 0
        assert codes == [0] * len(codes)
    # I3 and convergence: leftovers are swept once old enough, one key remains, held by all.
    world.defaults = {"orphan_min_age": "1s"}
    time.sleep(1.1)
    world.settle()
    (live_key,) = world.managed_keys("service-token", "agent")
    value = world.stackstate.value_of("service-token", live_key["id"])
    assert world.values("agent") == [value, value, value]
