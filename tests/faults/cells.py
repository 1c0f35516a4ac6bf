"""The cells of the fault matrix run in-process: step x fault, how to arm and clear it, and what
the run must report (``../../shared/CLI.md``: ``failure.step``, ``failure.category``, exit code).

Expected categories (``rotator/errors.py``): ``retry`` for 5xx, 429, timeouts, dropped answers,
conflicts and a sealed Vault; ``fix-permissions`` for 401/403; ``fix-config`` for a 404/422 on a
target or workload; ``human`` for a paused Deployment, a stalled rollout and a foreign owner;
``wait`` (exit 0) for a rollout in progress.

A cell whose product behaviour departs from that carries ``finding``: its test is an
``xfail(strict=True)`` that keeps asserting the contract, so fixing the product turns it into an
XPASS (and the mark must go).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest

from rotator_sandbox.kubernetes import KubernetesEmulator
from tests.faults.harness import CALL_TIMEOUT_S, KEY, SLOW_S, FaultWorld, Run, orphan_name
from tests.plugins.world import NAMESPACE

#: A step of a cell (arm, prepare, clear); what it returns is ignored.
Action = Callable[[FaultWorld], object]
#: How a cell's faulty run is made: in-process unless the cell says otherwise.
Runner = Callable[[FaultWorld, tuple[str, ...]], Run]
#: A cell's own check of the faulty run: the world and the journal length when it was armed.
Check = Callable[[FaultWorld, int], list[str]]

#: StackState paths (the emulator serves the API under /api).
TOKENS: Final = r"/api/security/tokens"
TOKEN: Final = r"/api/security/tokens/\d+"
AUTHORIZATION: Final = r"/api/user/authorization/for"
INGESTION_KEYS: Final = r"/api/security/ingestion/api_keys"
INGESTION_KEY: Final = r"/api/security/ingestion/api_keys/\d+"
AUTHORIZE: Final = r"/api/security/ingestion/authorize"
#: The faults an ingestion API key meets on its own paths: those with a handling of their own
#: (refused, answer lost; no answer to its create, which answers the id itself); the other
#: statuses and timeouts go through the same client code as the service-token cells.
INGESTION_FAULTS: Final = {"403": "fix-permissions", "drop": "retry"}
#: The writes of a KV v2 push (custom_metadata first, then the data).
VAULT_WRITE: Final = rf"/v1/secret/(?:data|metadata)/stackstate/{KEY}"
VAULT_DATA: Final = rf"/v1/secret/data/stackstate/{KEY}"
SECRET: Final = rf"/api/v1/namespaces/{NAMESPACE}/secrets/{KEY}-secrets"
DEPLOYMENT: Final = rf"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{KEY}"
#: Longer than the Kubernetes client's fixed 10 s request timeout (not configurable).
KUBE_SLOW_S: Final = 10.5
#: A create so slow that the client's look-up after its timeout always comes before it lands.
CREATE_SLOW_S: Final = 3.0
#: An answer that never stops being dropped, until cleared.
FOREVER: Final = 10_000
#: Vault's answer to a check-and-set write whose version is stale.
CAS_MISMATCH: Final = {"errors": ["check-and-set parameter did not match the current version"]}


#: Cells where the product departs from the contract, by cell id: what it does instead.
FINDINGS: Final = {
    "kubernetes/switch/switch-timeout-after-restart-403": (
        "past switch_timeout a consumer whose restart failed is restarted again once the 403 is "
        "gone and the key then settles by itself, but the run that restarts it still exits 1 "
        "(SwitchTimeout: the timeout counts from the push, not from the restart that finally "
        "went through)"
    ),
}


def with_findings(cells: Iterable[Cell]) -> list[Cell]:
    """``cells``, each carrying its entry of :data:`FINDINGS` (if any)."""
    return [dataclasses.replace(c, finding=FINDINGS.get(c.id, c.finding)) for c in cells]


def nothing(fw: FaultWorld) -> None:
    """No preparation."""


def clear_all(fw: FaultWorld) -> None:
    """Disarm every fault of every emulator and undo every state fault."""
    world = fw.world
    for emulator in (world.stackstate, world.vault, world.kube):
        emulator.clear_faults()
    world.kube.allow_all()
    for name in fw.managed:
        world.kube.conflict_next_update("secrets", NAMESPACE, f"{name}-secrets", count=0)
        world.kube.conflict_next_update("deployments", NAMESPACE, name, count=0)
    world.vault.unseal()


@dataclass(frozen=True)
class Cell:
    """One step x fault of the matrix."""

    service: str
    step: str
    fault: str
    category: str
    arm: Action
    args: tuple[str, ...] = ("rotate", "--force")
    prepare: Action = nothing
    clear: Action = clear_all
    exit: int = 1
    #: Whether a failure alert must be sent (a ``wait`` is progress, not an alert).
    alert: bool = True
    finding: str | None = None
    #: Makes the faulty run (e.g. a process in a namespace); None: in-process.
    runner: Runner | None = None
    #: Checks of this cell beyond the report (see :data:`Check`).
    check: Check | None = None
    #: Seconds to let slow requests still in flight land after clearing, before settling.
    drain_s: float = 0.0
    #: The kind of the managed key the cell rotates.
    kind: str = "service-token"

    @property
    def id(self) -> str:
        """``service/step/fault`` (``stackstate-ingestion`` for an ingestion API key)."""
        service = "stackstate-ingestion" if self.kind == "ingestion-api-key" else self.service
        return f"{service}/{self.step}/{self.fault}"


# -- StackState -----------------------------------------------------------------------------------


def stackstate_fault(method: str, pattern: str, fault: str, *, slow: float = SLOW_S) -> Action:
    """Arm a persistent StackState fault of kind ``fault`` on ``method pattern`` (a timeout
    answers after ``slow`` seconds)."""

    def arm(fw: FaultWorld) -> None:
        emulator = fw.world.stackstate
        if fault in ("500", "401", "403"):
            emulator.fail_next(method, pattern, int(fault), count=None)
        elif fault == "429":
            emulator.throttle_next(method, pattern, retry_after="1", count=None)
        elif fault == "timeout":
            emulator.add_latency(method, pattern, slow, count=None)
        elif fault == "drop":
            emulator.drop_after_processing(method, pattern, count=FOREVER)
        else:  # pragma: no cover - a typo in the table
            raise ValueError(fault)

    return arm


def rotated(fw: FaultWorld) -> None:
    """A forced rotation whose switch-over completes: the next run revokes the previous key."""
    run = fw.run("rotate", "--force", "-o", "json")
    assert run.code == 0, run.out + run.err


def orphan(fw: FaultWorld) -> None:
    """A managed key two hours old that no target references: the next run sweeps it."""
    kind = fw.kinds[KEY]
    fw.world.stackstate.seed_key(
        kind,  # type: ignore[arg-type]
        orphan_name(KEY, datetime.now(UTC) - timedelta(hours=2)),
        expiration=datetime.now(UTC) + timedelta(days=30),
        roles=["stackstate-ingest-telemetry"] if kind == "service-token" else (),
    )


#: Past the fault world's switch_timeout (5m) since the push.
PAST_SWITCH_TIMEOUT: Final = timedelta(minutes=10)


def later(fw: FaultWorld) -> None:
    """From now on the rotator's runs happen past the switch timeout."""
    fw.offset = PAST_SWITCH_TIMEOUT


