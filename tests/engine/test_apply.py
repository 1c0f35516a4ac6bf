"""The Applier (engine.apply) driven with real adapters: the StackState client against the
StackState emulator over HTTP, file targets in a temporary directory and (where a target must
refuse a write) a kubernetes-secret target on the Kubernetes emulator.

Plans come from the engine's own observe and plan steps, so each test applies exactly what a
run would. The emulator's request log shows what the Applier sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from rotator.clients.kubernetes import KubeClients
from rotator.clients.stackstate import StackStateClient
from rotator.engine.apply import Applier
from rotator.engine.model import KeyResult, KeySpec
from rotator.engine.policy import Windows
from rotator.engine.ports import KeyKind
from rotator.engine.run import observe_and_plan
from rotator.secrets import Secret
from rotator.targets.file import FileTarget
from rotator.targets.kubernetes import KubernetesSecretTarget
from rotator_sandbox.kubernetes import KubernetesEmulator
from rotator_sandbox.stackstate import StackStateEmulator
from tests.plugins.clock import FrozenClock

TOKENS = "/api/security/tokens"
INGESTION_KEYS = "/api/security/ingestion/api_keys"
COLLECTION: dict[KeyKind, str] = {"service-token": TOKENS, "ingestion-api-key": INGESTION_KEYS}
#: A role that grants ingestion in the emulator (verification succeeds).
INGEST_ROLE = "stackstate-ingest-telemetry"


@pytest.fixture
def client(stackstate: StackStateEmulator) -> Iterator[StackStateClient]:
    """An administrator's client of the emulator, with near-zero backoff."""
    with StackStateClient(
        base_url=stackstate.url,
        service_token=Secret(stackstate.service_token),
        timeout=5.0,
        max_attempts=3,
        backoff_base=0.001,
        backoff_max=0.005,
    ) as built:
        yield built


@pytest.fixture
def clock(stackstate_clock: FrozenClock) -> Callable[[], datetime]:
    """The run's clock: the emulator's, to the second (key names carry seconds)."""
    return lambda: stackstate_clock().replace(microsecond=0)


@pytest.fixture
def make_spec(tmp_path: Path) -> Callable[..., KeySpec]:
    """A managed key whose targets are raw files under ``tmp_path``."""

    def make(
        name: str,
        *,
        kind: KeyKind = "service-token",
        files: int = 1,
        roles: tuple[str, ...] = (INGEST_ROLE,),
        directory: Path | None = None,
    ) -> KeySpec:
        where = directory or tmp_path
        return KeySpec(
            name=name,
            kind=kind,
            roles=roles if kind == "service-token" else None,
            description=None,
            dedicated_subject=None,
            validity=timedelta(days=90),
            rotate_before=timedelta(days=14),
            grace_period=timedelta(minutes=5),
            switch_timeout=timedelta(minutes=10),
            orphan_min_age=timedelta(hours=1),
            windows=Windows(()),
            targets=tuple(FileTarget(where / f"{name}-{n}") for n in range(files)),
        )

    return make


def apply(
    client: StackStateClient,
    clock: Callable[[], datetime],
    specs: list[KeySpec],
    guard: Callable[[], bool] | None = None,
    before_apply: Callable[[], None] | None = None,
) -> list[KeyResult]:
    """Observe and plan ``specs`` like a run, then hand the plans to an Applier."""
    planned = observe_and_plan(specs, client, now=clock())
    if before_apply is not None:
        before_apply()
    return Applier(client, clock, guard).apply_all(planned)


def requests_of(stackstate: StackStateEmulator, method: str, path: str) -> int:
    """How many requests ``method path`` the emulator answered."""
    return sum(1 for e in stackstate.log if e.method == method and e.path == path)


def names(stackstate: StackStateEmulator, kind: KeyKind = "service-token") -> list[str]:
    """The names of the keys StackState holds."""
    return sorted(str(k["name"]) for k in stackstate.keys(kind))


