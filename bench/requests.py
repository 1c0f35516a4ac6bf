"""Requests by kind, and the request-bound limit: Σ requests of a kind x its median round trip.

Each request the emulators counted falls in one kind (``secret get``, ``stackstate list``...).
:func:`round_trips` measures the median round trip of one request of each kind directly with
httpx against the running emulators (same state, same keep-alive connection reuse as a client
pool), so the limit says how long a run would take if it did nothing but send its requests one
after another. A kind with no probe of its own borrows its API's ``get`` probe (marked
``estimated``).
"""

from __future__ import annotations

import re
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx

from bench.world import NAMESPACE, World, has_consumer, has_vault, key_name

#: (api, method, path pattern, kind), first match wins.
_KINDS: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("stackstate", "GET", r"/api/security/(tokens|ingestion/api_keys)", "stackstate list"),
    ("stackstate", "POST", r"/api/security/(tokens|ingestion/api_keys)", "stackstate create"),
    ("stackstate", "DELETE", r"/api/security/(tokens|ingestion/api_keys)/\d+", "stackstate delete"),
    ("stackstate", "*", r"/api/(user/authorization/for|security/ingestion/authorize)", "verify"),
    ("stackstate", "GET", r"/api/server/info", "stackstate info"),
    ("kubernetes", "GET", r"/api/v1/namespaces/[^/]+/secrets/[^/]+", "secret get"),
    ("kubernetes", "GET", r"/api/v1/(namespaces/[^/]+/)?secrets", "secret list"),
    ("kubernetes", "POST", r"/api/v1/namespaces/[^/]+/secrets", "secret create"),
    ("kubernetes", "PUT", r"/api/v1/namespaces/[^/]+/secrets/[^/]+", "secret replace"),
    ("kubernetes", "PATCH", r"/api/v1/namespaces/[^/]+/secrets/[^/]+", "secret patch"),
    ("kubernetes", "GET", r"/api/v1/namespaces/[^/]+/events", "event list"),
    ("kubernetes", "POST", r"/api/v1/namespaces/[^/]+/events", "event create"),
    ("kubernetes", "*", r"/api/v1/namespaces/[^/]+/events/[^/]+", "event update"),
    ("kubernetes", "GET", r"/apis/apps/v1/namespaces/[^/]+/[a-z]+/[^/]+", "workload get"),
    ("kubernetes", "GET", r"/apis/apps/v1/(namespaces/[^/]+/)?[a-z]+", "workload list"),
    ("kubernetes", "PATCH", r"/apis/apps/v1/namespaces/[^/]+/[a-z]+/[^/]+", "workload patch"),
    ("kubernetes", "*", r"/apis/coordination\.k8s\.io/.*", "lease"),
    ("kubernetes", "GET", r"/api/v1/(namespaces/[^/]+/)?pods", "pod list"),
    ("vault", "GET", r"/v1/auth/token/lookup-self", "vault login"),
    ("vault", "*", r"/v1/auth/.*/login", "vault login"),
    ("vault", "GET", r"/v1/sys/internal/ui/mounts/.*", "vault mounts"),
    ("vault", "GET", r"/v1/[^/]+/data/.*", "kv read"),
    ("vault", "*", r"/v1/[^/]+/data/.*", "kv write"),
    ("vault", "GET", r"/v1/[^/]+/metadata/.*", "kv metadata read"),
    ("vault", "*", r"/v1/[^/]+/metadata/.*", "kv metadata write"),
)
_COMPILED: Final = tuple(
    (api, method, re.compile(pattern), kind) for api, method, pattern, kind in _KINDS
)
#: The probe a kind without one of its own borrows, per API.
FALLBACK: Final = {"stackstate": "stackstate list", "kubernetes": "secret get", "vault": "kv read"}

#: Round trips timed per kind (after a few untimed ones that open the connection).
SAMPLES = 25
WARMUP = 3


