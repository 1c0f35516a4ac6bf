"""The StackState emulator against the OpenAPI excerpt, and the validator that judges it.

The validator is tested first on hand-made exchanges, so a pass of the emulator cannot be vacuous;
then a broad exchange drives every operation and every documented status of the excerpt.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotator_sandbox.stackstate import StackStateEmulator, to_epoch_ms
from tests.contract.openapi import (
    ALLOWED_UNDOCUMENTED,
    find_operation,
    load_spec,
    operations,
    validate_request,
    validate_response,
)
from tests.plugins.stackstate import MutableClock, contract_problems

TIMEOUT = httpx.Timeout(5.0)
ADMIN = {"X-API-Token": "sandbox-api-token"}

GOOD_TOKEN = {"id": 1, "name": "n", "roles": ["r"], "lastUpdateTimestamp": 2}
GENERIC_500 = {
    "_type": "ErrorsResponse",
    "errors": [{"_type": "InternalError", "message": "boom"}],
    "trackingKey": "abc",
    "serverTimestamp": 1,
}


def dumps(value: object) -> bytes:
    """JSON bytes of a value."""
    return json.dumps(value).encode()


class TestSpec:
    """The excerpt kept next to the contract checks (tests/contract/stackstate-openapi.yaml)."""

    def test_parses_as_openapi_3(self) -> None:
        """The excerpt loads as an OpenAPI 3.0 document."""
        spec = load_spec()
        assert spec["openapi"].startswith("3.0")
        assert spec["servers"] == [{"url": "/api"}]

    def test_has_every_operation_the_rotator_uses(self) -> None:
        """All nine operations are present."""
        assert {op.operation_id for op in operations()} == {
            "getIngestionApiKeys",
            "generateIngestionApiKey",
            "deleteIngestionApiKey",
            "authorizeIngestionApiKey",
            "serverInfo",
            "getServiceTokens",
            "createNewServiceToken",
            "deleteServiceToken",
            "getUserAuthorizationFor",
        }

    def test_every_ref_resolves(self) -> None:
        """Every $ref in the excerpt points at an existing component schema."""
        spec = load_spec()
        schemas = spec["components"]["schemas"]
        refs: list[str] = []

        def walk(node: object) -> None:
            if isinstance(node, dict):
                if "$ref" in node:
                    refs.append(node["$ref"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for item in node:
                    walk(item)

        walk(spec)
        assert refs
        for ref in refs:
            assert ref.startswith("#/components/schemas/")
            assert ref.rsplit("/", 1)[1] in schemas

    def test_allow_list_is_small_and_explained(self) -> None:
        """Every undocumented-but-allowed answer carries its reason, and there are few of them."""
        assert len(ALLOWED_UNDOCUMENTED) <= 8
        assert all(len(allowance.why) > 40 for allowance in ALLOWED_UNDOCUMENTED)


class TestFindOperation:
    """Mapping a request path onto the excerpt."""

    @pytest.mark.parametrize(
        ("method", "path", "operation_id"),
        [
            ("GET", "/api/security/tokens", "getServiceTokens"),
            ("delete", "/api/security/tokens/250558013078953", "deleteServiceToken"),
            ("DELETE", "/api/security/tokens/{serviceTokenId}", "deleteServiceToken"),
            ("POST", "/api/security/ingestion/authorize", "authorizeIngestionApiKey"),
        ],
    )
    def test_known(self, method: str, path: str, operation_id: str) -> None:
        """Concrete and templated paths under the base path find their operation."""
        op = find_operation(method, path)
        assert op is not None
        assert op.operation_id == operation_id

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/security/tokens"),
            ("PUT", "/api/security/tokens"),
            ("DELETE", "/api/security/tokens/abc"),
            ("GET", "/api/security/tokens/"),
        ],
    )
    def test_unknown(self, method: str, path: str) -> None:
        """Paths without the base, wrong methods and non-integer ids are not operations."""
        assert find_operation(method, path) is None

    def test_custom_base_path(self) -> None:
        """The base path is configurable, and "" means none."""
        assert find_operation("GET", "/sts/api/server/info", api_path="/sts/api/") is not None
        assert find_operation("GET", "/server/info", api_path="") is not None
        assert find_operation("GET", "/api/server/info", api_path="/sts") is None


class TestValidateResponse:
    """validate_response catches every kind of departure (so it cannot pass vacuously)."""

    def test_conforming_list(self) -> None:
        """A well-formed list conforms."""
        assert validate_response("GET", "/api/security/tokens", 200, dumps([GOOD_TOKEN])) == []

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            ({"apiKey": "leak"}, "'apiKey' was unexpected"),
            ({"id": "1"}, "$[0].id: value breaks type"),
            ({"id": 1.0}, "$[0].id: value breaks type"),
            ({"id": 2**63}, "$[0].id: value breaks format='int64'"),
            ({"roles": "admin"}, "$[0].roles: value breaks type"),
            ({"name": None}, "$[0].name: value breaks type"),
        ],
    )
    def test_wrong_list_item(self, change: dict[str, object], expected: str) -> None:
        """An extra field, a wrong type or an out-of-range int64 is reported."""
        problems = validate_response(
            "GET", "/api/security/tokens", 200, dumps([GOOD_TOKEN | change])
        )
        assert len(problems) == 1
        assert expected in problems[0]

    def test_missing_required_field(self) -> None:
        """A create answer without apiKey is reported."""
        body = {"id": 1, "name": "n", "lastUpdateTimestamp": 1}
        problems = validate_response("POST", "/api/security/ingestion/api_keys", 200, dumps(body))
        assert problems == [
            "POST /api/security/ingestion/api_keys -> 200: $: 'apiKey' is a required property"
        ]

    def test_problem_text_does_not_echo_values(self) -> None:
        """A problem names the rule broken, not the (possibly secret) value."""
        body = {"name": "n", "token": 123456789}
        (problem,) = validate_response("POST", "/api/security/tokens", 200, dumps(body))
        assert "123456789" not in problem

    @pytest.mark.parametrize(
        ("method", "path", "status", "body"),
        [
            ("GET", "/api/server/info", 200, b"not json"),
            ("GET", "/api/server/info", 200, b""),
            ("DELETE", "/api/security/tokens/1", 204, b"{}"),
            ("DELETE", "/api/security/tokens/1", 200, b""),
            ("GET", "/api/security/tokens", 500, dumps({"error": "x"})),
            ("GET", "/api/security/tokens", 500, dumps(GENERIC_500 | {"_type": "Other"})),
            (
                "POST",
                "/api/security/tokens",
                400,
                dumps({"_type": "IngestionApiKeyInvalidExpiryError", "message": "m"}),
            ),
            ("GET", "/api/user/authorization/for", 204, b"{}"),
            ("GET", "/api/nothing", 200, b"{}"),
        ],
        ids=[
            "not-json",
            "empty-200",
            "body-on-204",
            "undocumented-200",
            "500-free-form",
            "500-wrong-type",
            "400-other-kind",
            "204-with-body",
            "unknown-path",
        ],
    )
    def test_rejects(self, method: str, path: str, status: int, body: bytes) -> None:
        """Departures in status, shape and body presence are all problems."""
        assert validate_response(method, path, status, body) != []

    @pytest.mark.parametrize(
        ("method", "path", "status", "body"),
        [
            ("GET", "/api/security/tokens", 500, dumps(GENERIC_500)),
            ("GET", "/api/security/tokens", 401, b""),
            ("POST", "/api/security/ingestion/api_keys", 403, b""),
            (
                "DELETE",
                "/api/security/ingestion/api_keys/7",
                404,
                dumps({"_type": "IngestionApiKeyNotFoundError", "message": "gone"}),
            ),
            ("POST", "/api/security/tokens", 400, b"The request content was malformed:\nx"),
            (
                "GET",
                "/api/user/authorization/for",
                400,
                b"Request is missing required query parameter 'permission'",
            ),
            ("GET", "/api/user/authorization/for", 400, b""),
            ("GET", "/api/server/info", 503, b"<html>upstream down</html>"),
        ],
        ids=[
            "500",
            "401-empty",
            "403-empty",
            "404-delete",
            "400-akka-body",
            "400-akka-query",
            "400-documented",
            "503-proxy",
        ],
    )
    def test_accepts_documented_and_allowed(
        self, method: str, path: str, status: int, body: bytes
    ) -> None:
        """Documented answers and the explicit allow-list conform."""
        assert validate_response(method, path, status, body) == []

    @pytest.mark.parametrize(
        ("method", "path", "status", "body"),
        [
            ("GET", "/api/security/tokens", 401, dumps({"error": "unauthorized"})),
            ("GET", "/api/security/tokens", 404, dumps({"_type": "NotFoundError", "message": "m"})),
            (
                "DELETE",
                "/api/security/tokens/1",
                404,
                b"The requested resource could not be found.",
            ),
            ("GET", "/api/server/info", 400, b"The request content was malformed"),
            ("GET", "/api/security/tokens", 409, b""),
        ],
        ids=["401-with-body", "404-on-list", "404-text", "400-no-input", "409"],
    )
    def test_allow_list_is_narrow(self, method: str, path: str, status: int, body: bytes) -> None:
        """The allow-list applies only to its operations and its body shape."""
        assert validate_response(method, path, status, body) != []


class TestValidateRequest:
    """validate_request checks what a client sends."""

    def test_conforming_requests(self) -> None:
        """Well-formed bodies and queries conform."""
        body = dumps({"name": "n", "roles": ["r"], "expiryDate": 1, "dedicatedSubject": "s"})
        assert validate_request("POST", "/api/security/tokens", body) == []
        assert validate_request("DELETE", "/api/security/tokens/1", b"") == []
        assert (
            validate_request(
                "POST",
                "/api/security/ingestion/authorize",
                dumps({"apiKey": "k"}),
                query="withReceiverKey=true",
            )
            == []
        )

    @pytest.mark.parametrize(
        ("method", "path", "body", "query"),
        [
            (
                "POST",
                "/api/security/tokens",
                dumps({"name": "n", "roles": [], "description": "d"}),
                "",
            ),
            ("POST", "/api/security/tokens", dumps({"name": "n"}), ""),
            (
                "POST",
                "/api/security/ingestion/api_keys",
                dumps({"name": "n", "expiration": "x"}),
                "",
            ),
            ("POST", "/api/security/ingestion/api_keys", b"", ""),
            ("GET", "/api/security/tokens", b"{}", ""),
            ("GET", "/api/user/authorization/for", b"", ""),
            ("GET", "/api/user/authorization/for", b"", "permission=a&extra=1"),
            (
                "POST",
                "/api/security/ingestion/authorize",
                dumps({"apiKey": "k"}),
                "withReceiverKey=1",
            ),
        ],
        ids=[
            "token-description",
            "token-no-roles",
            "expiration-string",
            "missing-body",
            "body-on-get",
            "missing-permission",
            "unknown-query",
            "non-boolean",
        ],
    )
    def test_rejects(self, method: str, path: str, body: bytes, query: str) -> None:
        """Unknown fields, missing fields, wrong types and bad queries are problems."""
        assert validate_request(method, path, body, query=query) != []


class TestContractProblems:
    """The teardown check of the pytest plugin."""

    def test_flags_an_off_contract_fault_body(self) -> None:
        """An injected fault with a made-up body is reported; dropped answers are not."""
        with (
            StackStateEmulator() as emulator,
            httpx.Client(base_url=emulator.url, headers=ADMIN, timeout=TIMEOUT) as client,
        ):
            emulator.fail_next("GET", r"/api/server/info", 500, body={"oops": True})
            emulator.drop_after_processing("GET", r"/api/security/tokens")
            client.get("/api/server/info")
            with pytest.raises(httpx.TransportError):
                client.get("/api/security/tokens")
            client.get("/api/unknown")
            problems = contract_problems(emulator)
        assert problems
        assert all(p.startswith("GET /api/server/info -> 500: ") for p in problems)

    def test_flags_an_accepted_request_the_spec_does_not_allow(self) -> None:
        """A request the emulator accepted but that departs from the spec is reported."""
        with (
            StackStateEmulator() as emulator,
            httpx.Client(base_url=emulator.url, headers=ADMIN, timeout=TIMEOUT) as client,
        ):
            client.post("/api/security/tokens", json={"name": "n", "roles": [], "description": "d"})
            problems = contract_problems(emulator)
        assert len(problems) == 1
        assert "'description' was unexpected" in problems[0]


class TestBroadExchange:
    """Every operation and every documented status, produced by the emulator, conforms."""

    @pytest.fixture
    def client(self, stackstate: StackStateEmulator) -> Iterator[httpx.Client]:
        """An admin client on the emulator."""
        with httpx.Client(base_url=stackstate.url, headers=ADMIN, timeout=TIMEOUT) as client:
            yield client

    def test_every_documented_status_of_every_operation(
        self,
        stackstate: StackStateEmulator,
        client: httpx.Client,
        stackstate_clock: MutableClock,
    ) -> None:
        """Driving all operations yields every documented (operation, status), each conforming."""
        future = to_epoch_ms(stackstate_clock.now + timedelta(days=30))
        past = to_epoch_ms(stackstate_clock.now - timedelta(days=1))
        keys = "/api/security/ingestion/api_keys"
        tokens = "/api/security/tokens"

        key = client.post(keys, json={"name": "k", "description": "d", "expiration": future})
        client.post(keys, json={"name": "k2"})
        client.post(keys, json={"name": "bad", "expiration": past})
        client.get(keys)
        client.post("/api/security/ingestion/authorize", json={"apiKey": key.json()["apiKey"]})
        client.post("/api/security/ingestion/authorize", json={"apiKey": "nope"})
        client.delete(f"{keys}/{key.json()['id']}")
        client.delete(f"{keys}/{key.json()['id']}")

        token = client.post(
            tokens,
            json={"name": "t", "roles": ["stackstate-ingest-telemetry"], "expiryDate": future},
        ).json()["token"]
        client.post(tokens, json={"name": "t2", "roles": [], "dedicatedSubject": "s"})
        client.post(tokens, json={"name": "bad", "roles": [], "expiryDate": past})
        listed = client.get(tokens).json()
        (other,) = [t for t in listed if t["name"] == "t2"]
        client.delete(f"{tokens}/{other['id']}")

        with httpx.Client(base_url=stackstate.url, timeout=TIMEOUT) as anonymous:
            for headers, permission in [
                ({"X-API-Key": token}, "update-metrics"),
                ({"X-API-Key": token}, "read-metrics"),
                ({"X-API-Key": "wrong"}, "update-metrics"),
                (ADMIN, "unknown-permission"),
            ]:
                anonymous.get(
                    "/api/user/authorization/for",
                    params={"permission": permission},
                    headers=headers,
                )
        client.get("/api/server/info")

        for op in operations():
            path = "/api" + op.template.replace("{ingestionApiKeyId}", "1").replace(
                "{serviceTokenId}", "1"
            )
            stackstate.fail_next(op.method, path, 500)
            body = {"name": "x", "roles": []} if op.has_request_body else None
            params = {"permission": "read-metrics"} if op.parameters("query") else None
            client.request(op.method, path, json=body, params=params)

        seen: set[tuple[str, int]] = set()
        for entry in stackstate.log:
            found = find_operation(entry.method, entry.path)
            assert found is not None
            assert entry.status is not None
            assert (
                validate_response(entry.method, entry.path, entry.status, entry.response_body) == []
            )
            seen.add((found.operation_id, entry.status))
        documented = {
            (op.operation_id, int(status)) for op in operations() for status in op.spec["responses"]
        }
        assert documented <= seen, sorted(documented - seen)

    def test_unauthenticated_and_forbidden_answers_conform(
        self, stackstate: StackStateEmulator, client: httpx.Client
    ) -> None:
        """401 and 403 on every operation use the allow-listed empty body."""
        token = client.post(
            "/api/security/tokens", json={"name": "i", "roles": ["stackstate-ingest-telemetry"]}
        ).json()["token"]
        for op in operations():
            path = "/api" + op.template.replace("{ingestionApiKeyId}", "1").replace(
                "{serviceTokenId}", "1"
            )
            body = {"apiKey": "x"} if op.has_request_body else None
            params = {"permission": "update-metrics"} if op.parameters("query") else None
            for headers in ({"X-API-Key": "wrong"}, {"X-API-Key": token}):
                with httpx.Client(
                    base_url=stackstate.url, headers=headers, timeout=TIMEOUT
                ) as other:
                    other.request(op.method, path, json=body, params=params)
        statuses = {e.status for e in stackstate.log[1:]}
        assert statuses == {401, 403, 204, 200}
        assert contract_problems(stackstate) == []


class TestGeneratedRequests:
    """Any request body the spec allows gets a conforming answer."""

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        name=st.text(max_size=20),
        description=st.none() | st.text(max_size=20),
        expiration=st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
    )
    def test_generated_ingestion_key_creates(
        self, name: str, description: str | None, expiration: int | None
    ) -> None:
        """Any valid GenerateIngestionApiKeyRequest answers 200 or 400, both conforming."""
        body: dict[str, object] = {"name": name}
        if description is not None:
            body["description"] = description
        if expiration is not None:
            body["expiration"] = expiration
        assert validate_request("POST", "/api/security/ingestion/api_keys", dumps(body)) == []
        with (
            StackStateEmulator() as emulator,
            httpx.Client(base_url=emulator.url, headers=ADMIN, timeout=TIMEOUT) as client,
        ):
            response = client.post("/api/security/ingestion/api_keys", json=body)
            assert response.status_code in (200, 400)
            assert contract_problems(emulator) == []
