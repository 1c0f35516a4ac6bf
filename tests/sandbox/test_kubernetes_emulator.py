"""The Kubernetes emulator, driven over real HTTP through the official Python client (and httpx
where the exact bytes of an answer matter)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from rotator_sandbox.kubernetes import KubernetesEmulator, generate_tls, write_kubeconfig
from rotator_sandbox.kubernetes_controller import RESTARTED_AT
from rotator_sandbox.kubernetes_objects import DecodeError, go_base64_error, parse_microtime
from rotator_sandbox.kubernetes_patch import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from rotator_sandbox.kubernetes_resources import human_duration
from tests.plugins.kubernetes import API_TIMEOUT, KubeClock

T = API_TIMEOUT
MakeApi = Callable[..., client.ApiClient]
CONFLICT_MESSAGE = (
    'Operation cannot be fulfilled on secrets "foo": the object has been modified; please apply '
    "your changes to the latest version and try again"
)


def b64(text: str) -> str:
    """Base64 of a UTF-8 string, as Secret ``data`` holds it."""
    return base64.b64encode(text.encode()).decode()


def status_body(error: ApiException) -> dict[str, Any]:
    """The ``Status`` object of a failed call."""
    assert error.body is not None
    body: dict[str, Any] = json.loads(error.body)
    return body


def secret(name: str, **fields: Any) -> client.V1Secret:
    """A Secret model named ``name`` with the given top-level fields."""
    return client.V1Secret(metadata=client.V1ObjectMeta(name=name), **fields)


@pytest.fixture
def core(kube_api: client.ApiClient) -> client.CoreV1Api:
    """CoreV1Api on ``kube``."""
    return client.CoreV1Api(kube_api)


@pytest.fixture
def apps(kube_api: client.ApiClient) -> client.AppsV1Api:
    """AppsV1Api on ``kube``."""
    return client.AppsV1Api(kube_api)


@pytest.fixture
def http(kube: KubernetesEmulator) -> Iterator[httpx.Client]:
    """A plain httpx client on ``kube`` for byte-level checks."""
    with httpx.Client(base_url=kube.url, timeout=5.0) as raw:
        yield raw


class TestDiscovery:
    """Version and API discovery documents."""

    def test_version_and_core_group_documents(self, kube_api: client.ApiClient) -> None:
        """/version, /api and /api/v1 describe a 1.32 server serving secrets and namespaces."""
        version = client.VersionApi(kube_api).get_code(_request_timeout=T)
        assert (version.major, version.minor) == ("1", "32")
        assert client.CoreApi(kube_api).get_api_versions(_request_timeout=T).versions == ["v1"]
        resources = client.CoreV1Api(kube_api).get_api_resources(_request_timeout=T)
        by_name = {r.name: r for r in resources.resources}
        assert by_name["secrets"].kind == "Secret"
        assert by_name["secrets"].namespaced is True
        assert {"create", "get", "list", "patch", "update", "delete", "watch"} <= set(
            by_name["secrets"].verbs
        )
        assert by_name["namespaces"].namespaced is False

    def test_group_list_and_group_versions(self, kube_api: client.ApiClient) -> None:
        """/apis lists the served groups; their resource lists name the workloads."""
        groups = client.ApisApi(kube_api).get_api_versions(_request_timeout=T)
        assert {g.name for g in groups.groups} == {
            "apps",
            "authentication.k8s.io",
            "authorization.k8s.io",
            "batch",
            "coordination.k8s.io",
        }
        apps_resources = client.AppsV1Api(kube_api).get_api_resources(_request_timeout=T)
        names = {r.name for r in apps_resources.resources}
        assert {"deployments", "daemonsets", "statefulsets", "deployments/status"} <= names
        lease_resources = client.CoordinationV1Api(kube_api).get_api_resources(_request_timeout=T)
        assert [r.name for r in lease_resources.resources] == ["leases"]

    def test_aggregated_discovery_request_gets_the_legacy_document(
        self, http: httpx.Client
    ) -> None:
        """Asked for aggregated discovery, the server answers plain JSON (client-go falls back)."""
        accept = (
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        )
        answer = http.get("/apis", headers={"Accept": accept})
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["kind"] == "APIGroupList"

    def test_openapi_v2_is_absent_and_v3_lists_field_validation(self, http: httpx.Client) -> None:
        """/openapi/v2 is a 404 Status; /openapi/v3 documents PATCH's fieldValidation parameter."""
        missing = http.get("/openapi/v2")
        assert missing.status_code == 404
        assert missing.json()["message"] == "the server could not find the requested resource"
        root = http.get("/openapi/v3").json()
        document = http.get(root["paths"]["api/v1"]["serverRelativeURL"]).json()
        patch = document["paths"]["/api/v1/namespaces/{namespace}/secrets/{name}"]["patch"]
        assert patch["x-kubernetes-group-version-kind"]["kind"] == "Secret"
        assert "fieldValidation" in {p["name"] for p in patch["parameters"]}

    def test_table_is_served_when_asked_for(
        self, kube: KubernetesEmulator, http: httpx.Client
    ) -> None:
        """``as=Table`` answers a meta.k8s.io Table with the Secret columns and metadata rows."""
        kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t"}, "data": {}})
        answer = http.get(
            "/api/v1/namespaces/default/secrets",
            headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
        ).json()
        assert answer["kind"] == "Table"
        assert [c["name"] for c in answer["columnDefinitions"]] == ["Name", "Type", "Data", "Age"]
        assert answer["rows"][0]["cells"][:3] == ["t", "Opaque", 0]
        assert answer["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


class TestSecrets:
    """Secret CRUD, optimistic concurrency and the Status bodies of failures."""

    def test_create_sets_system_fields_and_reads_back(
        self, core: client.CoreV1Api, kube: KubernetesEmulator
    ) -> None:
        """Create fills uid, creationTimestamp, resourceVersion and type; read returns the data."""
        created = core.create_namespaced_secret(
            "default", secret("foo", data={"api_key": b64("v1")}), _request_timeout=T
        )
        assert created.metadata.uid
        assert created.metadata.creation_timestamp is not None
        assert created.metadata.resource_version.isdigit()
        assert created.type == "Opaque"
        read = core.read_namespaced_secret("foo", "default", _request_timeout=T)
        assert read.data == {"api_key": b64("v1")}
        assert kube.secret_data("default", "foo") == {"api_key": "v1"}

    def test_string_data_is_merged_into_data_and_never_returned(
        self, core: client.CoreV1Api, http: httpx.Client
    ) -> None:
        """``stringData`` overrides ``data`` keys on write and is absent from every answer."""
        created = core.create_namespaced_secret(
            "default",
            secret("foo", data={"a": b64("old"), "b": b64("kept")}, string_data={"a": "new"}),
            _request_timeout=T,
        )
        assert created.data == {"a": b64("new"), "b": b64("kept")}
        assert created.string_data is None
        raw = http.get("/api/v1/namespaces/default/secrets/foo").json()
        assert "stringData" not in raw

    def test_every_write_changes_the_resource_version_but_a_no_op_does_not(
        self, core: client.CoreV1Api
    ) -> None:
        """resourceVersion grows on each change; replacing with identical content keeps it."""
        first = core.create_namespaced_secret("default", secret("foo"), _request_timeout=T)
        first.data = {"k": b64("1")}
        second = core.replace_namespaced_secret("foo", "default", first, _request_timeout=T)
        assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
        third = core.replace_namespaced_secret("foo", "default", second, _request_timeout=T)
        assert third.metadata.resource_version == second.metadata.resource_version

    def test_replace_with_a_stale_resource_version_is_a_conflict(
        self, core: client.CoreV1Api
    ) -> None:
        """A PUT carrying an outdated resourceVersion gets 409 with the documented Status."""
        stale = core.create_namespaced_secret("default", secret("foo"), _request_timeout=T)
        core.patch_namespaced_secret(
            "foo", "default", {"data": {"x": b64("1")}}, _request_timeout=T
        )
        with pytest.raises(ApiException) as caught:
            core.replace_namespaced_secret("foo", "default", stale, _request_timeout=T)
        assert caught.value.status == 409
        assert status_body(caught.value) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": CONFLICT_MESSAGE,
            "reason": "Conflict",
            "details": {"name": "foo", "kind": "secrets"},
            "code": 409,
        }

    def test_replace_without_resource_version_is_unconditional(
        self, core: client.CoreV1Api
    ) -> None:
        """A PUT without resourceVersion overwrites whatever is stored."""
        core.create_namespaced_secret("default", secret("foo"), _request_timeout=T)
        core.patch_namespaced_secret(
            "foo", "default", {"data": {"x": b64("1")}}, _request_timeout=T
        )
        replaced = core.replace_namespaced_secret(
            "foo", "default", secret("foo", data={"y": b64("2")}), _request_timeout=T
        )
        assert replaced.data == {"y": b64("2")}

    def test_conflict_injection_simulates_a_concurrent_writer(
        self, core: client.CoreV1Api, kube: KubernetesEmulator
    ) -> None:
        """After ``conflict_next_update`` a read-modify-write conflicts once, then succeeds."""
        core.create_namespaced_secret("default", secret("foo"), _request_timeout=T)
        kube.conflict_next_update("secrets", "default", "foo")
        fresh = core.read_namespaced_secret("foo", "default", _request_timeout=T)
        fresh.data = {"k": b64("v")}
        with pytest.raises(ApiException) as caught:
            core.replace_namespaced_secret("foo", "default", fresh, _request_timeout=T)
        assert status_body(caught.value)["reason"] == "Conflict"
        retry = core.read_namespaced_secret("foo", "default", _request_timeout=T)
        retry.data = {"k": b64("v")}
        assert core.replace_namespaced_secret("foo", "default", retry, _request_timeout=T).data

    def test_create_of_an_existing_name_is_already_exists(self, core: client.CoreV1Api) -> None:
        """A second create with the same name answers 409 AlreadyExists."""
        core.create_namespaced_secret("default", secret("foo"), _request_timeout=T)
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_secret("default", secret("foo"), _request_timeout=T)
        body = status_body(caught.value)
        assert (body["code"], body["reason"]) == (409, "AlreadyExists")
        assert body["message"] == 'secrets "foo" already exists'
        assert body["details"] == {"name": "foo", "kind": "secrets"}

    def test_read_of_a_missing_secret_is_not_found(self, core: client.CoreV1Api) -> None:
        """A missing Secret answers 404 with ``secrets "foo" not found``."""
        with pytest.raises(ApiException) as caught:
            core.read_namespaced_secret("foo", "default", _request_timeout=T)
        assert caught.value.status == 404
        assert status_body(caught.value) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'secrets "foo" not found',
            "reason": "NotFound",
            "details": {"name": "foo", "kind": "secrets"},
            "code": 404,
        }

    def test_invalid_base64_is_rejected_by_the_decoder(self, core: client.CoreV1Api) -> None:
        """Non-base64 ``data`` answers 400 naming the byte offset, as Go's decoder does."""
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_secret(
                "default", secret("foo", data={"user": "admin"}), _request_timeout=T
            )
        assert status_body(caught.value) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'Secret in version "v1" cannot be handled as a Secret: '
            "illegal base64 data at input byte 4",
            "reason": "BadRequest",
            "code": 400,
        }

    def test_invalid_data_key_is_unprocessable_with_causes(self, core: client.CoreV1Api) -> None:
        """A data key outside ``[-._a-zA-Z0-9]+`` answers 422 Invalid with one cause."""
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_secret(
                "default", secret("foo", data={"a/b": b64("x")}), _request_timeout=T
            )
        body = status_body(caught.value)
        assert (body["code"], body["reason"]) == (422, "Invalid")
        assert body["message"].startswith(
            'Secret "foo" is invalid: data[a/b]: Invalid value: "a/b"'
        )
        assert body["details"]["kind"] == "Secret"
        assert body["details"]["causes"] == [
            {
                "reason": "FieldValueInvalid",
                "message": body["details"]["causes"][0]["message"],
                "field": "data[a/b]",
            }
        ]
        assert "a valid config key" in body["details"]["causes"][0]["message"]

    def test_invalid_name_is_unprocessable(self, core: client.CoreV1Api) -> None:
        """An upper-case name breaks the RFC 1123 subdomain rule: 422 on metadata.name."""
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_secret("default", secret("Foo"), _request_timeout=T)
        assert status_body(caught.value)["details"]["causes"][0]["field"] == "metadata.name"

    def test_immutable_secret_refuses_data_changes(self, core: client.CoreV1Api) -> None:
        """Once ``immutable: true``, changing data answers 422 Forbidden-field."""
        core.create_namespaced_secret(
            "default", secret("foo", data={"a": b64("1")}, immutable=True), _request_timeout=T
        )
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_secret(
                "foo", "default", {"data": {"a": b64("2")}}, _request_timeout=T
            )
        cause = status_body(caught.value)["details"]["causes"][0]
        assert (cause["reason"], cause["field"]) == ("FieldValueForbidden", "data")

    def test_delete_answers_success_status_then_the_secret_is_gone(
        self, core: client.CoreV1Api
    ) -> None:
        """DELETE answers a Success Status with the uid; a later read is 404."""
        created = core.create_namespaced_secret("default", secret("foo"), _request_timeout=T)
        answer = core.delete_namespaced_secret("foo", "default", _request_timeout=T)
        assert answer["status"] == "Success"
        assert answer["details"] == {"name": "foo", "kind": "secrets", "uid": created.metadata.uid}
        with pytest.raises(ApiException) as caught:
            core.read_namespaced_secret("foo", "default", _request_timeout=T)
        assert caught.value.status == 404

    def test_dry_run_create_does_not_persist(self, core: client.CoreV1Api) -> None:
        """``dryRun=All`` answers the object without storing it."""
        answer = core.create_namespaced_secret(
            "default", secret("foo"), dry_run="All", _request_timeout=T
        )
        assert answer.metadata.name == "foo"
        with pytest.raises(ApiException):
            core.read_namespaced_secret("foo", "default", _request_timeout=T)


