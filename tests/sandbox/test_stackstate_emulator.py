"""The StackState emulator, driven over real HTTP with plain httpx.

Every test here uses the ``stackstate`` fixture, so each exchange is also checked against the
OpenAPI excerpt at teardown (tests/plugins/stackstate.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from rotator_sandbox.stackstate import StackStateEmulator, to_epoch_ms
from tests.plugins.stackstate import MutableClock, contract_problems

TIMEOUT = httpx.Timeout(5.0)
KEYS = "/api/security/ingestion/api_keys"
AUTHORIZE = "/api/security/ingestion/authorize"
TOKENS = "/api/security/tokens"
AUTH_FOR = "/api/user/authorization/for"
INFO = "/api/server/info"
INGEST_ROLE = "stackstate-ingest-telemetry"


@pytest.fixture
def http(stackstate: StackStateEmulator) -> Iterator[Callable[..., httpx.Client]]:
    """Make httpx clients on the emulator with the given headers; closes them afterwards."""
    clients: list[httpx.Client] = []

    def make(**headers: str) -> httpx.Client:
        client = httpx.Client(base_url=stackstate.url, headers=headers, timeout=TIMEOUT)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def admin(http: Callable[..., httpx.Client]) -> httpx.Client:
    """A client authenticated with the personal API token (all permissions)."""
    return http(**{"X-API-Token": "sandbox-api-token"})


def in_days(clock: MutableClock, days: float) -> int:
    """Epoch ms ``days`` after the emulator's now."""
    return to_epoch_ms(clock.now + timedelta(days=days))


def create_token(
    admin: httpx.Client, name: str, roles: list[str], expiry: int | None = None
) -> dict[str, object]:
    """Create a service token through the API and return the response JSON."""
    body: dict[str, object] = {"name": name, "roles": roles}
    if expiry is not None:
        body["expiryDate"] = expiry
    response = admin.post(TOKENS, json=body)
    assert response.status_code == 200, response.text
    created: dict[str, object] = response.json()
    return created


def token_id(admin: httpx.Client, name: str) -> int:
    """Find a service token's id by listing (the create response has none)."""
    matches = [t["id"] for t in admin.get(TOKENS).json() if t["name"] == name]
    assert len(matches) == 1
    return int(matches[0])


class TestRouting:
    """Paths, methods and the configurable API base path."""

    def test_unknown_path_is_404(self, admin: httpx.Client) -> None:
        """A path the API does not have answers 404 with Akka-HTTP's text."""
        response = admin.get("/api/security/nothing")
        assert response.status_code == 404
        assert response.text == "The requested resource could not be found."

    def test_path_outside_the_api_base_is_404(self, admin: httpx.Client) -> None:
        """A known path without the base path is not served."""
        assert admin.get("/security/tokens").status_code == 404

    def test_wrong_method_is_405_with_allow(self, admin: httpx.Client) -> None:
        """A known path with an unsupported method answers 405 naming the allowed methods."""
        response = admin.put(TOKENS, json={})
        assert response.status_code == 405
        assert response.headers["Allow"] == "GET, POST"

    def test_delete_needs_a_numeric_id(self, admin: httpx.Client) -> None:
        """A non-numeric id does not match the route and answers 404."""
        assert admin.delete(f"{TOKENS}/abc").status_code == 404

    def test_custom_api_path(self, make_stackstate: Callable[..., StackStateEmulator]) -> None:
        """An emulator built with another api_path serves every path under it only."""
        emulator = make_stackstate(api_path="/stackstate/api/")
        headers = {"X-API-Token": "sandbox-api-token"}
        with httpx.Client(base_url=emulator.url, headers=headers, timeout=TIMEOUT) as client:
            assert client.get("/stackstate/api/server/info").status_code == 200
            assert client.get("/stackstate/api/security/tokens").status_code == 200
            assert client.get(INFO).status_code == 404