#: step -> (method, path of a service token's call, of an ingestion key's call, the faulty
#: run's arguments, preparation).
STACKSTATE_STEPS: Final = {
    "observe": ("GET", TOKENS, INGESTION_KEYS, ("rotate", "--force"), nothing),
    "create": ("POST", TOKENS, INGESTION_KEYS, ("rotate", "--force"), nothing),
    "verify": ("GET", AUTHORIZATION, AUTHORIZE, ("rotate", "--force"), nothing),
    "revoke": ("DELETE", TOKEN, INGESTION_KEY, ("rotate",), rotated),
    "sweep": ("DELETE", TOKEN, INGESTION_KEY, ("rotate",), orphan),
}
STACKSTATE_FAULTS: Final = {
    "500": "retry",
    "401": "fix-permissions",
    "403": "fix-permissions",
    "429": "retry",
    "timeout": "retry",
    "drop": "retry",
}


def one_create(fw: FaultWorld, since: int) -> list[str]:
    """I6: a create whose outcome is unknown is resolved by listing, never by creating again:
    the faulty run sends one create (the next run may make a new one). After a timeout the
    look-up is no proof: the first create may still be on its way (it lands later here)."""
    kind = fw.kinds[KEY]
    path = TOKENS if kind == "service-token" else INGESTION_KEYS
    creates = [
        x
        for x in fw.journal.exchanges[since:]
        if x.service == "stackstate" and x.method == "POST" and x.path == path
    ]
    if len(creates) <= 1:
        return []
    names = sorted({str(json.loads(x.body).get("name")) for x in creates})
    live = [k["name"] for k in fw.live_keys(kind) if k["name"] in names]
    return [
        f"I6: one run sent {len(creates)} creates named {names}, creating again after the "
        f"first timed out; once all landed, {len(live)} live keys carried that name (keys "
        "nobody knows the value of, left for the sweep)"
    ]