class TestPatch:
    """The three patch content types."""

    def test_strategic_merge_patch_adds_and_null_deletes_keys(self, core: client.CoreV1Api) -> None:
        """A dict body is a strategic merge patch: keys merge, ``null`` deletes one."""
        core.create_namespaced_secret(
            "default", secret("foo", data={"a": b64("1"), "b": b64("2")}), _request_timeout=T
        )
        patched = core.patch_namespaced_secret(
            "foo", "default", {"data": {"a": None, "c": b64("3")}}, _request_timeout=T
        )
        assert patched.data == {"b": b64("2"), "c": b64("3")}

    def test_merge_patch_through_content_type(
        self, core: client.CoreV1Api, kube: KubernetesEmulator
    ) -> None:
        """``_content_type`` merge patch updates annotations and deletes a key with null."""
        core.create_namespaced_secret(
            "default",
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="foo", annotations={"x": "1", "y": "2"})
            ),
            _request_timeout=T,
        )
        patched = core.patch_namespaced_secret(
            "foo",
            "default",
            {"metadata": {"annotations": {"x": None, "z": "3"}}, "stringData": {"k": "v"}},
            _content_type="application/merge-patch+json",
            _request_timeout=T,
        )
        assert patched.metadata.annotations == {"y": "2", "z": "3"}
        assert kube.secret_data("default", "foo") == {"k": "v"}
        assert any(
            r.method == "PATCH" and r.path.endswith("/secrets/foo")
            for r in kube.mutating_requests()
        )

    def test_json_patch_from_a_list_body(self, core: client.CoreV1Api) -> None:
        """A list body is an RFC 6902 JSON patch."""
        core.create_namespaced_secret(
            "default", secret("foo", data={"a": b64("1")}), _request_timeout=T
        )
        patched = core.patch_namespaced_secret(
            "foo",
            "default",
            [
                {"op": "add", "path": "/data/b", "value": b64("2")},
                {"op": "remove", "path": "/data/a"},
            ],
            _request_timeout=T,
        )
        assert patched.data == {"b": b64("2")}

    def test_failed_json_patch_test_is_unprocessable(self, core: client.CoreV1Api) -> None:
        """A failing ``test`` operation answers 422 with the server's generic message."""
        core.create_namespaced_secret("default", secret("foo"), _request_timeout=T)
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_secret(
                "foo",
                "default",
                [{"op": "test", "path": "/type", "value": "x"}],
                _request_timeout=T,
            )
        body = status_body(caught.value)
        assert (body["code"], body["reason"]) == (422, "Invalid")
        assert body["message"] == "the server rejected our request due to an error in our request"

    def test_patch_carrying_a_stale_resource_version_conflicts(
        self, core: client.CoreV1Api
    ) -> None:
        """A patch that pins an old resourceVersion is refused with 409 Conflict."""
        created = core.create_namespaced_secret("default", secret("foo"), _request_timeout=T)
        core.patch_namespaced_secret(
            "foo", "default", {"data": {"a": b64("1")}}, _request_timeout=T
        )
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_secret(
                "foo",
                "default",
                {"metadata": {"resourceVersion": created.metadata.resource_version}},
                _request_timeout=T,
            )
        assert status_body(caught.value)["message"] == CONFLICT_MESSAGE

    def test_patch_of_a_missing_secret_is_not_found(self, core: client.CoreV1Api) -> None:
        """Patching nothing answers 404."""
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_secret("foo", "default", {"data": {}}, _request_timeout=T)
        assert caught.value.status == 404