class TestAuthentication:
    """Which credentials are accepted, and the 401/403 answers."""

    @pytest.mark.parametrize(
        ("header", "value"),
        [("X-API-Token", "sandbox-api-token"), ("X-API-Key", "sandbox-service-token")],
    )
    def test_configured_credentials_are_admin(
        self, http: Callable[..., httpx.Client], header: str, value: str
    ) -> None:
        """The configured API token and service token may use every admin endpoint."""
        client = http(**{header: value})
        assert client.get(KEYS).status_code == 200
        assert client.get(TOKENS).status_code == 200
        assert client.get(AUTH_FOR, params={"permission": "update-metrics"}).status_code == 204

    def test_service_bearer_when_configured(
        self, make_stackstate: Callable[..., StackStateEmulator]
    ) -> None:
        """X-API-ServiceBearer authenticates as admin when a bearer is configured."""
        emulator = make_stackstate(service_bearer="k8s-sa-jwt")
        with httpx.Client(base_url=emulator.url, timeout=TIMEOUT) as client:
            ok = client.get(TOKENS, headers={"X-API-ServiceBearer": "k8s-sa-jwt"})
            wrong = client.get(TOKENS, headers={"X-API-ServiceBearer": "other"})
        assert ok.status_code == 200
        assert wrong.status_code == 401

    def test_service_bearer_unconfigured_is_refused(
        self, http: Callable[..., httpx.Client]
    ) -> None:
        """Without a configured bearer, any X-API-ServiceBearer is refused."""
        client = http(**{"X-API-ServiceBearer": "anything"})
        assert client.get(INFO).status_code == 401

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"X-API-Token": "wrong"},
            {"X-API-Key": "wrong"},
            {"X-API-Token": ""},
            {"X-API-Token": "sandbox-api-token", "X-API-Key": "sandbox-service-token"},
        ],
        ids=["none", "bad-api-token", "bad-service-token", "empty", "two-credentials"],
    )
    def test_unaccepted_credentials_are_401_without_body(
        self, http: Callable[..., httpx.Client], headers: dict[str, str]
    ) -> None:
        """A missing, wrong, empty or ambiguous credential answers 401 with an empty body."""
        client = http(**headers)
        for response in (
            client.get(KEYS),
            client.post(TOKENS, json={"name": "n", "roles": []}),
            client.get(AUTH_FOR, params={"permission": "update-metrics"}),
            client.get(INFO),
        ):
            assert response.status_code == 401
            assert response.content == b""

    def test_created_token_authenticates_itself(
        self, admin: httpx.Client, http: Callable[..., httpx.Client]
    ) -> None:
        """A token created through the API is accepted in X-API-Key with its roles' permissions."""
        token = str(create_token(admin, "ingest", [INGEST_ROLE])["token"])
        client = http(**{"X-API-Key": token})
        assert client.get(AUTH_FOR, params={"permission": "update-metrics"}).status_code == 204
        assert client.get(INFO).status_code == 200

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("GET", KEYS, None),
            ("POST", KEYS, {"name": "x"}),
            ("DELETE", f"{KEYS}/1", None),
            ("POST", AUTHORIZE, {"apiKey": "x"}),
            ("GET", TOKENS, None),
            ("POST", TOKENS, {"name": "x", "roles": []}),
            ("DELETE", f"{TOKENS}/1", None),
        ],
    )
    def test_ingest_only_token_is_forbidden_admin_endpoints(
        self,
        admin: httpx.Client,
        http: Callable[..., httpx.Client],
        method: str,
        path: str,
        body: object,
    ) -> None:
        """A token holding only an ingestion role gets 403 (empty body) on admin endpoints."""
        token = str(create_token(admin, "ingest", ["suse-observability-ingest-all"])["token"])
        response = http(**{"X-API-Key": token}).request(method, path, json=body)
        assert response.status_code == 403
        assert response.content == b""

    def test_admin_role_token_may_manage_keys(
        self, admin: httpx.Client, http: Callable[..., httpx.Client]
    ) -> None:
        """A token with stackstate-admin may list and create keys."""
        token = str(create_token(admin, "boss", ["stackstate-admin"])["token"])
        client = http(**{"X-API-Key": token})
        assert client.get(TOKENS).status_code == 200
        assert client.post(KEYS, json={"name": "k"}).status_code == 200

    def test_expired_token_is_401(
        self,
        admin: httpx.Client,
        http: Callable[..., httpx.Client],
        stackstate_clock: MutableClock,
    ) -> None:
        """A created token stops authenticating once the clock passes its expiry."""
        token = str(create_token(admin, "t", [INGEST_ROLE], in_days(stackstate_clock, 1))["token"])
        client = http(**{"X-API-Key": token})
        assert client.get(AUTH_FOR, params={"permission": "update-metrics"}).status_code == 204
        stackstate_clock.advance(timedelta(days=1))
        assert client.get(AUTH_FOR, params={"permission": "update-metrics"}).status_code == 401

    def test_deleted_token_is_401(
        self, admin: httpx.Client, http: Callable[..., httpx.Client]
    ) -> None:
        """A deleted token is no longer accepted."""
        token = str(create_token(admin, "gone", [INGEST_ROLE])["token"])
        assert admin.delete(f"{TOKENS}/{token_id(admin, 'gone')}").status_code == 204
        client = http(**{"X-API-Key": token})
        assert client.get(AUTH_FOR, params={"permission": "update-metrics"}).status_code == 401