def kind_of(api: str, method: str, path: str) -> str:
    """The kind of one request (``<api> <METHOD> other`` when none matches)."""
    for kind_api, kind_method, pattern, kind in _COMPILED:
        if kind_api == api and kind_method in ("*", method) and pattern.fullmatch(path):
            return kind
    return f"{api} {method} other"


def by_kind(api: str, counts: Mapping[tuple[str, str], int]) -> Counter[str]:
    """Request counts per kind, from an emulator's counts per (method, path)."""
    kinds: Counter[str] = Counter()
    for (method, path), count in counts.items():
        kinds[kind_of(api, method, path)] += count
    return kinds


def _time(call: Callable[[], httpx.Response]) -> float:
    for _ in range(WARMUP):
        call().raise_for_status()
    samples = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        call().raise_for_status()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def round_trips(world: World) -> dict[str, float]:
    """Median round trip (seconds) of one request of each kind, measured now against
    ``world``'s emulators; the emulators' counts are reset afterwards."""
    scratch = f"rtt-{uuid.uuid4().hex[:8]}"
    found = {
        **_stackstate_round_trips(world, scratch),
        **_kubernetes_round_trips(world, scratch),
        **_vault_round_trips(world, scratch),
    }
    world.reset_stats()
    return found


def _stackstate_round_trips(world: World, scratch: str) -> dict[str, float]:
    ss = world.stackstate
    found: dict[str, float] = {}
    expiry_ms = int((datetime.now(UTC) + timedelta(days=30)).timestamp() * 1000)
    with httpx.Client(base_url=ss.url, headers={"X-API-Key": ss.service_token}, timeout=60) as c:
        found["stackstate list"] = _time(lambda: c.get("/api/security/tokens"))
        found["stackstate info"] = _time(lambda: c.get("/api/server/info"))
        created_names: list[str] = []

        def create() -> httpx.Response:
            name = f"{scratch}-{len(created_names)}"
            created_names.append(name)
            body = {"name": name, "roles": ["stackstate-ingest-telemetry"], "expiryDate": expiry_ms}
            return c.post("/api/security/tokens", json=body)

        found["stackstate create"] = _time(create)
        pending = [int(k["id"]) for k in ss.keys("service-token") if k["name"] in created_names]

        def delete() -> httpx.Response:
            return c.delete(f"/api/security/tokens/{pending.pop()}")

        # As many deletes as creates: the scratch keys are gone afterwards.
        found["stackstate delete"] = _time_n(delete, len(pending))
    value = ss.value_of("service-token", int(ss.keys("service-token")[0]["id"]))
    with httpx.Client(base_url=ss.url, headers={"X-API-Key": value}, timeout=60) as c:
        found["verify"] = _time(
            lambda: c.get("/api/user/authorization/for", params={"permission": "update-metrics"})
        )
    return found