class TestListAndWatch:
    """Selectors, pagination and watches."""

    @pytest.fixture(autouse=True)
    def _secrets(self, kube: KubernetesEmulator) -> None:
        for name, labels in (
            ("a", {"app": "agent", "tier": "node"}),
            ("b", {"app": "agent", "tier": "cluster"}),
            ("c", {"app": "otel"}),
        ):
            kube.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": name, "namespace": "default", "labels": labels},
                }
            )

    def test_label_selectors_equality_and_set_based(self, core: client.CoreV1Api) -> None:
        """``=``, ``!=``, ``in``, ``notin`` and existence requirements filter the list."""

        def names(selector: str) -> list[str]:
            answer = core.list_namespaced_secret(
                "default", label_selector=selector, _request_timeout=T
            )
            return [s.metadata.name for s in answer.items]

        assert names("app=agent") == ["a", "b"]
        assert names("app!=agent") == ["c"]
        assert names("tier in (node,edge)") == ["a"]
        assert names("app=agent,tier notin (node)") == ["b"]
        assert names("!tier") == ["c"]
        assert names("tier") == ["a", "b"]

    def test_field_selector_on_metadata_name(self, core: client.CoreV1Api) -> None:
        """``metadata.name=`` selects one object; an unsupported field answers 400."""
        answer = core.list_namespaced_secret(
            "default", field_selector="metadata.name=b", _request_timeout=T
        )
        assert [s.metadata.name for s in answer.items] == ["b"]
        with pytest.raises(ApiException) as caught:
            core.list_namespaced_secret("default", field_selector="spec.x=1", _request_timeout=T)
        assert caught.value.status == 400

    def test_limit_and_continue_page_through_the_list(self, core: client.CoreV1Api) -> None:
        """``limit`` cuts the list and ``continue`` resumes after the last item."""
        first = core.list_namespaced_secret("default", limit=2, _request_timeout=T)
        assert [s.metadata.name for s in first.items] == ["a", "b"]
        assert first.metadata.remaining_item_count == 1
        rest = core.list_namespaced_secret(
            "default", limit=2, _continue=first.metadata._continue, _request_timeout=T
        )
        assert [s.metadata.name for s in rest.items] == ["c"]
        assert rest.metadata._continue is None

    def test_watch_from_a_resource_version_replays_later_changes(
        self, core: client.CoreV1Api
    ) -> None:
        """A watch started at a list's resourceVersion sees the writes made after it."""
        listed = core.list_namespaced_secret("default", _request_timeout=T)
        core.patch_namespaced_secret("b", "default", {"data": {"k": b64("v")}}, _request_timeout=T)
        core.delete_namespaced_secret("c", "default", _request_timeout=T)
        watcher = watch.Watch()
        seen: list[tuple[str, str]] = []
        for event in watcher.stream(
            core.list_namespaced_secret,
            "default",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=10,
            _request_timeout=T,
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                watcher.stop()
        assert seen == [("MODIFIED", "b"), ("DELETED", "c")]


class TestAuthentication:
    """Bearer tokens, 401s, RBAC-like 403s and TLS."""

    def test_token_mode_refuses_requests_without_the_token(
        self, make_kube: Callable[..., KubernetesEmulator]
    ) -> None:
        """With a token configured, an anonymous request answers 401 Unauthorized."""
        emulator = make_kube(token="t0ken")
        answer = httpx.get(f"{emulator.url}/api/v1/namespaces/default/secrets", timeout=5.0)
        assert answer.status_code == 401
        assert answer.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }

    def test_token_from_the_kubeconfig_is_accepted(
        self,
        make_kube: Callable[..., KubernetesEmulator],
        make_kube_api: MakeApi,
        tmp_path: Path,
    ) -> None:
        """The Python client sends the kubeconfig token; a wrong token is 401."""
        emulator = make_kube(token="t0ken")
        api = make_kube_api(emulator.write_kubeconfig(tmp_path / "good"))
        assert client.CoreV1Api(api).list_namespace(_request_timeout=T).items
        imposter = make_kube(token="other")
        bad = write_kubeconfig(tmp_path / "bad", {"sandbox": imposter})
        bad.write_text(bad.read_text().replace(str(imposter.port), str(emulator.port)))
        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(make_kube_api(bad)).list_namespace(_request_timeout=T)
        assert caught.value.status == 401

    def test_forbid_answers_the_rbac_message(
        self, core: client.CoreV1Api, kube: KubernetesEmulator
    ) -> None:
        """A forbidden get names user, verb, resource, group and namespace like RBAC does."""
        kube.forbid("get", "secrets", "default")
        with pytest.raises(ApiException) as caught:
            core.read_namespaced_secret("foo", "default", _request_timeout=T)
        assert status_body(caught.value) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'secrets "foo" is forbidden: User "system:anonymous" cannot get resource '
            '"secrets" in API group "" in the namespace "default"',
            "reason": "Forbidden",
            "details": {"name": "foo", "kind": "secrets"},
            "code": 403,
        }
        assert core.list_namespaced_secret("default", _request_timeout=T).items == []
        kube.forbid("list", "secrets")
        with pytest.raises(ApiException) as listing:
            core.list_namespaced_secret("other", _request_timeout=T)
        assert status_body(listing.value)["message"].startswith(
            'secrets is forbidden: User "system:anonymous" cannot list resource "secrets"'
        )

    def test_forbidden_patch_on_a_workload_names_the_group(
        self, apps: client.AppsV1Api, kube: KubernetesEmulator
    ) -> None:
        """A forbidden deployment patch names ``deployments.apps`` and API group ``apps``."""
        kube.add_workload("deployment", "prod", "agent")
        kube.forbid("patch", "deployments", "prod")
        with pytest.raises(ApiException) as caught:
            apps.patch_namespaced_deployment("agent", "prod", {"spec": {}}, _request_timeout=T)
        body = status_body(caught.value)
        assert body["message"] == (
            'deployments.apps "agent" is forbidden: User "system:anonymous" cannot patch resource '
            '"deployments" in API group "apps" in the namespace "prod"'
        )
        assert body["details"] == {"name": "agent", "group": "apps", "kind": "deployments"}

    def test_tls_with_a_generated_ca_and_token(
        self,
        make_kube: Callable[..., KubernetesEmulator],
        make_kube_api: MakeApi,
        tmp_path: Path,
    ) -> None:
        """Over HTTPS the kubeconfig carries CA and token; the client verifies the server."""
        ca, cert, key = generate_tls(tmp_path / "tls")
        emulator = make_kube(tls=(str(cert), str(key)), ca_cert=ca, token="t0ken")
        assert emulator.url.startswith("https://127.0.0.1:")
        kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        assert "certificate-authority-data" in kubeconfig.read_text()
        assert kubeconfig.stat().st_mode & 0o777 == 0o600
        core = client.CoreV1Api(make_kube_api(kubeconfig))
        core.create_namespaced_secret("default", secret("foo"), _request_timeout=T)
        assert emulator.get("secrets", "default", "foo") is not None


