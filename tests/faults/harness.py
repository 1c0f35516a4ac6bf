"""The fault world: a :class:`~tests.plugins.world.World` with alerts, history and a journal
switched on, the runs of one fault cell, and the invariant checks after each of them.

A cell (see ``test_matrix.py``) bootstraps one managed key ``agent`` (Secret, Vault path and a
YAML file, consumed by Deployment ``agent``), arms a fault, runs ``rotator rotate -o json`` once,
checks what the run reported, clears the fault and runs until a run changes nothing. Every check
returns a list of problems rather than raising, so the cell can write its result line (what
``make faults`` prints) before it fails.

Checks (``../../shared/DESIGN.md``):

- **I1** :meth:`FaultWorld.i1_problems` — every target holds a value of a live, unexpired key
  whose roles allow ingestion, judged from the StackState emulator's own state; checked after
  every run, and at every deletion (the deleted value must be in no target at that instant).
- **I2** :meth:`FaultWorld.i2_problems` — from the journal: a deleted key that ever reached a
  target was deleted after a restart PATCH of its consumer that followed the push of the value
  replacing it, with that rollout complete at the instant of the deletion, and no restart PATCH
  for that value came after the deletion.
- **I3** :meth:`FaultWorld.i3_problems` — once settled, every managed key in StackState is the
  one the targets hold (``orphan_min_age`` is 1s; settling waits that long when needed).
- **no duplicates** — no two StackState keys share a name; exactly one live managed key.
- **I4** :meth:`FaultWorld.leaks` — no value StackState ever issued, nor a configured
  credential, appears in any output, alert request or history file.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import time_machine

from rotator_sandbox.stackstate import ROLE_PERMISSIONS
from tests.faults.journal import DeletedKey, Exchange, Journal
from tests.plugins.alert_receiver import AlertReceiver
from tests.plugins.world import NAMESPACE, RESTART_ANNOTATION, World

#: The managed key every cell rotates, and the Deployment that consumes it.
KEY: Final = "agent"
#: Seconds StackState and Vault calls may take (the config's ``timeout``).
CALL_TIMEOUT_S: Final = 1
#: How long an injected slow answer takes: longer than CALL_TIMEOUT_S.
SLOW_S: Final = 1.5
#: ``orphan_min_age`` of the fault world.
ORPHAN_MIN_AGE_S: Final = 1
#: Runs after which a world that still changes something counts as not settling.
MAX_SETTLE_RUNS: Final = 8
#: The permission a key needs to ingest (what "StackState accepts" means for I1).
INGEST_PERMISSION: Final = "update-metrics"
#: The repository root: the working directory of rotator processes (``tests`` importable).
REPO: Final = Path(__file__).resolve().parents[2]
#: Seconds a rotator process may run before the cell fails.
PROCESS_TIMEOUT_S: Final = 120
#: The two key kinds.
KINDS: Final = ("service-token", "ingestion-api-key")
#: Alert events that report a failure of a managed key.
FAILURE_EVENTS: Final = frozenset({"rotation_failed", "switch_timeout"})

_NAME: Final = re.compile(r"^(?P<managed>.+)-(?P<stamp>\d{8}T\d{6}Z)(?:-[0-9a-f]{4})?$")


def managed_of(name: str) -> tuple[str, datetime] | None:
    """``(managed name, created at)`` of a name the rotator gives its keys, else None."""
    match = _NAME.match(name)
    if match is None:
        return None
    stamp = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return match["managed"], stamp


def orphan_name(managed: str, created: datetime) -> str:
    """A managed key name (``<managed>-<YYYYMMDDTHHMMSSZ>``, ``../../shared/CLI.md``)."""
    return f"{managed}-{created.astimezone(UTC):%Y%m%dT%H%M%SZ}"


@dataclass(frozen=True)
class Run:
    """One ``rotator`` invocation: exit code, parsed JSON report (when asked), outputs."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str
    doc: dict[str, Any] | None = None

    def entry(self, key: str = KEY) -> dict[str, Any] | None:
        """The report's entry of managed key ``key``."""
        if self.doc is None:
            return None
        return next((k for k in self.doc.get("keys", []) if k.get("key") == key), None)