class TestIngestionApiKeys:
    """List, create, delete and authorize ingestion API keys."""

    def test_create_returns_the_key_once(
        self, admin: httpx.Client, stackstate_clock: MutableClock
    ) -> None:
        """Create answers id, name, description, expiration, timestamp and the value."""
        expiry = in_days(stackstate_clock, 30)
        response = admin.post(KEYS, json={"name": "k", "description": "d", "expiration": expiry})
        assert response.status_code == 200
        created = response.json()
        assert set(created) == {
            "id",
            "name",
            "description",
            "expiration",
            "lastUpdateTimestamp",
            "apiKey",
        }
        assert created["name"] == "k"
        assert created["description"] == "d"
        assert created["expiration"] == expiry
        assert created["lastUpdateTimestamp"] == to_epoch_ms(stackstate_clock.now)
        assert isinstance(created["id"], int)
        assert 0 < created["id"] < 2**63
        assert len(created["apiKey"]) >= 32

    def test_list_shows_metadata_only(self, admin: httpx.Client) -> None:
        """The list never carries a key value; optional fields are absent when unset."""
        created = admin.post(KEYS, json={"name": "bare"}).json()
        listed = admin.get(KEYS).json()
        assert listed == [
            {
                "id": created["id"],
                "name": "bare",
                "lastUpdateTimestamp": created["lastUpdateTimestamp"],
            }
        ]
        assert created["apiKey"] not in json.dumps(listed)

    def test_duplicate_names_are_allowed(self, admin: httpx.Client) -> None:
        """Two keys with one name are two distinct keys with distinct values."""
        first = admin.post(KEYS, json={"name": "same"}).json()
        second = admin.post(KEYS, json={"name": "same"}).json()
        assert first["id"] != second["id"]
        assert first["apiKey"] != second["apiKey"]
        assert [k["name"] for k in admin.get(KEYS).json()] == ["same", "same"]

    @pytest.mark.parametrize("offset", [timedelta(0), timedelta(days=-1)])
    def test_expiration_not_in_future_is_400(
        self, admin: httpx.Client, stackstate_clock: MutableClock, offset: timedelta
    ) -> None:
        """An expiration at or before now answers IngestionApiKeyInvalidExpiryError."""
        expiry = to_epoch_ms(stackstate_clock.now + offset)
        response = admin.post(KEYS, json={"name": "k", "expiration": expiry})
        assert response.status_code == 400
        assert response.json()["_type"] == "IngestionApiKeyInvalidExpiryError"
        assert response.json()["message"]
        assert admin.get(KEYS).json() == []

    @pytest.mark.parametrize(
        "content",
        [
            b"{not json",
            b"",
            b"[]",
            b'{"description": "no name"}',
            b'{"name": 5}',
            b'{"name": "k", "expiration": "soon"}',
            b'{"name": "k", "expiration": 1.5}',
        ],
        ids=[
            "not-json",
            "empty",
            "array",
            "no-name",
            "name-not-string",
            "expiry-string",
            "expiry-float",
        ],
    )
    def test_malformed_body_is_400_text(self, admin: httpx.Client, content: bytes) -> None:
        """A body that is not a valid request is rejected with Akka-HTTP's plain text."""
        response = admin.post(KEYS, content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.text.startswith("The request content was malformed")
        assert admin.get(KEYS).json() == []

    def test_delete_then_gone(self, admin: httpx.Client) -> None:
        """Delete answers 204 and the key disappears from the list."""
        created = admin.post(KEYS, json={"name": "k"}).json()
        response = admin.delete(f"{KEYS}/{created['id']}")
        assert response.status_code == 204
        assert response.content == b""
        assert admin.get(KEYS).json() == []

    def test_delete_unknown_is_404(self, admin: httpx.Client) -> None:
        """Deleting an id that does not exist answers 404 IngestionApiKeyNotFoundError."""
        response = admin.delete(f"{KEYS}/250558013078953")
        assert response.status_code == 404
        assert response.json()["_type"] == "IngestionApiKeyNotFoundError"

    def test_authorize_accepts_a_live_key(self, admin: httpx.Client) -> None:
        """Authorize answers 204 for an existing unexpired key and 403 for any other value."""
        value = admin.post(KEYS, json={"name": "k"}).json()["apiKey"]
        assert admin.post(AUTHORIZE, json={"apiKey": value}).status_code == 204
        refused = admin.post(AUTHORIZE, json={"apiKey": value + "x"})
        assert refused.status_code == 403
        assert refused.content == b""

    def test_authorize_refuses_an_expired_key(
        self, admin: httpx.Client, stackstate_clock: MutableClock
    ) -> None:
        """Once the clock passes the expiration, authorize answers 403."""
        expiry = in_days(stackstate_clock, 2)
        value = admin.post(KEYS, json={"name": "k", "expiration": expiry}).json()["apiKey"]
        stackstate_clock.advance(timedelta(days=2, milliseconds=-1))
        assert admin.post(AUTHORIZE, json={"apiKey": value}).status_code == 204
        stackstate_clock.advance(timedelta(milliseconds=1))
        assert admin.post(AUTHORIZE, json={"apiKey": value}).status_code == 403

    def test_authorize_refuses_a_deleted_key(self, admin: httpx.Client) -> None:
        """A deleted key is no longer authorized."""
        created = admin.post(KEYS, json={"name": "k"}).json()
        admin.delete(f"{KEYS}/{created['id']}")
        assert admin.post(AUTHORIZE, json={"apiKey": created["apiKey"]}).status_code == 403

    def test_receiver_key_only_with_flag(
        self, make_stackstate: Callable[..., StackStateEmulator]
    ) -> None:
        """The receiver API key is accepted only when withReceiverKey=true."""
        emulator = make_stackstate(receiver_api_key="receiver-key-value")
        headers = {"X-API-Token": "sandbox-api-token"}
        body = {"apiKey": "receiver-key-value"}
        with httpx.Client(base_url=emulator.url, headers=headers, timeout=TIMEOUT) as client:
            assert client.post(AUTHORIZE, json=body).status_code == 403
            flagged = client.post(AUTHORIZE, json=body, params={"withReceiverKey": "true"})
            unflagged = client.post(AUTHORIZE, json=body, params={"withReceiverKey": "false"})
            malformed = client.post(AUTHORIZE, json=body, params={"withReceiverKey": "maybe"})
        assert flagged.status_code == 204
        assert unflagged.status_code == 403
        assert malformed.status_code == 400

    def test_authorize_without_api_key_is_400(self, admin: httpx.Client) -> None:
        """An authorize body without apiKey is malformed."""
        assert admin.post(AUTHORIZE, json={}).status_code == 400


class TestServiceTokens:
    """List, create and delete service tokens."""

    def test_create_answers_name_token_expiration_without_id(
        self, admin: httpx.Client, stackstate_clock: MutableClock
    ) -> None:
        """The create response has exactly name, token and expiration."""
        expiry = in_days(stackstate_clock, 90)
        created = create_token(admin, "agent", [INGEST_ROLE], expiry)
        assert set(created) == {"name", "token", "expiration"}
        assert created["name"] == "agent"
        assert created["expiration"] == expiry
        assert str(created["token"]).startswith("svctok-")

    def test_create_without_expiry_never_expires(self, admin: httpx.Client) -> None:
        """Without expiryDate the answer and the list carry no expiration."""
        created = create_token(admin, "forever", [INGEST_ROLE])
        assert "expiration" not in created
        assert "expiration" not in admin.get(TOKENS).json()[0]

    def test_list_shape(self, admin: httpx.Client, stackstate_clock: MutableClock) -> None:
        """The list shows id, name, expiration, roles, dedicatedSubject and timestamp, no value."""
        expiry = in_days(stackstate_clock, 1)
        response = admin.post(
            TOKENS,
            json={
                "name": "sub",
                "roles": [INGEST_ROLE, "other"],
                "expiryDate": expiry,
                "dedicatedSubject": "agent-subject",
            },
        )
        listed = admin.get(TOKENS).json()
        assert len(listed) == 1
        assert set(listed[0]) == {
            "id",
            "name",
            "expiration",
            "roles",
            "dedicatedSubject",
            "lastUpdateTimestamp",
        }
        assert listed[0]["roles"] == [INGEST_ROLE, "other"]
        assert listed[0]["dedicatedSubject"] == "agent-subject"
        assert listed[0]["expiration"] == expiry
        assert response.json()["token"] not in json.dumps(listed)

    def test_duplicate_names_are_allowed(self, admin: httpx.Client) -> None:
        """Two tokens may share a name."""
        create_token(admin, "dup", [INGEST_ROLE])
        create_token(admin, "dup", [INGEST_ROLE])
        assert len({t["id"] for t in admin.get(TOKENS).json()}) == 2

    def test_past_expiry_is_400(self, admin: httpx.Client, stackstate_clock: MutableClock) -> None:
        """An expiryDate not in the future answers ServiceTokenInvalidExpiryError."""
        response = admin.post(
            TOKENS,
            json={"name": "t", "roles": [INGEST_ROLE], "expiryDate": in_days(stackstate_clock, -1)},
        )
        assert response.status_code == 400
        assert response.json()["_type"] == "ServiceTokenInvalidExpiryError"
        assert admin.get(TOKENS).json() == []

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "t"},
            {"roles": []},
            {"name": "t", "roles": "admin"},
            {"name": "t", "roles": [1]},
        ],
        ids=["no-roles", "no-name", "roles-not-list", "role-not-string"],
    )
    def test_malformed_body_is_400(self, admin: httpx.Client, body: dict[str, object]) -> None:
        """A body missing name or roles, or with wrong types, is rejected as malformed."""
        response = admin.post(TOKENS, json=body)
        assert response.status_code == 400
        assert response.text.startswith("The request content was malformed")

    def test_delete_and_delete_unknown(self, admin: httpx.Client) -> None:
        """Delete answers 204; deleting the same id again answers 404 ServiceTokenNotFoundError."""
        create_token(admin, "t", [INGEST_ROLE])
        key_id = token_id(admin, "t")
        assert admin.delete(f"{TOKENS}/{key_id}").status_code == 204
        again = admin.delete(f"{TOKENS}/{key_id}")
        assert again.status_code == 404
        assert again.json()["_type"] == "ServiceTokenNotFoundError"
        assert admin.get(TOKENS).json() == []


