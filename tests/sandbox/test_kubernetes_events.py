"""Core v1 Events on the Kubernetes emulator, through the official Python client: create, get,
list (with the field selectors ``kubectl describe`` sends), strategic-merge patch of the series
fields, and the API server's refusals (404, 403, 409, 422, 400)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rotator_sandbox.kubernetes import KubernetesEmulator
from tests.plugins.kubernetes import API_TIMEOUT

T = API_TIMEOUT
NAMESPACE = "events-ns"


def event(name: str = "agent.17f0", namespace: str = NAMESPACE, **extra: Any) -> dict[str, Any]:
    """A core v1 Event about Secret ``agent``, as a legacy recorder writes it."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Secret",
            "namespace": namespace,
            "name": "agent",
            "uid": "3f1c",
        },
        "reason": "Rotated",
        "message": "managed key agent rotated",
        "type": "Normal",
        "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "source": {"component": "stackstate-key-rotator", "host": "pod-1"},
        "reportingComponent": "stackstate-key-rotator",
        "reportingInstance": "pod-1",
    }
    body.update(extra)
    return body


def status_of(error: ApiException) -> dict[str, Any]:
    assert error.body is not None
    found: dict[str, Any] = json.loads(error.body)
    return found


def raw(response: Any) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(response.data)
    return found


@pytest.fixture
def core(kube: KubernetesEmulator, kube_api: client.ApiClient) -> client.CoreV1Api:
    kube.create_namespace(NAMESPACE)
    return client.CoreV1Api(kube_api)


def test_create_get_and_patch_the_series_fields(core: client.CoreV1Api) -> None:
    created = raw(
        core.create_namespaced_event(NAMESPACE, event(), _request_timeout=T, _preload_content=False)
    )
    assert created["count"] == 1
    assert created["metadata"]["resourceVersion"]
    patched = raw(
        core.patch_namespaced_event(
            "agent.17f0",
            NAMESPACE,
            {"count": 2, "lastTimestamp": "2026-01-01T00:05:00+00:00"},
            _request_timeout=T,
            _preload_content=False,
        )
    )
    assert patched["count"] == 2
    assert patched["lastTimestamp"] == "2026-01-01T00:05:00Z"
    assert patched["firstTimestamp"] == "2026-01-01T00:00:00Z"
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    got = core.read_namespaced_event("agent.17f0", NAMESPACE, _request_timeout=T)
    assert got.count == 2
    assert got.reason == "Rotated"


def test_list_with_the_selectors_kubectl_describe_sends(core: client.CoreV1Api) -> None:
    core.create_namespaced_event(NAMESPACE, event(), _request_timeout=T)
    other = event("other.1", reason="Revoked")
    other["involvedObject"] = {**other["involvedObject"], "name": "other", "uid": "99"}
    core.create_namespaced_event(NAMESPACE, other, _request_timeout=T)
    found = core.list_namespaced_event(
        NAMESPACE,
        field_selector=(
            "involvedObject.name=agent,involvedObject.namespace=events-ns,"
            "involvedObject.kind=Secret,involvedObject.uid=3f1c"
        ),
        _request_timeout=T,
    )
    assert [e.metadata.name for e in found.items] == ["agent.17f0"]
    by_reason = core.list_namespaced_event(
        NAMESPACE, field_selector="reason=Revoked,source=stackstate-key-rotator", _request_timeout=T
    )
    assert [e.metadata.name for e in by_reason.items] == ["other.1"]
    with pytest.raises(ApiException) as unknown:
        core.list_namespaced_event(NAMESPACE, field_selector="message=x", _request_timeout=T)
    assert unknown.value.status == 400


def test_missing_namespace_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_event("nowhere", event(namespace="nowhere"), _request_timeout=T)
    assert missing.value.status == 404
    assert status_of(missing.value)["details"]["kind"] == "namespaces"


def test_name_clash_is_409(core: client.CoreV1Api) -> None:
    core.create_namespaced_event(NAMESPACE, event(), _request_timeout=T)
    with pytest.raises(ApiException) as clash:
        core.create_namespaced_event(NAMESPACE, event(), _request_timeout=T)
    assert clash.value.status == 409
    assert status_of(clash.value)["reason"] == "AlreadyExists"


def test_forbidden_create_and_patch_are_403(
    kube: KubernetesEmulator, core: client.CoreV1Api
) -> None:
    core.create_namespaced_event(NAMESPACE, event(), _request_timeout=T)
    kube.forbid("create", "events", namespace=NAMESPACE)
    kube.forbid("patch", "events", namespace=NAMESPACE)
    with pytest.raises(ApiException) as denied:
        core.create_namespaced_event(NAMESPACE, event("agent.2"), _request_timeout=T)
    assert denied.value.status == 403
    assert 'cannot create resource "events"' in status_of(denied.value)["message"]
    with pytest.raises(ApiException) as denied_patch:
        core.patch_namespaced_event("agent.17f0", NAMESPACE, {"count": 3}, _request_timeout=T)
    assert denied_patch.value.status == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"involvedObject": {"kind": "Secret", "name": "agent", "namespace": "elsewhere"}},
            "involvedObject.namespace",
        ),
        ({"eventTime": "2026-01-01T00:00:00.123456Z", "action": ""}, "action"),
        (
            {"eventTime": "2026-01-01T00:00:00.123456Z", "reportingInstance": ""},
            "reportingInstance",
        ),
        ({"eventTime": "2026-01-01T00:00:00.123456Z", "message": "x" * 1025}, "message"),
    ],
)
def test_invalid_events_are_422(core: client.CoreV1Api, change: dict[str, Any], field: str) -> None:
    body = event(**change)
    if "eventTime" in change and "action" not in change:
        body["action"] = "Rotate"
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_event(NAMESPACE, body, _request_timeout=T)
    assert refused.value.status == 422
    causes = status_of(refused.value)["details"]["causes"]
    assert field in [c["field"] for c in causes]


def test_bad_name_and_bad_types_are_refused(
    kube: KubernetesEmulator, core: client.CoreV1Api
) -> None:
    with pytest.raises(ApiException) as bad_name:
        core.create_namespaced_event(NAMESPACE, event("Agent_1"), _request_timeout=T)
    assert bad_name.value.status == 422
    # The client checks types itself; plain HTTP shows what the server's decoder says.
    url = f"{kube.url}/api/v1/namespaces/{NAMESPACE}/events"
    with httpx.Client(timeout=T) as http:
        bad_count = http.post(url, json=event(count="2"))
        bad_time = http.post(url, json=event(lastTimestamp="yesterday"))
    assert bad_count.status_code == 400
    assert "Event.count of type int32" in bad_count.json()["message"]
    assert bad_time.status_code == 400
    assert 'parsing time "yesterday"' in bad_time.json()["message"]


def test_the_table_kubectl_get_events_prints(
    kube: KubernetesEmulator, core: client.CoreV1Api
) -> None:
    core.create_namespaced_event(NAMESPACE, event(), _request_timeout=T)
    with httpx.Client(timeout=5.0) as http:
        answer = http.get(
            f"{kube.url}/api/v1/namespaces/{NAMESPACE}/events",
            headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
        )
    assert answer.status_code == 200
    table = answer.json()
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Message",
    ]
    (row,) = table["rows"]
    assert row["cells"][1:] == ["Normal", "Rotated", "secret/agent", "managed key agent rotated"]