def stackstate_cell(step: str, fault: str, category: str, kind: str = "service-token") -> Cell:
    """One StackState step x fault, for a managed key of ``kind``."""
    method, token_path, ingestion_path, args, prepare = STACKSTATE_STEPS[step]
    if kind == "ingestion-api-key":
        pattern = ingestion_path
        if step == "verify":
            method = "POST"  # ingestion keys are verified with POST .../authorize
    else:
        pattern = token_path
    slow = CREATE_SLOW_S if step == "create" else SLOW_S
    timeout = fault == "timeout"
    return Cell(
        "stackstate",
        step,
        fault,
        category,
        stackstate_fault(method, pattern, fault, slow=slow),
        args=args,
        prepare=prepare,
        check=one_create if step == "create" and timeout else None,
        drain_s=slow - CALL_TIMEOUT_S + 0.2 if timeout else 0.0,
        kind=kind,
    )


def stackstate_cells() -> list[Cell]:
    """Every StackState step x fault for service tokens, and the faults with a handling of
    their own for ingestion API keys."""
    return [
        *(
            stackstate_cell(step, fault, category)
            for step in STACKSTATE_STEPS
            for fault, category in STACKSTATE_FAULTS.items()
        ),
        *(
            stackstate_cell(step, fault, category, "ingestion-api-key")
            for step in STACKSTATE_STEPS
            for fault, category in INGESTION_FAULTS.items()
        ),
        stackstate_cell("create", "timeout", "retry", "ingestion-api-key"),
    ]


# -- Vault ----------------------------------------------------------------------------------------