class TestAuthorizationFor:
    """GET /user/authorization/for evaluates the caller's own credential."""

    def test_lacking_permission_is_403(
        self, admin: httpx.Client, http: Callable[..., httpx.Client]
    ) -> None:
        """A token with an unknown role is accepted but holds no permission."""
        token = str(create_token(admin, "nothing", ["no-such-role"])["token"])
        client = http(**{"X-API-Key": token})
        response = client.get(AUTH_FOR, params={"permission": "update-metrics"})
        assert response.status_code == 403
        assert client.get(INFO).status_code == 200

    def test_ingest_token_lacks_read_permissions(
        self, admin: httpx.Client, http: Callable[..., httpx.Client]
    ) -> None:
        """An ingestion role grants update-metrics only."""
        token = str(create_token(admin, "ingest", [INGEST_ROLE])["token"])
        client = http(**{"X-API-Key": token})
        params = {"permission": "read-metrics", "resourceName": "system"}
        assert client.get(AUTH_FOR, params=params).status_code == 403

    def test_unknown_permission_is_400(self, admin: httpx.Client) -> None:
        """A permission StackState does not know answers 400 without a body."""
        response = admin.get(AUTH_FOR, params={"permission": "fly"})
        assert response.status_code == 400
        assert response.content == b""

    def test_missing_permission_is_400(self, admin: httpx.Client) -> None:
        """Without the permission parameter the request is rejected."""
        response = admin.get(AUTH_FOR)
        assert response.status_code == 400
        assert "permission" in response.text