class TestRotation:
    """A bootstrap: create, verify, push; what the targets hold is what StackState issued."""

    def test_bootstrap_pushes_the_verified_key_to_every_target(
        self,
        stackstate: StackStateEmulator,
        client: StackStateClient,
        clock: Callable[[], datetime],
        make_spec: Callable[..., KeySpec],
    ) -> None:
        """Both targets hold the new key's value, described by metadata naming its id."""
        spec = make_spec("agent", files=2)
        [result] = apply(client, clock, [spec])
        assert result.outcome == "rotated", result.error
        assert result.new_key is not None
        assert names(stackstate) == [result.plan.new_key_name]
        value = Secret(stackstate.value_of("service-token", result.new_key.id))
        for target in spec.targets:
            state = target.read()
            assert state.value == value
            assert state.managed_metadata is not None
            assert state.managed_metadata.key_id == result.new_key.id

    @pytest.mark.parametrize(
        ("kinds", "lists"),
        [
            (["service-token"] * 5, {"service-token": 1}),
            (
                ["service-token", "ingestion-api-key"] * 2,
                {"service-token": 1, "ingestion-api-key": 1},
            ),
        ],
    )
    def test_ids_of_a_runs_new_keys_are_learnt_with_one_list_per_kind(
        self,
        stackstate: StackStateEmulator,
        client: StackStateClient,
        clock: Callable[[], datetime],
        make_spec: Callable[..., KeySpec],
        kinds: list[KeyKind],
        lists: dict[KeyKind, int],
    ) -> None:
        """N bootstraps send N creates and one list per kind, not a list after each create."""
        specs = [make_spec(f"key{n}", kind=kind) for n, kind in enumerate(kinds)]
        results = apply(client, clock, specs, before_apply=stackstate.clear_log)
        assert [r.outcome for r in results] == ["rotated"] * len(specs)
        for kind in ("service-token", "ingestion-api-key"):
            path = COLLECTION[kind]
            assert requests_of(stackstate, "POST", path) == kinds.count(kind)
            assert requests_of(stackstate, "GET", path) == lists.get(kind, 0)
        for spec, result in zip(specs, results, strict=True):
            assert result.new_key is not None
            held = spec.targets[0].read()
            assert held.managed_metadata is not None
            assert held.managed_metadata.key_id == result.new_key.id
            assert held.value == Secret(stackstate.value_of(spec.kind, result.new_key.id))


class TestAbandonedKeys:
    """I1 and I3: a key no target holds is deleted at once; the other keys go on."""

    def test_a_key_refused_for_ingestion_is_deleted(
        self,
        stackstate: StackStateEmulator,
        client: StackStateClient,
        clock: Callable[[], datetime],
        make_spec: Callable[..., KeySpec],
    ) -> None:
        """A key StackState does not accept for ingestion never reaches a target (I1)."""
        refused = make_spec("refused", roles=("no-such-role",))
        fine = make_spec("fine")
        bad, good = apply(client, clock, [refused, fine])
        assert bad.outcome == "failed"
        assert bad.failure is not None
        assert (bad.failure.step, bad.failure.category) == ("verify", "fix-permissions")
        assert refused.targets[0].read().value is None
        assert good.outcome == "rotated"
        assert names(stackstate) == [good.plan.new_key_name]

    def test_a_push_that_reached_no_target_deletes_the_key(
        self,
        stackstate: StackStateEmulator,
        client: StackStateClient,
        clock: Callable[[], datetime],
        make_spec: Callable[..., KeySpec],
        kube: KubernetesEmulator,
        kubeconfig: Path,
    ) -> None:
        """The API server refuses to create the Secret and the Secret is still absent: no target
        holds the new key, so it is deleted (I3); the next key still rotates."""
        kube.create_namespace("monitoring")
        kube.fail_next("POST", r"/api/v1/namespaces/monitoring/secrets", 403, count=None)
        with KubeClients(kubeconfig, request_timeout=5.0) as clients:
            secret = KubernetesSecretTarget(
                clients, namespace="monitoring", name="agent", key="STS_API_KEY"
            )
            refused = replace(make_spec("refused"), targets=(secret,))
            bad, good = apply(client, clock, [refused, make_spec("fine")])
        assert bad.outcome == "failed"
        assert bad.failure is not None
        assert (bad.failure.step, bad.failure.category) == ("push", "fix-permissions")
        assert "deleted" in (bad.error or "")
        assert good.outcome == "rotated"
        assert names(stackstate) == [good.plan.new_key_name]

    def test_a_push_whose_target_cannot_be_read_back_keeps_the_key(
        self,
        stackstate: StackStateEmulator,
        client: StackStateClient,
        clock: Callable[[], datetime],
        make_spec: Callable[..., KeySpec],
        tmp_path: Path,
    ) -> None:
        """When the failed target cannot say what it holds (its directory went away), the new
        key may have reached it: it is kept for the next run to repair or sweep."""
        gone = tmp_path / "gone"
        gone.mkdir()
        broken = make_spec("broken", directory=gone)
        [result] = apply(client, clock, [broken], before_apply=gone.rmdir)
        assert result.outcome == "failed"
        assert result.failure is not None
        assert result.failure.step == "push"
        assert names(stackstate) == [result.plan.new_key_name]