class TestKubeconfig:
    """Kubeconfig files with several contexts."""

    def test_each_context_reaches_its_own_emulator(
        self,
        make_kube: Callable[..., KubernetesEmulator],
        make_kube_api: MakeApi,
        tmp_path: Path,
    ) -> None:
        """A kubeconfig written for two emulators routes each context to its cluster."""
        east, west = make_kube(), make_kube()
        path = write_kubeconfig(tmp_path / "kubeconfig", {"east": east, "west": west})
        client.CoreV1Api(make_kube_api(path, context="west")).create_namespaced_secret(
            "default", secret("only-west"), _request_timeout=T
        )
        assert west.get("secrets", "default", "only-west") is not None
        assert east.get("secrets", "default", "only-west") is None


NAMESPACE_NOT_FOUND = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": 'namespaces "team-a" not found',
    "reason": "NotFound",
    "details": {"name": "team-a", "kind": "namespaces"},
    "code": 404,
}


class TestNamespaces:
    """Namespaces are as strict as on a cluster: they exist by default or are created."""

    def test_only_the_standard_namespaces_exist_at_start(self, core: client.CoreV1Api) -> None:
        """default, kube-system, kube-public and kube-node-lease exist, nothing else."""
        names = {n.metadata.name for n in core.list_namespace(_request_timeout=T).items}
        assert names == {"default", "kube-system", "kube-public", "kube-node-lease"}

    def test_create_in_a_missing_namespace_is_the_admission_404(
        self, core: client.CoreV1Api, kube: KubernetesEmulator
    ) -> None:
        """A POST into a namespace that does not exist answers namespaces "x" not found."""
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_secret("team-a", secret("foo"), _request_timeout=T)
        assert caught.value.status == 404
        assert status_body(caught.value) == NAMESPACE_NOT_FOUND
        assert kube.get("namespaces", "", "team-a") is None

    def test_dry_run_create_in_a_missing_namespace_is_refused_too(
        self, core: client.CoreV1Api
    ) -> None:
        """Admission runs for dry-run requests as well: the same 404."""
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_secret(
                "team-a", secret("foo"), dry_run="All", _request_timeout=T
            )
        assert status_body(caught.value) == NAMESPACE_NOT_FOUND

    def test_put_creating_a_lease_in_a_missing_namespace_is_the_admission_404(
        self, kube_api: client.ApiClient
    ) -> None:
        """A Lease PUT (create-on-update) into a missing namespace gets the namespace 404."""
        lease = client.V1Lease(
            metadata=client.V1ObjectMeta(name="leader"),
            spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15),
        )
        with pytest.raises(ApiException) as caught:
            client.CoordinationV1Api(kube_api).replace_namespaced_lease(
                "leader", "team-a", lease, _request_timeout=T
            )
        assert status_body(caught.value) == NAMESPACE_NOT_FOUND

    def test_patch_in_a_missing_namespace_names_the_object(self, core: client.CoreV1Api) -> None:
        """Update and patch look the object up before admission: its own 404 comes back."""
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_secret("foo", "team-a", {"data": {}}, _request_timeout=T)
        assert caught.value.status == 404
        assert status_body(caught.value)["message"] == 'secrets "foo" not found'

    def test_created_namespace_accepts_objects(self, core: client.CoreV1Api) -> None:
        """POST /api/v1/namespaces creates an Active namespace a Secret can then be created in."""
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name="team-a")), _request_timeout=T
        )
        core.create_namespaced_secret("team-a", secret("foo"), _request_timeout=T)
        namespace = core.read_namespace("team-a", _request_timeout=T)
        assert namespace.status.phase == "Active"
        assert namespace.metadata.labels["kubernetes.io/metadata.name"] == "team-a"

    def test_create_namespace_helper_is_idempotent_and_adds_labels(
        self, kube: KubernetesEmulator
    ) -> None:
        """kube.create_namespace creates once, keeps the uid and merges the labels it is given."""
        first = kube.create_namespace("team-a")
        again = kube.create_namespace("team-a", labels={"team": "a"})
        assert again["metadata"]["uid"] == first["metadata"]["uid"]
        assert again["metadata"]["labels"]["team"] == "a"

    def test_seeding_helpers_create_the_namespace_they_need(self, kube: KubernetesEmulator) -> None:
        """apply and add_workload are seeding helpers: they create a missing namespace."""
        kube.apply(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"}}
        )
        kube.add_workload("deployment", "b", "agent")
        assert kube.get("namespaces", "", "a") is not None
        assert kube.get("namespaces", "", "b") is not None