class TestServerInfo:
    """GET /server/info."""

    def test_shape(self, admin: httpx.Client) -> None:
        """It reports the version and the deployment mode."""
        info = admin.get(INFO).json()
        assert info["deploymentMode"] == "SelfHosted"
        assert set(info["version"]) == {"major", "minor", "patch", "diff", "commit", "isDev"}

    def test_saas_mode(self, make_stackstate: Callable[..., StackStateEmulator]) -> None:
        """The deployment mode is configurable."""
        emulator = make_stackstate(deployment_mode="Saas")
        headers = {"X-API-Token": "sandbox-api-token"}
        response = httpx.get(f"{emulator.url}{INFO}", headers=headers, timeout=TIMEOUT)
        assert response.json()["deploymentMode"] == "Saas"


class TestFaults:
    """Injected failures, latency and lost answers."""

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_fail_next_answers_generic_errors(
        self, admin: httpx.Client, stackstate: StackStateEmulator, status: int
    ) -> None:
        """An injected 5xx answers GenericErrorsResponse once, then the API works again."""
        stackstate.fail_next("GET", r"/api/security/tokens", status)
        failed = admin.get(TOKENS)
        assert failed.status_code == status
        body = failed.json()
        assert body["_type"] == "ErrorsResponse"
        assert body["errors"][0]["_type"] == "InternalError"
        assert body["trackingKey"]
        assert isinstance(body["serverTimestamp"], int)
        assert admin.get(TOKENS).status_code == 200

    def test_failed_create_creates_nothing(
        self, admin: httpx.Client, stackstate: StackStateEmulator
    ) -> None:
        """An injected failure answers before the operation runs."""
        stackstate.fail_next("POST", r"/api/security/ingestion/api_keys", 500)
        assert admin.post(KEYS, json={"name": "k"}).status_code == 500
        assert admin.get(KEYS).json() == []

    def test_latency_still_answers(
        self, admin: httpx.Client, stackstate: StackStateEmulator
    ) -> None:
        """A delayed request is still answered normally."""
        stackstate.add_latency("GET", r"/api/server/info", 0.05, count=1)
        assert admin.get(INFO).status_code == 200

    def test_dropped_create_still_creates(
        self, admin: httpx.Client, stackstate: StackStateEmulator
    ) -> None:
        """A create whose answer is lost leaves the token created and findable by name."""
        stackstate.drop_after_processing("POST", r"/api/security/tokens")
        with pytest.raises(httpx.TransportError):
            admin.post(TOKENS, json={"name": "lost-answer", "roles": [INGEST_ROLE]})
        assert [t["name"] for t in admin.get(TOKENS).json()] == ["lost-answer"]
        assert stackstate.log[0].status is None