@dataclass
class FaultWorld:
    """A world set up for fault cells, with everything a check needs to look at."""

    world: World
    journal: Journal
    receiver: AlertReceiver
    #: Managed keys of the world and their kinds.
    kinds: dict[str, str] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    #: Outputs of runs made outside :meth:`run` (processes), for the leak check.
    extra_outputs: list[str] = field(default_factory=list)
    #: Every value seen in a target after a run (files are not journaled).
    seen_in_targets: set[str] = field(default_factory=set)
    #: How far ahead of the wall clock the rotator's runs happen (``time_machine`` moves every
    #: wall clock of the process during a run, the Kubernetes emulator's included; StackState
    #: and Vault keep their frozen clocks).
    offset: timedelta = timedelta(0)

    # -- set-up --------------------------------------------------------------------------------

    @classmethod
    def create(cls, world: World, journal: Journal, receiver: AlertReceiver) -> FaultWorld:
        """Configure ``world``: short timeouts, small orphan age, a webhook, a history file."""
        fw = cls(world, journal, receiver)
        world.defaults = {
            "orphan_min_age": f"{ORPHAN_MIN_AGE_S}s",
            "grace_period": "0s",
            "switch_timeout": "5m",
        }
        world.sections.update(
            {
                "stackstate": {
                    "url": world.stackstate.url,
                    "service_token": world.stackstate.service_token,
                    "allow_insecure_http": True,
                    "timeout": f"{CALL_TIMEOUT_S}s",
                },
                "vault": {
                    "url": world.vault.url,
                    "auth": {"method": "token", "token": world.vault.root_token},
                    "timeout": f"{CALL_TIMEOUT_S}s",
                },
                "alerts": [{"type": "webhook", "url": f"{receiver.url}/hook", "timeout": "2s"}],
                "history": {"path": str(fw.history_path)},
            }
        )
        journal.probe = fw.probe
        return fw

    @property
    def history_path(self) -> Path:
        """The audit history (and, beside it, the alert state) of the world's runs."""
        return self.world.root / "state" / "history.jsonl"

    @property
    def managed(self) -> tuple[str, ...]:
        """The names of the managed keys."""
        return tuple(self.kinds)

    def add_key(self, name: str = KEY, kind: str = "service-token") -> None:
        """Managed key ``name`` of ``kind`` in three targets, consumed by Deployment ``name``
        (restarted by the rotator)."""
        self.world.kube.add_workload("Deployment", NAMESPACE, name)
        consumer = {"type": "kubernetes-workload", "namespace": NAMESPACE, "kind": "Deployment"}
        self.world.add_key(name, kind, consumers=[{**consumer, "name": name}])
        self.kinds[name] = kind

    # -- runs ----------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The rotator's time: the wall clock plus :attr:`offset`."""
        return datetime.now(UTC) + self.offset

    def run(self, *args: str) -> Run:
        """``rotator ARGS`` in-process, at :meth:`now`; ``-o json`` output is parsed."""
        if self.offset:
            with time_machine.travel(self.now(), tick=True):
                result = self.world.rotator(*args)
        else:
            result = self.world.rotator(*args)
        doc = None
        if "json" in args:
            try:
                doc = json.loads(result.out)
            except ValueError:
                doc = None
        run = Run(tuple(args), result.code, result.out, result.err, doc)
        self.runs.append(run)
        self.remember_targets()
        return run

    def command(self, *args: str) -> list[str]:
        """The argv of ``rotator ARGS`` as a process, with the world's configuration."""
        config = self.world.write_config()
        return [
            sys.executable,
            "-m",
            "rotator.cli",
            "--log-format",
            "json",
            "--config",
            str(config),
            *args,
        ]

    def run_process(self, argv: Sequence[str], args: Sequence[str]) -> Run:
        """Run ``argv`` (a rotator command, possibly wrapped) to completion; ``args`` are the
        rotator arguments in it (``-o json`` output is parsed)."""
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT_S,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )
        doc = None
        if "json" in args:
            try:
                doc = json.loads(result.stdout)
            except ValueError:
                doc = None
        run = Run(tuple(args), result.returncode, result.stdout, result.stderr, doc)
        self.runs.append(run)
        self.remember_targets()
        return run

    def remember_targets(self) -> None:
        """Note what the targets hold now (the file target is invisible to the journal)."""
        for name in self.managed:
            self.seen_in_targets.update(v for v in self.world.values(name) if v)

    def settle(self, problems: list[str], *, max_runs: int = MAX_SETTLE_RUNS) -> int:
        """Run ``rotate`` until a run changes nothing and no orphan is left; returns the runs.

        A run that exits non-zero after the faults were cleared is a problem. When a quiet run
        leaves an unreferenced managed key, wait until it is ``orphan_min_age`` old (key names
        carry whole seconds) and run again: that next completed run must delete it (I3).
        """
        waited = False
        for count in range(1, max_runs + 1):
            run = self.run("rotate", "-o", "json")
            problems += self.i1_problems(f"after settling run {count}")
            if run.code != 0 or run.doc is None:
                entry = run.entry() or {}
                problems.append(
                    f"settling run {count} exited {run.code}: failure={entry.get('failure')} "
                    f"error={entry.get('error')}"
                )
                continue
            if any(k["outcome"] != "unchanged" for k in run.doc["keys"]):
                continue
            orphans = self.unreferenced()
            if orphans and not waited:
                waited = True
                wait_until_older(orphans, ORPHAN_MIN_AGE_S, self.now())
                continue
            return count
        problems.append(f"did not settle in {max_runs} runs")
        return max_runs

    def bootstrap(self) -> None:
        """Create the first key and let every consumer switch to it."""
        problems: list[str] = []
        self.settle(problems)
        assert not problems, problems

    # -- StackState as the checks see it ------------------------------------------------------

    def live_keys(self, kind: str = "service-token") -> list[dict[str, Any]]:
        """Every StackState key of ``kind`` with its value (``_value``)."""
        stackstate = self.world.stackstate
        return [
            {**k, "_value": stackstate.value_of(kind, k["id"])}  # type: ignore[arg-type]
            for k in stackstate.keys(kind)  # type: ignore[arg-type]
        ]

    def managed_live(self, name: str) -> list[dict[str, Any]]:
        """Live StackState keys (of its kind) whose name belongs to managed key ``name``."""
        return [
            k
            for k in self.live_keys(self.kinds[name])
            if (parsed := managed_of(k["name"])) is not None and parsed[0] == name
        ]

    def accepted(self, value: str, kind: str = "service-token") -> str | None:
        """None when StackState accepts ``value`` for ingestion now, else why not."""
        now_ms = int(self.world.stackstate.now().timestamp() * 1000)
        for key in self.live_keys(kind):
            if key["_value"] != value:
                continue
            expiration = key.get("expiration")
            if expiration is not None and expiration <= now_ms:
                return f"key {key['name']} expired"
            if kind == "service-token":
                granted = set().union(
                    *(ROLE_PERMISSIONS.get(r, frozenset()) for r in key.get("roles", []))
                )
                if INGEST_PERMISSION not in granted:
                    return f"key {key['name']} lacks {INGEST_PERMISSION}"
            return None
        return "no live key holds it"

    def unreferenced(self) -> list[dict[str, Any]]:
        """Managed keys no target holds (orphans, or a previous key not yet revoked)."""
        found = []
        for name in self.managed:
            held = set(self.world.values(name))
            found += [k for k in self.managed_live(name) if k["_value"] not in held]
        return found

    # -- invariants ----------------------------------------------------------------------------

    def i1_problems(self, when: str) -> list[str]:
        """I1 now: every target holds a value StackState accepts."""
        problems = []
        labels = ("Secret", "Vault", "file")
        for name in self.managed:
            for label, value in zip(labels, self.world.values(name), strict=True):
                if value is None:
                    problems.append(f"I1 {when}: {name} {label} holds no value")
                elif (why := self.accepted(value, self.kinds[name])) is not None:
                    problems.append(f"I1 {when}: {name} {label} holds a value that fails: {why}")
        return problems

    def duplicate_problems(self, when: str) -> list[str]:
        """No two StackState keys share a name."""
        names = [k["name"] for kind in KINDS for k in self.live_keys(kind)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        return [f"duplicate key names {when}: {duplicates}"] if duplicates else []

    def i3_problems(self) -> list[str]:
        """Settled: exactly one live managed key per managed key, held by every target."""
        problems = []
        for name in self.managed:
            live = self.managed_live(name)
            values = self.world.values(name)
            if len(live) != 1:
                problems.append(
                    f"I3/duplicates: {len(live)} live keys of {name}: {[k['name'] for k in live]}"
                )
                continue
            if values != [live[0]["_value"]] * 3:
                problems.append(f"I3: the live key of {name} is not what every target holds")
        return problems

    def probe(self, key: DeletedKey) -> dict[str, Any]:
        """Called at the instant a deletion takes effect: what the targets and workload hold."""
        parsed = managed_of(key.name)
        managed = parsed[0] if parsed is not None else None
        if managed not in self.managed:
            return {"managed": None}
        kube = self.world.kube
        workload = kube.get("deployments", NAMESPACE, managed)
        return {
            "managed": managed,
            "held": self.world.values(managed),
            "generation": (workload or {}).get("metadata", {}).get("generation"),
            "observed": (workload or {}).get("status", {}).get("observedGeneration"),
            "complete": kube.rollout_complete("Deployment", NAMESPACE, managed)
            if workload is not None
            else None,
        }

    def i2_problems(self) -> list[str]:
        """I2 (and I1 at each deletion) from the journal and the deletion probes."""
        exchanges = self.journal.exchanges
        problems = []
        for deletion in self.journal.deletions:
            key = deletion.key
            if deletion.error is not None:
                problems.append(f"I2: probe failed at deletion of {key.name}: {deletion.error}")
                continue
            managed = deletion.seen.get("managed")
            if managed is None:
                continue
            held: list[str | None] = deletion.seen["held"]
            if key.value in held:
                problems.append(f"I1/I2: {key.name} deleted while a target of {managed} held it")
                continue
            if not self._ever_pushed(exchanges, managed, key.value, deletion.seq):
                continue  # never reached a target: no consumer could use it
            problems += self._switched_before(exchanges, managed, deletion, held[0])
        return problems

    def _ever_pushed(
        self, exchanges: Sequence[Exchange], managed: str, value: str, before: int
    ) -> bool:
        if any(v == value for _, v in secret_writes(exchanges, managed) if _ < before):
            return True
        vault_path = f"/v1/secret/data/stackstate/{managed}"
        if any(
            x.seq < before and x.service == "vault" and x.path == vault_path and ok(x)
            for x in exchanges
            if value.encode() in x.body
        ):
            return True
        return value in self.seen_in_targets

    def _switched_before(
        self,
        exchanges: Sequence[Exchange],
        managed: str,
        deletion: Any,
        new_value: str | None,
    ) -> list[str]:
        name = deletion.key.name
        if new_value is None:
            return [f"I2: {name} deleted while the Secret of {managed} held nothing"]
        writes = secret_writes(exchanges, managed)
        first = next((seq for seq, v in writes if v == new_value), None)
        if first is None or first > deletion.seq:
            return [f"I2: {name} deleted, but the value replacing it was never pushed before"]
        later = [seq for seq, v in writes if seq > first and v != new_value]
        until = min(later) if later else len(exchanges)
        restarts = [r for r in restart_patches(exchanges, managed) if first < r[0] < until]
        before = [r for r in restarts if r[0] < deletion.seq]
        problems = []
        if not before:
            problems.append(
                f"I2: {name} deleted before any restart of Deployment {managed} after the push "
                "of the value replacing it"
            )
        after = [r for r in restarts if r[0] > deletion.seq]
        if after:
            problems.append(f"I2: {len(after)} restart PATCH(es) of {managed} came after {name}")
        if not deletion.seen.get("complete"):
            problems.append(
                f"I2: {name} deleted while the rollout of Deployment {managed} was incomplete"
            )
        generations = [g for _, g in before if g is not None]
        observed = deletion.seen.get("observed") or 0
        if generations and observed < max(generations):
            problems.append(
                f"I2: {name} deleted before Deployment {managed} observed its restart "
                f"(observed generation {observed} < {max(generations)})"
            )
        return problems

    # -- alerts and leaks ------------------------------------------------------------------------

    def failure_alerts(self, since: int = 0) -> list[dict[str, Any]]:
        """Failure alerts (rotation_failed, switch_timeout) received from index ``since``."""
        return [b for b in self.receiver.bodies()[since:] if b.get("event") in FAILURE_EVENTS]

    def texts(self) -> list[tuple[str, str]]:
        """Everything that left the rotator: outputs, alert requests, history files."""
        found = [(f"run {' '.join(r.args)} stdout", r.out) for r in self.runs]
        found += [(f"run {' '.join(r.args)} stderr", r.err) for r in self.runs]
        found += [("process output", text) for text in self.extra_outputs]
        for received in self.receiver.received:
            found.append(("alert body", received.body.decode("utf-8", "replace")))
            found.append(("alert headers", json.dumps(received.headers)))
        state_dir = self.history_path.parent
        if state_dir.is_dir():
            found += [
                (f"file {p.name}", p.read_text("utf-8", "replace"))
                for p in sorted(state_dir.iterdir())
                if p.is_file()
            ]
        return found

    def leaks(self) -> list[str]:
        """I4: where a secret value appears in what left the rotator."""
        values = [v for v in self.world.secret_values() if v]
        return [
            f"I4: a secret value ({value[:4]}...) appears in {where}"
            for where, text in self.texts()
            for value in values
            if value in text
        ]

    def final_problems(self) -> list[str]:
        """Every invariant after settling."""
        return [
            *self.i1_problems("after settling"),
            *self.i2_problems(),
            *self.i3_problems(),
            *self.duplicate_problems("after settling"),
            *self.leaks(),
        ]


def ok(exchange: Exchange) -> bool:
    """Whether an exchange took effect with a 2xx (answered or not: a lost answer counts)."""
    return exchange.status is not None and 200 <= exchange.status < 300


def secret_writes(exchanges: Iterable[Exchange], managed: str) -> list[tuple[int, str | None]]:
    """``(seq, value)`` of every applied write of the Secret of ``managed`` (create or
    replace), ``value`` being what its data key holds afterwards."""
    name = f"{managed}-secrets"
    collection = f"/api/v1/namespaces/{NAMESPACE}/secrets"
    found = []
    for x in exchanges:
        if x.service != "kubernetes" or not ok(x) or x.method not in ("PUT", "POST", "PATCH"):
            continue
        if x.path not in (collection, f"{collection}/{name}"):
            continue
        try:
            body = json.loads(x.response_body)
        except ValueError:
            continue
        if not isinstance(body, dict) or body.get("metadata", {}).get("name") != name:
            continue
        raw = (body.get("data") or {}).get("STS_API_KEY")
        try:
            found.append((x.seq, base64.b64decode(raw).decode() if raw else None))
        except (binascii.Error, UnicodeDecodeError):
            found.append((x.seq, None))
    return found


def restart_patches(exchanges: Iterable[Exchange], managed: str) -> list[tuple[int, int | None]]:
    """``(seq, generation after)`` of every applied restart PATCH of Deployment ``managed``."""
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{managed}"
    found = []
    for x in exchanges:
        if x.method == "PATCH" and x.path == path and ok(x) and RESTART_ANNOTATION in x.body:
            try:
                generation = json.loads(x.response_body).get("metadata", {}).get("generation")
            except (ValueError, AttributeError):
                generation = None
            found.append((x.seq, generation))
    return found


def wait_until_older(keys: Sequence[Mapping[str, Any]], seconds: int, now: datetime) -> None:
    """Sleep until every key's name-stamped creation time is ``seconds`` old on the rotator's
    clock, which reads ``now`` at the moment (whole seconds, as it truncates its time)."""
    stamps = [p[1] for k in keys if (p := managed_of(str(k["name"]))) is not None]
    if not stamps:
        return
    due = max(stamps) + timedelta(seconds=seconds)
    delay = (due - now).total_seconds()
    if delay > 0:
        time.sleep(delay + 0.05)


def results_path(default_dir: Path) -> Path:
    """Where cells append their result line: ``$FAULTS_RESULTS``, else under ``default_dir``."""
    configured = os.environ.get("FAULTS_RESULTS")
    return Path(configured) if configured else default_dir / "faults-results.jsonl"


def append_result(path: Path, line: Mapping[str, Any]) -> None:
    """Append one JSON line (one ``write`` with O_APPEND: xdist workers do not interleave)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(line, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