class _SealOnArrival:
    """Seal Vault the moment the push's first write arrives, then let that write go on."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None

    def arm(self, fw: FaultWorld) -> None:
        vault = fw.world.vault
        hold = vault.hold("POST", VAULT_WRITE)

        def seal() -> None:
            if hold.wait_arrived(60):
                vault.seal()
            hold.release()

        self.thread = threading.Thread(target=seal, name="seal-on-arrival", daemon=True)
        self.thread.start()

    def clear(self, fw: FaultWorld) -> None:
        clear_all(fw)
        if self.thread is not None:
            self.thread.join(timeout=5)


def clear_then_later(fw: FaultWorld) -> None:
    """Every fault gone, and the next runs come past the switch timeout (hourly cron runs
    with a shorter switch_timeout do that)."""
    clear_all(fw)
    later(fw)


def vault_cells() -> list[Cell]:
    """Vault sealed (at observe, and mid-push), 403, check-and-set conflict, timeout, and an
    answer lost mid-push followed by runs further apart than the switch timeout."""
    sealed = _SealOnArrival()
    return [
        Cell(
            "vault",
            "push",
            "answer-lost+runs-10m-apart",
            "retry",
            lambda fw: fw.world.vault.drop_after_processing("POST", VAULT_DATA),
            clear=clear_then_later,
        ),
        Cell("vault", "observe", "sealed", "retry", lambda fw: fw.world.vault.seal()),
        Cell(
            "vault",
            "observe",
            "403",
            "fix-permissions",
            lambda fw: fw.world.vault.fail_next(
                "GET", VAULT_DATA, 403, count=None, body={"errors": ["permission denied"]}
            ),
        ),
        Cell("vault", "push", "sealed", "retry", sealed.arm, clear=sealed.clear),
        Cell(
            "vault",
            "push",
            "403",
            "fix-permissions",
            lambda fw: fw.world.vault.fail_next(
                "POST", VAULT_WRITE, 403, count=None, body={"errors": ["permission denied"]}
            ),
        ),
        Cell(
            "vault",
            "push",
            "cas-conflict",
            "retry",
            lambda fw: fw.world.vault.fail_next(
                "POST", VAULT_DATA, 400, count=None, body=CAS_MISMATCH
            ),
        ),
        Cell(
            "vault",
            "push",
            "timeout",
            "retry",
            lambda fw: fw.world.vault.add_latency("POST", VAULT_WRITE, SLOW_S, count=None),
            drain_s=SLOW_S - CALL_TIMEOUT_S + 0.2,
        ),
    ]


# -- Kubernetes -----------------------------------------------------------------------------------


def _kube(fw: FaultWorld) -> KubernetesEmulator:
    return fw.world.kube


def kube_write_cells(step: str, method: str, path: str, plural: str, name: str) -> list[Cell]:
    """409 every time, 403, 404, 422 and a timeout on one Kubernetes write."""
    verb = "update" if method == "PUT" else "patch"
    return [
        Cell(
            "kubernetes",
            step,
            "409",
            "retry",
            lambda fw: _kube(fw).conflict_next_update(plural, NAMESPACE, name, count=FOREVER),
        ),
        Cell(
            "kubernetes", step, "403", "fix-permissions", lambda fw: _kube(fw).forbid(verb, plural)
        ),
        Cell(
            "kubernetes",
            step,
            "404",
            "fix-config",
            lambda fw: _kube(fw).fail_next(method, path, 404, count=None),
        ),
        Cell(
            "kubernetes",
            step,
            "422",
            "fix-config",
            lambda fw: _kube(fw).fail_next(method, path, 422, count=None),
        ),
        Cell(
            "kubernetes",
            step,
            "timeout",
            "retry",
            lambda fw: _kube(fw).add_latency(method, path, KUBE_SLOW_S, count=None),
            drain_s=KUBE_SLOW_S - 10 + 0.2,
        ),
    ]


def slow_rollout(fw: FaultWorld) -> None:
    """Rollouts of the Deployment take an hour from now on."""
    _kube(fw).set_rollout_seconds("Deployment", NAMESPACE, KEY, 3600)


def rotated_slowly(fw: FaultWorld) -> None:
    """A forced rotation (push and restart) whose rollout then takes an hour."""
    slow_rollout(fw)
    rotated(fw)


def stalled_rotation(fw: FaultWorld) -> None:
    """A forced rotation (push and restart) whose rollout then never progresses."""
    _kube(fw).stall("Deployment", NAMESPACE, KEY)
    rotated(fw)


def release_rollout(fw: FaultWorld) -> None:
    """Rollouts at full speed again, not stalled, not paused."""
    clear_all(fw)
    kube = _kube(fw)
    kube.stall("Deployment", NAMESPACE, KEY, stalled=False)
    kube.pause(NAMESPACE, KEY, paused=False)
    kube.set_rollout_seconds("Deployment", NAMESPACE, KEY, None)


def restart_refused(fw: FaultWorld) -> None:
    """A forced rotation whose restart is refused (403): pushed, the consumer never restarted."""
    _kube(fw).forbid("patch", "deployments")
    run = fw.run("rotate", "--force", "-o", "json")
    assert run.code == 1, run.out + run.err


def delete_workload(fw: FaultWorld) -> None:
    """The Deployment the key's consumer names is gone."""
    assert _kube(fw).delete("deployments", NAMESPACE, KEY)