class TestWorkloads:
    """Deployments, DaemonSets, StatefulSets: generation, validation and simulated rollouts."""

    @pytest.fixture
    def slow(
        self, make_kube: Callable[..., KubernetesEmulator], kube_clock: KubeClock
    ) -> KubernetesEmulator:
        """An emulator on a frozen clock whose rollouts take 60 seconds."""
        return make_kube(clock=kube_clock, rollout_seconds=60)

    @pytest.fixture
    def slow_apps(
        self, slow: KubernetesEmulator, make_kube_api: MakeApi, tmp_path: Path
    ) -> client.AppsV1Api:
        """AppsV1Api on the slow emulator."""
        return client.AppsV1Api(make_kube_api(slow.write_kubeconfig(tmp_path / "slow")))

    @staticmethod
    def restart(
        apps: client.AppsV1Api, kind: str, name: str, stamp: str = "2025-06-01T12:00:00Z"
    ) -> Any:
        """What ``kubectl rollout restart`` sends: a restartedAt template annotation."""
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        patch = getattr(apps, f"patch_namespaced_{kind}")
        return patch(name, "prod", body, _request_timeout=T)

    @staticmethod
    def progressing(deployment: Any) -> Any:
        """The Progressing condition."""
        return next(c for c in deployment.status.conditions if c.type == "Progressing")

    def test_generation_counts_spec_changes(
        self, apps: client.AppsV1Api, kube: KubernetesEmulator
    ) -> None:
        """Generation is 1 on create, +1 per spec change, unchanged by a label-only change."""
        kube.add_workload("statefulset", "prod", "db")
        assert (
            apps.read_namespaced_stateful_set("db", "prod", _request_timeout=T).metadata.generation
            == 1
        )
        apps.patch_namespaced_stateful_set(
            "db", "prod", {"metadata": {"labels": {"extra": "x"}}}, _request_timeout=T
        )
        assert (
            apps.read_namespaced_stateful_set("db", "prod", _request_timeout=T).metadata.generation
            == 1
        )
        self.restart(apps, "stateful_set", "db")
        assert (
            apps.read_namespaced_stateful_set("db", "prod", _request_timeout=T).metadata.generation
            == 2
        )

    def test_deployment_rollout_progresses_with_the_clock(
        self, slow: KubernetesEmulator, slow_apps: client.AppsV1Api, kube_clock: KubeClock
    ) -> None:
        """A restart rolls out over rollout_seconds: 0, then 1, then 2 of 2 replicas updated."""
        slow.add_workload("deployment", "prod", "agent", replicas=2)
        assert slow.rollout_complete("deployment", "prod", "agent")
        patched = self.restart(slow_apps, "deployment", "agent")
        assert patched.metadata.generation == 2
        assert patched.status.observed_generation == 1
        now = slow_apps.read_namespaced_deployment("agent", "prod", _request_timeout=T)
        assert now.status.observed_generation == 2
        assert now.status.updated_replicas is None  # omitempty: zero is absent
        assert now.status.replicas == 3
        assert self.progressing(now).reason == "ReplicaSetUpdated"
        kube_clock.advance(30)
        half = slow_apps.read_namespaced_deployment_status("agent", "prod", _request_timeout=T)
        assert half.status.updated_replicas == 1
        assert not slow.rollout_complete("deployment", "prod", "agent")
        kube_clock.advance(30)
        done = slow_apps.read_namespaced_deployment("agent", "prod", _request_timeout=T)
        assert (done.status.updated_replicas, done.status.available_replicas) == (2, 2)
        assert done.status.replicas == 2
        assert self.progressing(done).reason == "NewReplicaSetAvailable"
        assert done.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
        assert slow.rollout_complete("deployment", "prod", "agent")

    def test_paused_deployment_does_not_roll_until_resumed(
        self, slow: KubernetesEmulator, slow_apps: client.AppsV1Api, kube_clock: KubeClock
    ) -> None:
        """While ``spec.paused`` the rollout stands still (Progressing Unknown); resume ends it."""
        slow.add_workload("deployment", "prod", "agent")
        slow.pause("prod", "agent")
        self.restart(slow_apps, "deployment", "agent")
        kube_clock.advance(600)
        paused = slow_apps.read_namespaced_deployment("agent", "prod", _request_timeout=T)
        assert paused.status.updated_replicas is None
        condition = self.progressing(paused)
        assert (condition.status, condition.reason) == ("Unknown", "DeploymentPaused")
        slow.pause("prod", "agent", paused=False)
        kube_clock.advance(60)
        assert slow.rollout_complete("deployment", "prod", "agent")

    def test_stalled_deployment_exceeds_its_progress_deadline(
        self, slow: KubernetesEmulator, slow_apps: client.AppsV1Api, kube_clock: KubeClock
    ) -> None:
        """A stalled rollout reports Progressing False / ProgressDeadlineExceeded and never ends."""
        slow.add_workload("deployment", "prod", "agent")
        slow.stall("deployment", "prod", "agent")
        self.restart(slow_apps, "deployment", "agent")
        kube_clock.advance(3600)
        stuck = slow_apps.read_namespaced_deployment("agent", "prod", _request_timeout=T)
        condition = self.progressing(stuck)
        assert (condition.status, condition.reason) == ("False", "ProgressDeadlineExceeded")
        assert not slow.rollout_complete("deployment", "prod", "agent")

    def test_daemonset_rollout_counts_nodes(
        self, slow: KubernetesEmulator, slow_apps: client.AppsV1Api, kube_clock: KubeClock
    ) -> None:
        """A DaemonSet on 4 nodes updates them over the rollout; a stalled one stops short."""
        slow.add_workload("daemonset", "prod", "node-agent", replicas=4)
        self.restart(slow_apps, "daemon_set", "node-agent")
        kube_clock.advance(30)
        half = slow_apps.read_namespaced_daemon_set("node-agent", "prod", _request_timeout=T)
        assert half.status.desired_number_scheduled == 4
        assert half.status.updated_number_scheduled == 2
        assert half.status.number_available == 3
        kube_clock.advance(30)
        assert slow.rollout_complete("daemonset", "prod", "node-agent")
        slow.stall("daemonset", "prod", "node-agent")
        self.restart(slow_apps, "daemon_set", "node-agent", stamp="2025-06-01T13:00:00Z")
        kube_clock.advance(3600)
        assert not slow.rollout_complete("daemonset", "prod", "node-agent")

    def test_statefulset_revisions_converge(
        self, slow: KubernetesEmulator, slow_apps: client.AppsV1Api, kube_clock: KubeClock
    ) -> None:
        """updateRevision moves at once; currentRevision catches up when the rollout ends."""
        slow.add_workload("statefulset", "prod", "db", replicas=3)
        before = slow_apps.read_namespaced_stateful_set("db", "prod", _request_timeout=T)
        self.restart(slow_apps, "stateful_set", "db")
        during = slow_apps.read_namespaced_stateful_set("db", "prod", _request_timeout=T)
        assert during.status.current_revision == before.status.current_revision
        assert during.status.update_revision != before.status.update_revision
        assert during.status.ready_replicas == 2
        kube_clock.advance(60)
        after = slow_apps.read_namespaced_stateful_set("db", "prod", _request_timeout=T)
        assert after.status.current_revision == after.status.update_revision
        assert (after.status.ready_replicas, after.status.updated_replicas) == (3, 3)

    def test_selector_must_match_template_labels(
        self, apps: client.AppsV1Api, kube: KubernetesEmulator
    ) -> None:
        """A Deployment whose selector misses its template labels answers 422 Invalid."""
        kube.create_namespace("prod")
        body = client.V1Deployment(
            metadata=client.V1ObjectMeta(name="bad"),
            spec=client.V1DeploymentSpec(
                selector=client.V1LabelSelector(match_labels={"app": "x"}),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"app": "y"}),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="i")]),
                ),
            ),
        )
        with pytest.raises(ApiException) as caught:
            apps.create_namespaced_deployment("prod", body, _request_timeout=T)
        body_json = status_body(caught.value)
        assert body_json["details"]["kind"] == "Deployment"
        assert body_json["details"]["group"] == "apps"
        assert body_json["details"]["causes"][0]["field"] == "spec.template.metadata.labels"

    def test_strategic_merge_of_containers_by_name(
        self, apps: client.AppsV1Api, kube: KubernetesEmulator
    ) -> None:
        """Patching one container by name keeps the others and their fields."""
        kube.add_workload("deployment", "prod", "agent", env_from_secret="agent-secrets")
        apps.patch_namespaced_deployment(
            "agent",
            "prod",
            {"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "new:2"}]}}}},
            _request_timeout=T,
        )
        stored = kube.get("deployments", "prod", "agent")
        assert stored is not None
        container = stored["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "new:2"
        assert container["envFrom"] == [{"secretRef": {"name": "agent-secrets"}}]


class TestRolloutDurations:
    """Each workload's rollouts take its own time; the emulator-wide value is the default."""

    @pytest.fixture
    def timed(
        self, make_kube: Callable[..., KubernetesEmulator], kube_clock: KubeClock
    ) -> KubernetesEmulator:
        """An emulator on a frozen clock whose rollouts take 60 seconds unless told otherwise."""
        return make_kube(clock=kube_clock, rollout_seconds=60)

    @pytest.fixture
    def timed_apps(
        self, timed: KubernetesEmulator, make_kube_api: MakeApi, tmp_path: Path
    ) -> client.AppsV1Api:
        """AppsV1Api on the timed emulator."""
        return client.AppsV1Api(make_kube_api(timed.write_kubeconfig(tmp_path / "timed")))

    @staticmethod
    def restart(apps: client.AppsV1Api, name: str, stamp: str = "2025-06-01T12:00:00Z") -> None:
        """``kubectl rollout restart deployment/<name>`` in namespace prod."""
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        apps.patch_namespaced_deployment(name, "prod", body, _request_timeout=T)

    def test_add_workload_sets_its_own_duration(
        self, timed: KubernetesEmulator, timed_apps: client.AppsV1Api, kube_clock: KubeClock
    ) -> None:
        """A workload seeded with rollout_seconds=10 finishes after 10 s, the others after 60."""
        timed.add_workload("deployment", "prod", "fast", rollout_seconds=10)
        timed.add_workload("deployment", "prod", "slow")
        assert timed.rollout_complete("deployment", "prod", "fast")
        self.restart(timed_apps, "fast")
        self.restart(timed_apps, "slow")
        kube_clock.advance(10)
        assert timed.rollout_complete("deployment", "prod", "fast")
        assert not timed.rollout_complete("deployment", "prod", "slow")
        kube_clock.advance(50)
        assert timed.rollout_complete("deployment", "prod", "slow")

    def test_new_duration_applies_to_the_next_rollout(
        self, timed: KubernetesEmulator, timed_apps: client.AppsV1Api, kube_clock: KubeClock
    ) -> None:
        """Slowing down a rolled-out workload keeps it rolled out; its next rollout is slower."""
        timed.add_workload("deployment", "prod", "agent", rollout_seconds=0)
        timed.set_rollout_seconds("deployment", "prod", "agent", 120)
        assert timed.rollout_complete("deployment", "prod", "agent")
        self.restart(timed_apps, "agent")
        kube_clock.advance(60)
        assert not timed.rollout_complete("deployment", "prod", "agent")
        kube_clock.advance(60)
        assert timed.rollout_complete("deployment", "prod", "agent")

    def test_rollout_in_progress_keeps_its_fraction(
        self, timed: KubernetesEmulator, timed_apps: client.AppsV1Api, kube_clock: KubeClock
    ) -> None:
        """Half way through at 60 s per rollout, it is still half way at 120 s, and ends 60 s on."""
        timed.add_workload("deployment", "prod", "agent", replicas=2)
        self.restart(timed_apps, "agent")
        kube_clock.advance(30)
        timed.set_rollout_seconds("deployment", "prod", "agent", 120)
        half = timed_apps.read_namespaced_deployment("agent", "prod", _request_timeout=T)
        assert half.status.updated_replicas == 1
        kube_clock.advance(59)
        assert not timed.rollout_complete("deployment", "prod", "agent")
        kube_clock.advance(1)
        assert timed.rollout_complete("deployment", "prod", "agent")

    def test_none_restores_the_emulator_wide_duration(self, timed: KubernetesEmulator) -> None:
        """set_rollout_seconds(..., None) drops the workload's own duration."""
        timed.add_workload("daemonset", "prod", "node-agent", rollout_seconds=5)
        assert timed.rollout_seconds_of("daemonset", "prod", "node-agent") == 5
        timed.set_rollout_seconds("daemonset", "prod", "node-agent", None)
        assert timed.rollout_seconds_of("daemonset", "prod", "node-agent") == 60

    def test_unknown_workload_is_a_key_error(self, timed: KubernetesEmulator) -> None:
        """Setting the duration of a workload that does not exist raises KeyError."""
        with pytest.raises(KeyError):
            timed.set_rollout_seconds("deployment", "prod", "nope", 5)


class TestLeases:
    """Leases for leader election."""

    @pytest.fixture
    def leases(self, kube_api: client.ApiClient) -> client.CoordinationV1Api:
        """CoordinationV1Api on ``kube``."""
        return client.CoordinationV1Api(kube_api)

    @staticmethod
    def lease(holder: str, moment: datetime, rv: str | None = None) -> client.V1Lease:
        """A Lease held by ``holder`` since ``moment``."""
        return client.V1Lease(
            metadata=client.V1ObjectMeta(name="rotator-leader", resource_version=rv),
            spec=client.V1LeaseSpec(
                holder_identity=holder,
                lease_duration_seconds=15,
                acquire_time=moment,
                renew_time=moment,
                lease_transitions=0,
            ),
        )

    def test_acquire_renew_and_lose_a_race(self, leases: client.CoordinationV1Api) -> None:
        """Create, renew with PUT + resourceVersion, and a racer's stale PUT gets 409."""
        moment = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
        created = leases.create_namespaced_lease(
            "default", self.lease("a", moment), _request_timeout=T
        )
        assert created.spec.acquire_time == moment
        renewed_spec = self.lease(
            "a", moment + timedelta(seconds=5), created.metadata.resource_version
        )
        renewed = leases.replace_namespaced_lease(
            "rotator-leader", "default", renewed_spec, _request_timeout=T
        )
        assert renewed.spec.renew_time == moment + timedelta(seconds=5)
        racer = self.lease("b", moment, created.metadata.resource_version)
        with pytest.raises(ApiException) as caught:
            leases.replace_namespaced_lease("rotator-leader", "default", racer, _request_timeout=T)
        assert status_body(caught.value)["message"].startswith(
            'Operation cannot be fulfilled on leases.coordination.k8s.io "rotator-leader"'
        )

    def test_micro_time_without_six_fractional_digits_is_rejected(
        self, leases: client.CoordinationV1Api, http: httpx.Client
    ) -> None:
        """A whole-second time (Python's isoformat drops .000000) answers 400 like Go's parser."""
        with pytest.raises(ApiException) as caught:
            leases.create_namespaced_lease(
                "default", self.lease("a", datetime(2025, 6, 1, 12, tzinfo=UTC)), _request_timeout=T
            )
        assert status_body(caught.value)["message"] == (
            'Lease in version "v1" cannot be handled as a Lease: parsing time '
            '"2025-06-01T12:00:00+00:00" as "2006-01-02T15:04:05.000000Z07:00": '
            'cannot parse "+00:00" as ".000000"'
        )
        stored = http.post(
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            json={
                "metadata": {"name": "x"},
                "spec": {"acquireTime": "2025-06-01T14:00:00.000001+02:00"},
            },
        ).json()
        assert stored["spec"]["acquireTime"] == "2025-06-01T12:00:00.000001Z"


class TestFaults:
    """Injected faults answer Status bodies."""

    def test_injected_server_error_is_a_status(
        self, core: client.CoreV1Api, kube: KubernetesEmulator
    ) -> None:
        """``fail_next`` answers an InternalError Status once, then the API works again."""
        kube.fail_next("GET", r"/api/v1/namespaces/default/secrets", 500)
        with pytest.raises(ApiException) as caught:
            core.list_namespaced_secret("default", _request_timeout=T)
        body = status_body(caught.value)
        assert (body["code"], body["reason"], body["status"]) == (500, "InternalError", "Failure")
        assert core.list_namespaced_secret("default", _request_timeout=T).items == []

    def test_throttling_carries_retry_after(
        self, kube: KubernetesEmulator, http: httpx.Client
    ) -> None:
        """An injected 429 is TooManyRequests with a Retry-After header."""
        kube.fail_next("GET", r"/api/v1/namespaces/default/secrets", 429)
        answer = http.get("/api/v1/namespaces/default/secrets")
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["reason"] == "TooManyRequests"


class TestDecoding:
    """The pure decoding helpers that reproduce Go's error messages."""

    @pytest.mark.parametrize(
        ("value", "offset"),
        [
            ("YWJj", None),
            ("YW\nJj", None),
            ("YWI=", None),
            ("YQ==", None),
            ("admin", 4),
            ("wombat", 4),
            ("YQ=", 3),
            ("a===", 1),
            ("YQ==YQ", 4),
            ("a!bc", 1),
        ],
    )
    def test_base64_offsets_match_go(self, value: str, offset: int | None) -> None:
        """The reported byte offset is the one ``encoding/base64`` puts in CorruptInputError."""
        assert go_base64_error(value) == offset

    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            ("2022-06-23T18:10:50.278Z", 'cannot parse ".278Z" as ".000000"'),
            ("2020-02-28T20:11:41.636526400Z", 'cannot parse "400Z" as "Z07:00"'),
        ],
    )
    def test_micro_time_errors_match_go(self, value: str, problem: str) -> None:
        """Millisecond and nanosecond times fail where Go's RFC3339Micro layout fails."""
        with pytest.raises(DecodeError) as caught:
            parse_microtime(value)
        assert str(caught.value).endswith(problem)

    def test_micro_time_is_normalised_to_utc(self) -> None:
        """A valid MicroTime is written back in UTC with six digits and ``Z``."""
        normalised = parse_microtime("2025-01-01T01:00:00.500000+01:00")
        assert normalised == "2025-01-01T00:00:00.500000Z"

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [
            (45, "45s"),
            (200, "3m20s"),
            (600, "10m"),
            (18600, "5h10m"),
            (259200, "3d"),
            (864000, "10d"),
        ],
    )
    def test_ages_render_like_kubectl(self, seconds: int, text: str) -> None:
        """Table ages follow apimachinery's HumanDuration."""
        assert human_duration(seconds) == text