class TestRequestLog:
    """What the emulator records."""

    def test_log_records_method_path_status_query(
        self, admin: httpx.Client, stackstate: StackStateEmulator
    ) -> None:
        """Each request is logged with its method, path, status, query and bodies."""
        admin.post(TOKENS, json={"name": "t", "roles": [INGEST_ROLE]})
        admin.get(AUTH_FOR, params={"permission": "update-metrics"})
        log = stackstate.log
        assert [(e.method, e.path, e.status) for e in log] == [
            ("POST", TOKENS, 200),
            ("GET", AUTH_FOR, 204),
        ]
        assert log[1].query == "permission=update-metrics"
        assert json.loads(log[0].body) == {"name": "t", "roles": [INGEST_ROLE]}
        assert [e.method for e in stackstate.mutating_requests()] == ["POST"]

    def test_values_appear_only_in_create_answers(
        self, admin: httpx.Client, stackstate: StackStateEmulator
    ) -> None:
        """List answers in the log never hold a value; only the create answer does."""
        admin.post(KEYS, json={"name": "k"})
        admin.get(KEYS)
        (value,) = stackstate.issued_values()
        holders = [e.method for e in stackstate.log if value.encode() in e.response_body]
        assert holders == ["POST"]


class TestInProcessHelpers:
    """seed_key, keys, value_of, issued_values, expire_key and delete."""

    def test_seeded_token_authenticates(
        self,
        stackstate: StackStateEmulator,
        http: Callable[..., httpx.Client],
        stackstate_clock: MutableClock,
    ) -> None:
        """A seeded service token is listed and authenticates with its roles."""
        expiry = stackstate_clock.now + timedelta(days=3)
        key_id, value = stackstate.seed_key(
            "service-token", "seeded", expiration=expiry, roles=[INGEST_ROLE]
        )
        assert stackstate.value_of("service-token", key_id) == value
        (listed,) = stackstate.keys("service-token")
        assert listed["id"] == key_id
        assert listed["expiration"] == to_epoch_ms(expiry)
        client = http(**{"X-API-Key": value})
        assert client.get(AUTH_FOR, params={"permission": "update-metrics"}).status_code == 204

    def test_keys_matches_the_list_endpoint(
        self, stackstate: StackStateEmulator, admin: httpx.Client
    ) -> None:
        """keys() returns exactly what the list endpoint answers."""
        stackstate.seed_key("ingestion-api-key", "a", expiration=None, description="managed")
        admin.post(KEYS, json={"name": "b"})
        assert stackstate.keys("ingestion-api-key") == admin.get(KEYS).json()
        assert stackstate.keys("service-token") == admin.get(TOKENS).json() == []

    def test_seeded_past_expiry_is_expired(
        self, stackstate: StackStateEmulator, admin: httpx.Client, stackstate_clock: MutableClock
    ) -> None:
        """seed_key accepts a past expiration, and such a key is not authorized."""
        _, value = stackstate.seed_key(
            "ingestion-api-key", "old", expiration=stackstate_clock.now - timedelta(days=1)
        )
        assert admin.post(AUTHORIZE, json={"apiKey": value}).status_code == 403

    def test_expire_key(
        self, stackstate: StackStateEmulator, http: Callable[..., httpx.Client]
    ) -> None:
        """expire_key makes a live token stop authenticating at once."""
        key_id, value = stackstate.seed_key(
            "service-token", "t", expiration=None, roles=[INGEST_ROLE]
        )
        stackstate.expire_key("service-token", key_id)
        client = http(**{"X-API-Key": value})
        assert client.get(AUTH_FOR, params={"permission": "update-metrics"}).status_code == 401

    def test_delete_and_issued_values(
        self, stackstate: StackStateEmulator, admin: httpx.Client
    ) -> None:
        """delete removes a key; issued_values remembers every value ever given out."""
        key_id, seeded = stackstate.seed_key("ingestion-api-key", "a", expiration=None)
        created = admin.post(KEYS, json={"name": "b"}).json()["apiKey"]
        stackstate.delete("ingestion-api-key", key_id)
        with pytest.raises(KeyError):
            stackstate.value_of("ingestion-api-key", key_id)
        with pytest.raises(KeyError):
            stackstate.delete("ingestion-api-key", key_id)
        assert stackstate.issued_values() == [seeded, created]

    def test_ingestion_keys_have_no_roles(self, stackstate: StackStateEmulator) -> None:
        """Seeding an ingestion key with roles is a test bug and raises."""
        with pytest.raises(ValueError, match="roles"):
            stackstate.seed_key("ingestion-api-key", "a", expiration=None, roles=["x"])

    def test_concurrent_creates_get_distinct_ids(
        self, stackstate: StackStateEmulator, admin: httpx.Client
    ) -> None:
        """Parallel creates over HTTP each get their own id and value."""
        results: list[int] = []

        def create() -> None:
            with httpx.Client(
                base_url=stackstate.url,
                headers={"X-API-Token": "sandbox-api-token"},
                timeout=TIMEOUT,
            ) as client:
                results.append(client.post(KEYS, json={"name": "p"}).status_code)

        threads = [threading.Thread(target=create) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert results == [200] * 8
        listed = admin.get(KEYS).json()
        assert len({k["id"] for k in listed}) == 8
        assert len(set(stackstate.issued_values())) == 8


class TestDefaults:
    """Construction without the fixtures."""

    def test_default_clock_is_real_time(self) -> None:
        """Without a clock the emulator judges expiry by the real UTC time."""
        emulator = StackStateEmulator()
        with emulator:
            now = datetime.now(UTC)
            headers = {"X-API-Token": "sandbox-api-token"}
            with httpx.Client(base_url=emulator.url, headers=headers, timeout=TIMEOUT) as client:
                future = to_epoch_ms(now + timedelta(hours=1))
                past = to_epoch_ms(now - timedelta(hours=1))
                assert (
                    client.post(KEYS, json={"name": "f", "expiration": future}).status_code == 200
                )
                assert client.post(KEYS, json={"name": "p", "expiration": past}).status_code == 400
        assert contract_problems(emulator) == []