def recreate_workload(fw: FaultWorld) -> None:
    """The Deployment is back (rolled out, reading the Secret as before)."""
    clear_all(fw)
    _kube(fw).add_workload("Deployment", NAMESPACE, KEY)


def set_helm_owner(fw: FaultWorld, *, owned: bool = True) -> None:
    """Label the Secret as Helm's (or take the label away again)."""
    kube = _kube(fw)
    secret = kube.get("secrets", NAMESPACE, f"{KEY}-secrets")
    assert secret is not None
    labels = secret["metadata"].setdefault("labels", {})
    if owned:
        labels["app.kubernetes.io/managed-by"] = "Helm"
    else:
        labels.pop("app.kubernetes.io/managed-by", None)
    kube.apply(secret)


def rollout_cells() -> list[Cell]:
    """Rollouts that cannot finish (stalled, paused, too slow), one in progress, a restart
    refused until past the switch timeout, and a foreign owner."""
    return [
        Cell(
            "kubernetes",
            "switch",
            "switch-timeout",
            "human",
            later,
            args=("rotate",),
            prepare=rotated_slowly,
            clear=release_rollout,
        ),
        Cell(
            "kubernetes",
            "switch",
            "switch-timeout-after-restart-403",
            "human",
            later,
            args=("rotate",),
            prepare=restart_refused,
        ),
        Cell(
            "kubernetes",
            "switch",
            "rollout-stalled",
            "human",
            nothing,
            args=("rotate",),
            prepare=stalled_rotation,
            clear=release_rollout,
        ),
        Cell(
            "kubernetes",
            "switch",
            "rollout-in-progress",
            "wait",
            nothing,
            args=("rotate",),
            prepare=rotated_slowly,
            clear=release_rollout,
            exit=0,
            alert=False,
        ),
        Cell(
            "kubernetes",
            "switch",
            "paused-mid-rollout",
            "human",
            lambda fw: _kube(fw).pause(NAMESPACE, KEY),
            args=("rotate",),
            prepare=rotated_slowly,
            clear=release_rollout,
        ),
        Cell(
            "kubernetes",
            "preflight",
            "paused-deployment",
            "human",
            lambda fw: _kube(fw).pause(NAMESPACE, KEY),
            clear=release_rollout,
        ),
        Cell(
            "kubernetes",
            "preflight",
            "workload-missing",
            "fix-config",
            delete_workload,
            clear=recreate_workload,
        ),
        Cell(
            "kubernetes",
            "observe",
            "503",
            "retry",
            lambda fw: _kube(fw).fail_next("GET", SECRET, 503, count=None),
        ),
        Cell(
            "kubernetes",
            "preflight",
            "foreign-owner",
            "human",
            set_helm_owner,
            clear=lambda fw: set_helm_owner(fw, owned=False),
        ),
    ]


def kubernetes_cells() -> list[Cell]:
    """The Secret push, the restart PATCH, and the rollout cells."""
    return [
        *kube_write_cells("push", "PUT", SECRET, "secrets", f"{KEY}-secrets"),
        *kube_write_cells("restart", "PATCH", DEPLOYMENT, "deployments", KEY),
        *rollout_cells(),
    ]


def all_cells() -> list[Cell]:
    """Every in-process cell, known findings marked."""
    return with_findings([*stackstate_cells(), *vault_cells(), *kubernetes_cells()])


def params(cells: list[Cell]) -> list[Any]:
    """pytest params of ``cells``: findings are strict xfails that keep asserting the contract."""
    found = []
    for cell in cells:
        marks: list[pytest.MarkDecorator] = []
        if cell.finding is not None:
            marks.append(pytest.mark.xfail(strict=True, reason=f"finding: {cell.finding}"))
        found.append(pytest.param(cell, id=cell.id, marks=marks))
    return found