class TestPatchFunctions:
    """Strategic merge, merge and JSON patch semantics on plain documents."""

    def test_strategic_merge_directives(self) -> None:
        """Containers merge by name, ``$patch: delete`` removes one, finalizers merge as a set."""
        original = {
            "metadata": {"finalizers": ["a"]},
            "spec": {"containers": [{"name": "x", "image": "1"}, {"name": "y", "image": "1"}]},
        }
        patch = {
            "metadata": {"finalizers": ["b"]},
            "spec": {
                "containers": [{"name": "x", "image": "2"}, {"name": "y", "$patch": "delete"}],
                "$setElementOrder/containers": [{"name": "x"}],
            },
        }
        assert strategic_merge_patch(original, patch) == {
            "metadata": {"finalizers": ["a", "b"]},
            "spec": {"containers": [{"name": "x", "image": "2"}]},
        }

    def test_merge_patch_replaces_lists_and_deletes_nulls(self) -> None:
        """RFC 7386: lists are replaced whole and ``null`` removes a key."""
        assert merge_patch({"a": [1, 2], "b": {"c": 1, "d": 2}}, {"a": [3], "b": {"c": None}}) == {
            "a": [3],
            "b": {"d": 2},
        }

    def test_json_patch_operations(self) -> None:
        """add/copy/move/test work on pointers; a failed test raises a 422 PatchError."""
        doc = {"a": {"b": 1}, "list": [1]}
        result = json_patch(
            doc,
            [
                {"op": "add", "path": "/list/-", "value": 2},
                {"op": "copy", "from": "/a/b", "path": "/c"},
                {"op": "move", "from": "/a", "path": "/moved"},
                {"op": "test", "path": "/c", "value": 1},
            ],
        )
        assert result == {"list": [1, 2], "c": 1, "moved": {"b": 1}}
        with pytest.raises(PatchError) as caught:
            json_patch(doc, [{"op": "test", "path": "/a/b", "value": 2}])
        assert caught.value.code == 422