def _kubernetes_round_trips(world: World, scratch: str) -> dict[str, float]:
    kube = world.kube
    found: dict[str, float] = {}
    consumer = next((key_name(i) for i in range(world.size) if has_consumer(i)), None)
    with httpx.Client(base_url=kube.url, timeout=60) as c:
        secrets = f"/api/v1/namespaces/{NAMESPACE}/secrets"
        found["secret get"] = _time(lambda: c.get(f"{secrets}/{key_name(0)}-secrets"))
        found["secret list"] = _time(
            lambda: c.get(secrets, params={"labelSelector": "app.kubernetes.io/managed-by=none"})
        )
        found["secret create"] = _time_creates(c, secrets, scratch)
        current = c.get(f"{secrets}/{scratch}-0").json()

        def replace() -> httpx.Response:
            answer = c.put(f"{secrets}/{scratch}-0", json=current)
            current["metadata"]["resourceVersion"] = answer.json()["metadata"]["resourceVersion"]
            return answer

        found["secret replace"] = _time(replace)
        found["secret patch"] = _time(
            lambda: c.patch(
                f"{secrets}/{scratch}-0",
                json={"metadata": {"annotations": {"bench": "1"}}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
        )
        for index in range(WARMUP + SAMPLES):
            kube.delete("secrets", NAMESPACE, f"{scratch}-{index}")
        found.update(_event_round_trips(world, c, scratch))
        deployments = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
        if consumer is not None:
            found["workload get"] = _time(lambda: c.get(f"{deployments}/{consumer}"))
        found["workload list"] = _time(lambda: c.get(deployments))
        kube.add_workload("Deployment", NAMESPACE, scratch, replicas=1)
        found["workload patch"] = _time(
            lambda: c.patch(
                f"{deployments}/{scratch}",
                json={"spec": {"template": {"metadata": {"annotations": {"b": uuid.uuid4().hex}}}}},
                headers={"Content-Type": "application/strategic-merge-patch+json"},
            )
        )
        kube.delete("deployments", NAMESPACE, scratch)
    return found


def _event_round_trips(world: World, c: httpx.Client, scratch: str) -> dict[str, float]:
    """An Event list as the rotator asks it (field selector on one object) and an Event create;
    the scratch Events are deleted afterwards."""
    events = f"/api/v1/namespaces/{NAMESPACE}/events"
    selector = f"involvedObject.kind=Secret,involvedObject.name={key_name(0)}-secrets"
    found = {"event list": _time(lambda: c.get(events, params={"fieldSelector": selector}))}
    created: list[str] = []

    def create() -> httpx.Response:
        name = f"{scratch}.{len(created)}"
        created.append(name)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "involvedObject": {"kind": "Secret", "name": scratch, "namespace": NAMESPACE},
            "reason": "Benchmark",
            "message": "round trip",
            "type": "Normal",
            "source": {"component": "bench"},
        }
        return c.post(events, json=body)

    found["event create"] = _time(create)
    for name in created:
        world.kube.delete("events", NAMESPACE, name)
    return found


def _vault_round_trips(world: World, scratch: str) -> dict[str, float]:
    vault = world.vault
    found: dict[str, float] = {}
    vaulted = next((key_name(i) for i in range(world.size) if has_vault(i)), None)
    token = {"X-Vault-Token": vault.root_token}
    with httpx.Client(base_url=vault.url, headers=token, timeout=60) as c:
        found["vault login"] = _time(lambda: c.get("/v1/auth/token/lookup-self"))
        found["vault mounts"] = _time(lambda: c.get("/v1/sys/internal/ui/mounts/secret"))
        if vaulted is not None:
            found["kv read"] = _time(lambda: c.get(f"/v1/secret/data/bench/{vaulted}"))
            found["kv metadata read"] = _time(lambda: c.get(f"/v1/secret/metadata/bench/{vaulted}"))
        found["kv write"] = _time(
            lambda: c.post(f"/v1/secret/data/bench-rtt/{scratch}", json={"data": {"k": "v"}})
        )
        found["kv metadata write"] = _time(
            lambda: c.post(
                f"/v1/secret/metadata/bench-rtt/{scratch}", json={"custom_metadata": {"a": "b"}}
            )
        )
    return found


def _time_n(call: Callable[[], httpx.Response], count: int) -> float:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call().raise_for_status()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) if samples else 0.0


def _time_creates(client: httpx.Client, collection: str, scratch: str) -> float:
    samples = []
    for index in range(WARMUP + SAMPLES):
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{scratch}-{index}", "namespace": NAMESPACE},
            "data": {"k": "dg=="},
        }
        started = time.perf_counter()
        client.post(collection, json=body).raise_for_status()
        if index >= WARMUP:
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def request_bound(
    kinds: Mapping[str, Mapping[str, int]], rtt: Mapping[str, float]
) -> tuple[float, list[str]]:
    """Σ count x median round trip over every API's kinds; also the kinds that borrowed
    their API's fallback probe."""
    total = 0.0
    estimated: list[str] = []
    for api, counts in kinds.items():
        for kind, count in counts.items():
            if kind in rtt:
                total += count * rtt[kind]
            else:
                estimated.append(kind)
                total += count * rtt.get(FALLBACK[api], 0.0)
    return total, sorted(estimated)