class TestGuard:
    """The guard (leadership, the shared lock) is asked before a key's writes."""

    def test_a_refusing_guard_creates_nothing(
        self,
        stackstate: StackStateEmulator,
        client: StackStateClient,
        clock: Callable[[], datetime],
        make_spec: Callable[..., KeySpec],
    ) -> None:
        """Without the guard's consent no key is created and nothing is written."""
        spec = make_spec("agent")
        [result] = apply(client, clock, [spec], guard=lambda: False)
        assert (result.outcome, result.error) == ("unchanged", "not applied: leadership lost")
        assert names(stackstate) == []
        assert spec.targets[0].read().value is None

    def test_a_key_created_before_leadership_was_lost_is_deleted(
        self,
        stackstate: StackStateEmulator,
        client: StackStateClient,
        clock: Callable[[], datetime],
        make_spec: Callable[..., KeySpec],
    ) -> None:
        """Leadership lost after the create: the new key is pushed nowhere and deleted (I3)."""
        answers = iter([True])
        spec = make_spec("agent")
        [result] = apply(client, clock, [spec], guard=lambda: next(answers, False))
        assert result.outcome == "unchanged"
        assert requests_of(stackstate, "POST", TOKENS) == 1
        assert names(stackstate) == []
        assert spec.targets[0].read().value is None


class TestUnknownIds:
    """I6 with the run's one list: a key whose id cannot be known fails alone, nothing deleted."""

    def test_a_name_listed_twice_fails_that_key_only(
        self,
        stackstate: StackStateEmulator,
        client: StackStateClient,
        clock: Callable[[], datetime],
        make_spec: Callable[..., KeySpec],
    ) -> None:
        """Another key already carries the new name: which one holds the value is unknown, so
        both stay (the sweep decides later) and the other managed key still rotates."""
        clash, fine = make_spec("clash"), make_spec("fine")
        planned = observe_and_plan([clash, fine], client, now=clock())
        name = planned[0][1].new_key_name
        assert name is not None
        stackstate.seed_key("service-token", name, expiration=None, roles=(INGEST_ROLE,))
        bad, good = Applier(client, clock).apply_all(planned)
        assert bad.outcome == "failed"
        assert bad.failure is not None
        assert (bad.failure.step, bad.failure.error_type) == ("create", "AmbiguousCreateError")
        assert names(stackstate).count(name) == 2
        assert clash.targets[0].read().value is None
        assert good.outcome == "rotated"

    @pytest.mark.stackstate_off_contract("the injected 503 answers the list with the fault body")
    def test_a_failed_list_fails_every_new_token_and_deletes_none(
        self,
        stackstate: StackStateEmulator,
        client: StackStateClient,
        clock: Callable[[], datetime],
        make_spec: Callable[..., KeySpec],
    ) -> None:
        """When the one list fails, no token's id is known: each key fails at create with a
        temporary error, its value is discarded and the keys are left for the sweep."""
        specs = [make_spec("one"), make_spec("two")]

        def list_fails() -> None:
            stackstate.fail_next("GET", TOKENS, 503, count=None)

        results = apply(client, clock, specs, before_apply=list_fails)
        for result in results:
            assert result.outcome == "failed"
            assert result.failure is not None
            assert (result.failure.step, result.failure.category) == ("create", "retry")
        assert len(names(stackstate)) == 2
        assert all(spec.targets[0].read().value is None for spec in specs)
