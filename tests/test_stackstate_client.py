"""The StackState client against the StackState emulator, over real HTTP on 127.0.0.1.

Every test that uses the ``stackstate`` fixture is also a contract test: at teardown the plugin
validates every request the client sent and every answer the emulator gave against the OpenAPI
excerpt.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr

from rotator.clients.stackstate import (
    KEY_KINDS,
    ApiKey,
    KeyKind,
    ServerInfo,
    StackStateClient,
    from_epoch_ms,
    parse_retry_after,
    to_epoch_ms,
)
from rotator.errors import (
    AmbiguousCreateError,
    ConfigError,
    RotatorError,
    StackStateBadRequest,
    StackStateForbidden,
    StackStateInvalidExpiry,
    StackStateNotFound,
    StackStateProtocolError,
    StackStateServerError,
    StackStateTimeout,
    StackStateUnauthorized,
    StackStateUnreachable,
)
from rotator.secrets import Secret
from rotator.wiring import build_stackstate_client
from rotator_sandbox.kubernetes_config import generate_tls
from rotator_sandbox.stackstate import StackStateEmulator
from tests.plugins.stackstate import MutableClock

INGEST_ROLE = "stackstate-ingest-telemetry"
TOKENS = r"/api/security/tokens"
INGESTION_KEYS = r"/api/security/ingestion/api_keys"
COLLECTION = {"service-token": TOKENS, "ingestion-api-key": INGESTION_KEYS}


def make_client(
    emulator: StackStateEmulator,
    *,
    service_token: Secret | None = None,
    api_token: Secret | None = None,
    service_bearer_file: Path | None = None,
    base_url: str | None = None,
    api_path: str = "/api",
    ca_file: Path | None = None,
    timeout: float = 5.0,
    max_attempts: int = 4,
    retry_deadline: float = 60.0,
    retry_after_max: float = 30.0,
) -> StackStateClient:
    """A client of ``emulator`` with near-zero backoff (tests must not sleep)."""
    if service_token is None and api_token is None and service_bearer_file is None:
        service_token = Secret(emulator.service_token)
    return StackStateClient(
        base_url=base_url or emulator.url,
        api_path=api_path,
        service_token=service_token,
        api_token=api_token,
        service_bearer_file=service_bearer_file,
        ca_file=ca_file,
        timeout=timeout,
        max_attempts=max_attempts,
        backoff_base=0.001,
        backoff_max=0.005,
        retry_deadline=retry_deadline,
        retry_after_max=retry_after_max,
    )


@pytest.fixture
def client(stackstate: StackStateEmulator) -> Iterator[StackStateClient]:
    """A client of the ``stackstate`` emulator, authenticated as administrator."""
    with make_client(stackstate) as c:
        yield c


def create(
    client: StackStateClient, kind: KeyKind, name: str, expiration: datetime | None = None
) -> Secret:
    """Create a key of either kind with sensible defaults; returns its value."""
    roles = [INGEST_ROLE] if kind == "service-token" else None
    return client.create_key(kind, name, expiration=expiration, roles=roles).value


def requests_to(emulator: StackStateEmulator, method: str, path: str) -> int:
    """How many requests ``emulator`` logged for ``method`` and exactly ``path``."""
    return sum(1 for r in emulator.log if r.method == method and r.path == path)


def names(emulator: StackStateEmulator, kind: KeyKind) -> list[str]:
    """The names of every key ``emulator`` holds of ``kind``."""
    return sorted(k["name"] for k in emulator.keys(kind))


class TestListKeys:
    """list_keys and find_by_name."""

    def test_lists_service_tokens_with_roles_and_aware_timestamps(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A listed service token carries its id, name, roles and UTC expiry as the API has them."""
        expiry = datetime(2031, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
        key_id, _ = stackstate.seed_key(
            "service-token", "agent-1", expiration=expiry, roles=[INGEST_ROLE]
        )
        [key] = client.list_keys("service-token")
        assert key.id == key_id
        assert key.name == "agent-1"
        assert key.roles == (INGEST_ROLE,)
        assert key.expiration == from_epoch_ms(stackstate.keys("service-token")[0]["expiration"])
        assert key.expiration is not None
        assert key.expiration.tzinfo is UTC
        assert key.last_updated is not None

    def test_lists_ingestion_keys_without_roles(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A listed ingestion key has no roles and keeps its description; no expiry means None."""
        stackstate.seed_key("ingestion-api-key", "otel-1", expiration=None, description="managed")
        [key] = client.list_keys("ingestion-api-key")
        assert key == ApiKey(
            kind="ingestion-api-key",
            id=key.id,
            name="otel-1",
            description="managed",
            expiration=None,
            roles=None,
            last_updated=key.last_updated,
        )

    @pytest.mark.parametrize("kind", KEY_KINDS)
    def test_find_by_name_returns_only_exact_matches(
        self, stackstate: StackStateEmulator, client: StackStateClient, kind: KeyKind
    ) -> None:
        """find_by_name matches the whole name, so a prefix or a longer name does not count."""
        roles = [INGEST_ROLE] if kind == "service-token" else []
        for name in ("agent", "agent-2", "agent", "xagent"):
            stackstate.seed_key(kind, name, expiration=None, roles=roles)
        assert [k.name for k in client.find_by_name(kind, "agent")] == ["agent", "agent"]
        assert client.find_by_name(kind, "nothing") == []

    def test_rejects_an_unknown_kind(self, client: StackStateClient) -> None:
        """An unknown kind is a programming error raised before any request."""
        with pytest.raises(ValueError, match="unknown key kind"):
            client.list_keys("api-key")  # type: ignore[arg-type]

    @pytest.mark.stackstate_off_contract("the injected answer breaks the contract on purpose")
    def test_an_answer_that_is_not_a_list_is_a_protocol_error(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A 200 whose body is not the documented array raises StackStateProtocolError."""
        stackstate.fail_next("GET", TOKENS, 200, body={"keys": []})
        with pytest.raises(StackStateProtocolError, match="list service-token keys: unexpected"):
            client.list_keys("service-token")

    @pytest.mark.stackstate_off_contract("the injected answer breaks the contract on purpose")
    def test_an_item_without_id_is_a_protocol_error(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A listed key without an id cannot be managed, so the listing is refused."""
        stackstate.fail_next("GET", TOKENS, 200, body=[{"name": "x", "roles": []}])
        with pytest.raises(StackStateProtocolError, match="item 0: field 'id'"):
            client.list_keys("service-token")


class TestCreateKey:
    """create_key when nothing goes wrong."""

    def test_service_token_id_is_found_by_listing_its_name(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """The create answer has no id, so the client finds it by the unique name."""
        expiry = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        created = client.create_key(
            "service-token", "agent-20300101T000000Z", expiration=expiry, roles=[INGEST_ROLE]
        )
        [stored] = stackstate.keys("service-token")
        assert created.key.id == stored["id"]
        assert created.key.expiration == expiry
        assert created.key.roles == (INGEST_ROLE,)
        assert created.value.reveal() == stackstate.value_of("service-token", stored["id"])
        sent = json.loads(next(r for r in stackstate.log if r.method == "POST").body)
        assert sent["expiryDate"] == to_epoch_ms(expiry)

    def test_ingestion_key_keeps_description_and_expiration(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """An ingestion key is created with its description and its expiry sent as expiration."""
        expiry = datetime(2030, 6, 1, tzinfo=UTC)
        created = client.create_key(
            "ingestion-api-key", "otel-1", expiration=expiry, description="managed by rotator"
        )
        assert created.key.description == "managed by rotator"
        assert created.key.expiration == expiry
        assert created.value.reveal() == stackstate.value_of("ingestion-api-key", created.key.id)

    def test_dedicated_subject_is_sent_for_service_tokens(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """dedicated_subject reaches the API as dedicatedSubject."""
        client.create_key(
            "service-token", "agent-1", expiration=None, roles=[INGEST_ROLE], dedicated_subject="s"
        )
        assert stackstate.keys("service-token")[0]["dedicatedSubject"] == "s"

    @pytest.mark.parametrize(
        ("kind", "kwargs", "message"),
        [
            ("service-token", {"roles": None}, "roles"),
            ("service-token", {"roles": []}, "roles"),
            ("service-token", {"roles": ["r"], "description": "d"}, "no description"),
            ("ingestion-api-key", {"roles": ["r"]}, "service tokens only"),
            ("ingestion-api-key", {"dedicated_subject": "s"}, "service tokens only"),
        ],
    )
    def test_refuses_fields_the_kind_does_not_have(
        self,
        stackstate: StackStateEmulator,
        client: StackStateClient,
        kind: KeyKind,
        kwargs: dict[str, object],
        message: str,
    ) -> None:
        """Arguments that one kind's create request cannot carry fail before any request."""
        with pytest.raises(ValueError, match=message):
            client.create_key(kind, "k", expiration=None, **kwargs)  # type: ignore[arg-type]
        assert stackstate.log == []

    def test_refuses_a_naive_expiration(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A naive datetime is ambiguous, so it is refused rather than guessed as UTC."""
        with pytest.raises(ValueError, match="timezone-aware"):
            client.create_key("ingestion-api-key", "k", expiration=datetime(2030, 1, 1))
        assert stackstate.log == []

    @pytest.mark.parametrize("kind", KEY_KINDS)
    def test_past_expiry_raises_invalid_expiry(
        self,
        stackstate: StackStateEmulator,
        stackstate_clock: MutableClock,
        client: StackStateClient,
        kind: KeyKind,
    ) -> None:
        """StackState's *InvalidExpiryError becomes StackStateInvalidExpiry and is not retried."""
        with pytest.raises(StackStateInvalidExpiry, match=r"expiry was refused \(400"):
            create(client, kind, "k", expiration=datetime(2000, 1, 1, tzinfo=UTC))
        assert requests_to(stackstate, "POST", COLLECTION[kind]) == 1
        assert stackstate.keys(kind) == []

    def test_duplicate_service_token_names_delete_nothing(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """When the name is not unique after a create, nobody knows which key is ours, and a
        target may hold the other: none is deleted, the create is ambiguous (retry)."""
        other, _ = stackstate.seed_key(
            "service-token", "agent-1", expiration=None, roles=[INGEST_ROLE]
        )
        with pytest.raises(AmbiguousCreateError, match="2 keys named agent-1") as caught:
            create(client, "service-token", "agent-1")
        assert caught.value.retryable
        assert "none was deleted" in str(caught.value)
        assert names(stackstate, "service-token") == ["agent-1", "agent-1"]
        assert other in [k["id"] for k in stackstate.keys("service-token")]
        assert [r for r in stackstate.log if r.method == "DELETE"] == []

    def test_service_token_whose_id_cannot_be_listed_is_ambiguous(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A token created but missing from the listing has no known id: AmbiguousCreateError."""
        stackstate.fail_next("GET", TOKENS, 200, body=[])
        with pytest.raises(AmbiguousCreateError, match="no key named agent-1 is listed"):
            create(client, "service-token", "agent-1")
        assert requests_to(stackstate, "POST", TOKENS) == 1

    def test_service_token_id_lookup_failure_is_ambiguous(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A token created while listing fails is left for the sweep, never created again."""
        stackstate.fail_next("GET", TOKENS, 503, count=None)
        with pytest.raises(AmbiguousCreateError, match="listing to find its id failed"):
            create(client, "service-token", "agent-1")
        assert requests_to(stackstate, "POST", TOKENS) == 1
        assert names(stackstate, "service-token") == ["agent-1"]

    def test_another_ingestion_key_with_the_same_name_is_left_alone(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """The create answers its id; another key under the name may be held by a target, so
        it is left for the sweep (which checks the targets) instead of deleted here."""
        stray_id, _ = stackstate.seed_key("ingestion-api-key", "otel-1", expiration=None)
        created = client.create_key("ingestion-api-key", "otel-1", expiration=None)
        assert created.key.id != stray_id
        assert sorted(k["id"] for k in stackstate.keys("ingestion-api-key")) == sorted(
            [created.key.id, stray_id]
        )
        assert [r for r in stackstate.log if r.method == "DELETE"] == []


class TestDeleteKey:
    """delete_key."""

    @pytest.mark.parametrize("kind", KEY_KINDS)
    def test_deletes_a_key(
        self, stackstate: StackStateEmulator, client: StackStateClient, kind: KeyKind
    ) -> None:
        """A deleted key is gone from the server."""
        key_id, _ = stackstate.seed_key(kind, "k", expiration=None)
        client.delete_key(kind, key_id)
        assert stackstate.keys(kind) == []

    @pytest.mark.parametrize("kind", KEY_KINDS)
    def test_missing_key_raises_not_found(self, client: StackStateClient, kind: KeyKind) -> None:
        """Deleting an id that does not exist raises StackStateNotFound naming the operation."""
        with pytest.raises(StackStateNotFound, match=rf"delete {kind} key 123: not found \(404\)"):
            client.delete_key(kind, 123)

    def test_missing_ok_accepts_a_missing_key(self, client: StackStateClient) -> None:
        """With missing_ok a key that is already gone counts as deleted."""
        client.delete_key("service-token", 123, missing_ok=True)

    def test_404_after_a_lost_answer_counts_as_deleted(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A retry answered 404 after the first attempt's answer was lost means it was deleted."""
        key_id, _ = stackstate.seed_key("service-token", "k", expiration=None)
        stackstate.drop_after_processing("DELETE", rf"{TOKENS}/{key_id}")
        client.delete_key("service-token", key_id)
        assert [r.status for r in stackstate.log] == [None, 404]


class TestVerify:
    """verify for both kinds."""

    def test_new_service_token_with_ingest_role_is_accepted(self, client: StackStateClient) -> None:
        """A fresh token holding update-metrics is accepted (sent alone, without admin headers)."""
        value = create(client, "service-token", "agent-1")
        assert client.verify("service-token", value).accepted
        assert client.verify("service-token", value).reason == "accepted"

    def test_service_token_without_ingest_permission_is_not_accepted(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A valid token whose roles lack update-metrics is reported as lacking the permission."""
        _, value = stackstate.seed_key(
            "service-token", "viewer", expiration=None, roles=["some-viewer-role"]
        )
        result = client.verify("service-token", Secret(value))
        assert not result.accepted
        assert result.reason == "lacks permission update-metrics (403)"

    def test_expired_service_token_is_not_accepted(
        self, stackstate_clock: MutableClock, client: StackStateClient
    ) -> None:
        """A token past its expiry (by the emulator's clock) is not accepted (401)."""
        clock = stackstate_clock
        value = create(client, "service-token", "agent-1", clock.now + timedelta(hours=1))
        assert client.verify("service-token", value).accepted
        clock.advance(timedelta(hours=2))
        assert client.verify("service-token", value).reason == "not accepted (401)"

    def test_deleted_service_token_is_not_accepted(self, client: StackStateClient) -> None:
        """A token deleted through the API no longer authenticates."""
        value = create(client, "service-token", "agent-1")
        [key] = client.find_by_name("service-token", "agent-1")
        client.delete_key("service-token", key.id)
        assert not client.verify("service-token", value).accepted

    def test_unknown_and_malformed_values_are_not_accepted(self, client: StackStateClient) -> None:
        """Unknown, empty and header-breaking values are rejected; the last two without a call."""
        assert client.verify("service-token", Secret("svctok-unknown")).reason == (
            "not accepted (401)"
        )
        assert not client.verify("service-token", Secret("")).accepted
        assert not client.verify("service-token", Secret("two words")).accepted

    def test_ingestion_key_is_accepted_until_it_expires(
        self, stackstate_clock: MutableClock, client: StackStateClient
    ) -> None:
        """An ingestion key is accepted (204) and, once expired, not accepted (403)."""
        clock = stackstate_clock
        value = create(client, "ingestion-api-key", "otel-1", clock.now + timedelta(days=1))
        assert client.verify("ingestion-api-key", value).accepted
        clock.advance(timedelta(days=2))
        result = client.verify("ingestion-api-key", value)
        assert (result.accepted, result.reason) == (False, "not accepted (403)")

    def test_receiver_key_is_accepted_only_when_asked(
        self, make_stackstate: Callable[..., StackStateEmulator]
    ) -> None:
        """The receiver API key passes only with with_receiver_key, sent as withReceiverKey=true."""
        emulator = make_stackstate(receiver_api_key="receiver-key-value")
        with make_client(emulator) as client:
            receiver = Secret("receiver-key-value")
            assert not client.verify("ingestion-api-key", receiver).accepted
            assert client.verify("ingestion-api-key", receiver, with_receiver_key=True).accepted
        assert emulator.log[-1].query == "withReceiverKey=true"

    def test_verify_of_an_ingestion_key_with_bad_admin_credential_raises(
        self, stackstate: StackStateEmulator
    ) -> None:
        """authorize needs the admin credential: a rejected one raises instead of 'not accepted'."""
        with (
            make_client(stackstate, service_token=Secret("wrong-admin-token")) as client,
            pytest.raises(StackStateUnauthorized),
        ):
            client.verify("ingestion-api-key", Secret("whatever-value"))

    def test_verify_is_retried_on_server_errors(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """verify is read-only, so a 503 is retried like a GET."""
        value = create(client, "ingestion-api-key", "otel-1")
        stackstate.fail_next("POST", r"/api/security/ingestion/authorize", 503)
        assert client.verify("ingestion-api-key", value).accepted
        assert requests_to(stackstate, "POST", "/api/security/ingestion/authorize") == 2


class TestServerInfo:
    """server_info."""

    def test_reports_version_and_deployment_mode(self, client: StackStateClient) -> None:
        """The server version is major.minor.patch with the deployment mode and platform version."""
        assert client.server_info() == ServerInfo("6.0.0", "SelfHosted", "2.3.0")


class TestErrorMapping:
    """Each failure StackState can produce maps to one class of rotator.errors."""

    def test_401_maps_to_unauthorized(self, stackstate: StackStateEmulator) -> None:
        """A credential StackState does not accept raises StackStateUnauthorized (status 401)."""
        with (
            make_client(stackstate, api_token=Secret("not-the-token")) as client,
            pytest.raises(StackStateUnauthorized) as caught,
        ):
            client.list_keys("service-token")
        assert caught.value.status == 401
        assert str(caught.value).startswith("list service-token keys: unauthorized (401)")
        assert requests_to(stackstate, "GET", TOKENS) == 1

    def test_403_maps_to_forbidden(self, stackstate: StackStateEmulator) -> None:
        """A credential without manage permission raises StackStateForbidden, not retried."""
        _, ingest_only = stackstate.seed_key(
            "service-token", "ingest", expiration=None, roles=[INGEST_ROLE]
        )
        with (
            make_client(stackstate, service_token=Secret(ingest_only)) as client,
            pytest.raises(StackStateForbidden, match=r"forbidden \(403\)"),
        ):
            client.list_keys("service-token")
        assert requests_to(stackstate, "GET", TOKENS) == 1

    @pytest.mark.stackstate_off_contract("an undocumented 404 on a list is injected on purpose")
    def test_404_maps_to_not_found(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A 404 (wrong api_path, missing key) raises StackStateNotFound."""
        stackstate.fail_next("GET", INGESTION_KEYS, 404)
        with pytest.raises(StackStateNotFound, match="list ingestion-api-key keys: not found"):
            client.list_keys("ingestion-api-key")

    def test_400_maps_to_bad_request_and_is_not_retried(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A plain 400 raises StackStateBadRequest and the create is not attempted again."""
        stackstate.fail_next("POST", TOKENS, 400)
        with pytest.raises(StackStateBadRequest, match=r"bad request \(400\)"):
            create(client, "service-token", "agent-1")
        assert requests_to(stackstate, "POST", TOKENS) == 1
        assert requests_to(stackstate, "GET", TOKENS) == 0

    @pytest.mark.parametrize("status", [500, 503])
    def test_5xx_maps_to_server_error_with_tracking_key(
        self, stackstate: StackStateEmulator, client: StackStateClient, status: int
    ) -> None:
        """A persistent 5xx raises StackStateServerError carrying StackState's tracking key."""
        stackstate.fail_next("GET", TOKENS, status, count=None)
        with pytest.raises(StackStateServerError) as caught:
            client.list_keys("service-token")
        tracking_key = json.loads(stackstate.log[-1].response_body)["trackingKey"]
        assert caught.value.tracking_key == tracking_key
        assert caught.value.status == status
        assert str(caught.value) == (
            f"list service-token keys: server error {status} (tracking key {tracking_key})"
        )
        assert caught.value.retryable

    def test_connection_refused_maps_to_unreachable(self, stackstate: StackStateEmulator) -> None:
        """Nothing listening on the port raises StackStateUnreachable, after bounded retries."""
        with socket.socket() as reserved:  # bound but not listening: connections are refused
            reserved.bind(("127.0.0.1", 0))
            port = reserved.getsockname()[1]
            with (
                make_client(stackstate, base_url=f"http://127.0.0.1:{port}") as client,
                pytest.raises(StackStateUnreachable, match="cannot connect to"),
            ):
                client.server_info()

    def test_slow_answer_maps_to_timeout(self, stackstate: StackStateEmulator) -> None:
        """An answer slower than the client timeout raises StackStateTimeout."""
        stackstate.add_latency("GET", r"/api/server/info", 1.0, count=1)
        with (
            make_client(stackstate, timeout=0.1, max_attempts=1) as client,
            pytest.raises(StackStateTimeout, match="server info: no answer from"),
        ):
            client.server_info()


class TestRetries:
    """Idempotent calls are retried on transient failures, within bounds."""

    def test_list_succeeds_after_two_server_errors(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """Two 503s then a 200: the list succeeds on the third attempt."""
        stackstate.seed_key("ingestion-api-key", "k", expiration=None)
        stackstate.fail_next("GET", INGESTION_KEYS, 503, count=2)
        assert [k.name for k in client.list_keys("ingestion-api-key")] == ["k"]
        assert [r.status for r in stackstate.log] == [503, 503, 200]

    def test_retries_stop_after_max_attempts(self, stackstate: StackStateEmulator) -> None:
        """A call that keeps failing is attempted max_attempts times, then raises."""
        stackstate.fail_next("GET", TOKENS, 500, count=None)
        with (
            make_client(stackstate, max_attempts=3) as client,
            pytest.raises(StackStateServerError),
        ):
            client.list_keys("service-token")
        assert requests_to(stackstate, "GET", TOKENS) == 3

    def test_rate_limit_is_retried(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A 429 is temporary: the call is retried and succeeds."""
        stackstate.fail_next("GET", TOKENS, 429)
        assert client.list_keys("service-token") == []
        assert requests_to(stackstate, "GET", TOKENS) == 2

    def test_delete_is_retried_after_a_server_error(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A DELETE is idempotent, so a 500 is retried."""
        key_id, _ = stackstate.seed_key("ingestion-api-key", "k", expiration=None)
        stackstate.fail_next("DELETE", rf"{INGESTION_KEYS}/{key_id}", 500)
        client.delete_key("ingestion-api-key", key_id)
        assert stackstate.keys("ingestion-api-key") == []

    def test_timeouts_are_retried(self, stackstate: StackStateEmulator) -> None:
        """A read timeout on a GET is retried and the next, fast attempt succeeds."""
        stackstate.add_latency("GET", r"/api/server/info", 1.0, count=1)
        with make_client(stackstate, timeout=0.2) as client:
            assert client.server_info().version == "6.0.0"


class TestCreateNeverRetriedBlindly:
    """Invariant I6: a create whose outcome is unknown is settled by listing its unique name."""

    @pytest.mark.parametrize("kind", KEY_KINDS)
    def test_unprocessed_500_is_retried_once_and_creates_one_key(
        self, stackstate: StackStateEmulator, client: StackStateClient, kind: KeyKind
    ) -> None:
        """A 500 that created nothing: the listing finds no key, so the create runs again once."""
        stackstate.fail_next("POST", COLLECTION[kind], 500)
        create(client, kind, "k-1")
        assert names(stackstate, kind) == ["k-1"]
        posts = [r.status for r in stackstate.log if r.method == "POST"]
        assert posts == [500, 200]
        assert [(r.method, r.status) for r in stackstate.log][:2] == [("POST", 500), ("GET", 200)]

    @pytest.mark.parametrize("kind", KEY_KINDS)
    def test_lost_answer_deletes_the_created_key_and_raises(
        self, stackstate: StackStateEmulator, client: StackStateClient, kind: KeyKind
    ) -> None:
        """A create processed but whose answer was lost leaves no key behind and is not repeated."""
        stackstate.drop_after_processing("POST", COLLECTION[kind])
        with pytest.raises(StackStateUnreachable, match="value was lost") as caught:
            create(client, kind, "k-1")
        assert caught.value.retryable
        assert stackstate.keys(kind) == []
        assert requests_to(stackstate, "POST", COLLECTION[kind]) == 1
        assert len(stackstate.issued_values()) == 1

    @pytest.mark.parametrize("kind", KEY_KINDS)
    def test_lost_answer_with_a_shared_name_deletes_nothing(
        self, stackstate: StackStateEmulator, client: StackStateClient, kind: KeyKind
    ) -> None:
        """A lost answer, then two keys under the name: which one is ours is unknown, so none
        is deleted (a target may hold the other), the create is ambiguous and not repeated."""
        roles = [INGEST_ROLE] if kind == "service-token" else []
        stackstate.seed_key(kind, "k-1", expiration=None, roles=roles)
        stackstate.drop_after_processing("POST", COLLECTION[kind])
        with pytest.raises(AmbiguousCreateError, match="2 keys named k-1") as caught:
            create(client, kind, "k-1")
        assert caught.value.retryable
        assert names(stackstate, kind) == ["k-1", "k-1"]
        assert requests_to(stackstate, "POST", COLLECTION[kind]) == 1
        assert [r for r in stackstate.log if r.method == "DELETE"] == []

    def test_failed_listing_raises_ambiguous_create(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """When the create's outcome cannot be settled, AmbiguousCreateError; no second create."""
        stackstate.drop_after_processing("POST", TOKENS)
        stackstate.fail_next("GET", TOKENS, 503, count=None)
        with pytest.raises(AmbiguousCreateError, match="sweep") as caught:
            create(client, "service-token", "agent-1")
        assert caught.value.retryable
        assert requests_to(stackstate, "POST", TOKENS) == 1
        assert names(stackstate, "service-token") == ["agent-1"]  # left for the sweep

    def test_failed_clean_up_raises_ambiguous_create(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A lost key that cannot be deleted makes the create ambiguous (the sweep removes it)."""
        stackstate.drop_after_processing("POST", INGESTION_KEYS)
        stackstate.fail_next("DELETE", rf"{INGESTION_KEYS}/.*", 500, count=None)
        with pytest.raises(AmbiguousCreateError, match="could not be deleted"):
            create(client, "ingestion-api-key", "otel-1")
        assert requests_to(stackstate, "POST", INGESTION_KEYS) == 1

    def test_repeated_500s_give_up_without_creating(self, stackstate: StackStateEmulator) -> None:
        """A create failing unprocessed is tried max_attempts times, each followed by a list."""
        stackstate.fail_next("POST", TOKENS, 500, count=None)
        with (
            make_client(stackstate, max_attempts=2) as client,
            pytest.raises(StackStateServerError),
        ):
            create(client, "service-token", "agent-1")
        assert [r.method for r in stackstate.log] == ["POST", "GET", "POST", "GET"]
        assert stackstate.keys("service-token") == []


class TestUnreadableCreateAnswer:
    """Invariant I3: a create answered with a body nobody can read leaves no key behind."""

    @pytest.mark.stackstate_off_contract("the create answer is garbled on purpose")
    @pytest.mark.parametrize("kind", KEY_KINDS)
    def test_truncated_json_deletes_the_created_key(
        self, stackstate: StackStateEmulator, client: StackStateClient, kind: KeyKind
    ) -> None:
        """A 200 whose JSON is cut short: the key it created is listed by name and deleted."""
        stackstate.garble_next("POST", COLLECTION[kind])
        with pytest.raises(StackStateProtocolError, match="value was lost") as caught:
            create(client, kind, "k-1")
        assert "not JSON" in str(caught.value)
        assert stackstate.keys(kind) == []
        assert requests_to(stackstate, "POST", COLLECTION[kind]) == 1
        assert len(stackstate.issued_values()) == 1

    @pytest.mark.stackstate_off_contract("a proxy's HTML page answers the create")
    @pytest.mark.parametrize("kind", KEY_KINDS)
    def test_proxy_html_page_deletes_the_created_key(
        self, stackstate: StackStateEmulator, client: StackStateClient, kind: KeyKind
    ) -> None:
        """A proxy's HTML page with status 200 after the create went through: no key is left."""
        page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        stackstate.garble_next("POST", COLLECTION[kind], raw=page, content_type="text/html")
        with pytest.raises(StackStateProtocolError, match="deleted"):
            create(client, kind, "k-1")
        assert stackstate.keys(kind) == []
        methods = [r.method for r in stackstate.log]
        assert methods[:2] == ["POST", "GET"] and "DELETE" in methods

    @pytest.mark.stackstate_off_contract("the create answer lacks its value on purpose")
    def test_answer_without_the_value_deletes_the_key(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """Valid JSON without the token: its value is lost too, so the key is deleted."""
        stackstate.garble_next("POST", TOKENS, raw=b'{"name": "k-1"}')
        with pytest.raises(StackStateProtocolError, match="field 'token'"):
            create(client, "service-token", "k-1")
        assert stackstate.keys("service-token") == []

    @pytest.mark.stackstate_off_contract("an unprocessed 200 with an HTML body")
    @pytest.mark.parametrize("kind", KEY_KINDS)
    def test_unreadable_answer_that_created_nothing_is_tried_again(
        self, stackstate: StackStateEmulator, client: StackStateClient, kind: KeyKind
    ) -> None:
        """An unreadable 200 that created nothing: the listing finds no key, the create runs
        again with the same name and succeeds once."""
        stackstate.fail_next("POST", COLLECTION[kind], 200, body="<html>maintenance</html>")
        value = create(client, kind, "k-1")
        assert names(stackstate, kind) == ["k-1"]
        (key,) = stackstate.keys(kind)
        assert stackstate.value_of(kind, key["id"]) == value.reveal()
        assert [r.method for r in stackstate.log][:3] == ["POST", "GET", "POST"]

    @pytest.mark.stackstate_off_contract("the create answer is garbled on purpose")
    def test_unreadable_answer_and_failed_listing_is_ambiguous(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """When the listing fails too, AmbiguousCreateError (temporary); never a second create."""
        stackstate.garble_next("POST", TOKENS)
        stackstate.fail_next("GET", TOKENS, 503, count=None)
        with pytest.raises(AmbiguousCreateError, match="sweep"):
            create(client, "service-token", "agent-1")
        assert requests_to(stackstate, "POST", TOKENS) == 1


class TestRetryAfter:
    """A 429 or 503's Retry-After is honoured, within what the call may wait."""

    def test_429_retry_after_2_spaces_the_retry_by_2_seconds(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """Retry-After: 2 makes the next attempt reach the server at least 2 s later."""
        stackstate.throttle_next("GET", TOKENS, retry_after="2")
        assert client.list_keys("service-token") == []
        (first_at, first), (second_at, second) = stackstate.timed_log()
        assert (first.status, second.status) == (429, 200)
        assert second_at - first_at >= 2.0

    def test_503_with_an_http_date_is_honoured(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """Retry-After as an HTTP-date 2 s ahead delays the retry by more than 1 s (whole
        seconds: the date may fall up to 1 s short)."""
        when = datetime.now(UTC) + timedelta(seconds=2)
        http_date = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
        stackstate.throttle_next("GET", TOKENS, retry_after=http_date, status=503)
        assert client.list_keys("service-token") == []
        (first_at, _), (second_at, second) = stackstate.timed_log()
        assert second.status == 200
        assert second_at - first_at >= 1.0

    @pytest.mark.parametrize(
        ("retry_after", "deadline", "allowed"), [("120", 60.0, "30s"), ("5", 3.0, "3s")]
    )
    def test_retry_after_beyond_the_cap_gives_up_naming_the_delay(
        self, stackstate: StackStateEmulator, retry_after: str, deadline: float, allowed: str
    ) -> None:
        """A wait beyond retry_after_max (30 s) or the call's deadline is not waited for: one
        attempt, then a retry-category error naming the delay and the limit."""
        stackstate.throttle_next("GET", TOKENS, retry_after=retry_after)
        with (
            make_client(stackstate, retry_deadline=deadline) as client,
            pytest.raises(StackStateServerError) as caught,
        ):
            client.list_keys("service-token")
        error = caught.value
        assert f"retry after {retry_after}s" in str(error)
        assert f"({allowed})" in str(error)
        assert error.category == "retry"
        assert error.delay == float(retry_after)
        assert requests_to(stackstate, "GET", TOKENS) == 1

    def test_create_throttled_beyond_the_cap_creates_nothing(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A create answered 429 with a long Retry-After gives up at once, naming the delay."""
        stackstate.throttle_next("POST", TOKENS, retry_after="3600")
        with pytest.raises(StackStateServerError, match="retry after 3600s") as caught:
            create(client, "service-token", "agent-1")
        assert caught.value.retryable
        assert stackstate.keys("service-token") == []
        assert requests_to(stackstate, "POST", TOKENS) == 1

    def test_retry_after_on_other_statuses_is_ignored(
        self, stackstate: StackStateEmulator, client: StackStateClient
    ) -> None:
        """A 500 carries no Retry-After semantics: its header does not delay the retry."""
        stackstate.fail_next("GET", TOKENS, 500)
        assert client.list_keys("service-token") == []
        (first_at, _), (second_at, _) = stackstate.timed_log()
        assert second_at - first_at < 1.0


class TestParseRetryAfter:
    """parse_retry_after: both forms of RFC 9110, judged against a pinned now."""

    NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            ("2", 2.0),
            (" 120 ", 120.0),
            ("0", 0.0),
            ("Fri, 02 Jan 2026 03:04:35 GMT", 30.0),
            ("Fri, 02 Jan 2026 03:00:00 GMT", 0.0),  # in the past: no wait
            ("", None),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("\u0662", None),  # a non-ASCII digit is not delay-seconds
        ],
    )
    def test_values(self, value: str, seconds: float | None) -> None:
        """Seconds and HTTP-dates become a wait in seconds; anything else is ignored."""
        assert parse_retry_after(value, self.NOW) == seconds

    def test_an_endless_number_is_longer_than_any_cap(self) -> None:
        """Thousands of digits never raise; they ask for more than any call waits."""
        assert parse_retry_after("9" * 5000, self.NOW) == float("inf")


class TestTls:
    """TLS is verified by default; ca_file adds a private CA."""

    @pytest.fixture
    def tls_emulator(
        self, tmp_path: Path, make_stackstate: Callable[..., StackStateEmulator]
    ) -> tuple[StackStateEmulator, Path]:
        """An emulator serving HTTPS with a certificate of a private CA made here, and the CA."""
        ca, cert, key = generate_tls(tmp_path)
        return make_stackstate(tls=(str(cert), str(key))), ca

    def test_ca_file_makes_a_private_ca_trusted(
        self, tls_emulator: tuple[StackStateEmulator, Path]
    ) -> None:
        """With the private CA in ca_file, the HTTPS server is trusted."""
        emulator, ca = tls_emulator
        assert emulator.url.startswith("https://")
        with make_client(emulator, ca_file=ca) as client:
            assert client.server_info().deployment_mode == "SelfHosted"

    def test_unknown_ca_is_refused(self, tls_emulator: tuple[StackStateEmulator, Path]) -> None:
        """Without ca_file, a certificate of an unknown CA fails the handshake: Unreachable."""
        emulator, _ = tls_emulator
        with (
            make_client(emulator, max_attempts=1) as client,
            pytest.raises(StackStateUnreachable, match=r"TLS handshake .* certificate") as caught,
        ):
            client.server_info()
        assert "ca_file" in str(caught.value)
        assert emulator.log == []

    def test_unreadable_ca_file_is_a_config_error(self, tmp_path: Path) -> None:
        """A ca_file that is not a PEM bundle is reported as a configuration error."""
        bad = tmp_path / "ca.pem"
        bad.write_text("not a certificate")
        with pytest.raises(ConfigError, match=r"stackstate.ca_file"):
            StackStateClient(base_url="https://x.example", service_token=Secret("t"), ca_file=bad)


@dataclass
class Settings:
    """A stand-in for the config module's ``stackstate:`` model, as
    :func:`rotator.wiring.build_stackstate_client` reads it."""

    url: str
    api_path: str = "/api"
    service_token: SecretStr | None = None
    api_token: SecretStr | None = None
    service_bearer_file: Path | None = None
    ca_file: Path | None = None
    timeout: timedelta = timedelta(seconds=5)
    allow_insecure_http: bool = False


class TestConfiguration:
    """Construction from settings, credentials and paths."""

    def test_built_from_settings_refuses_plain_http_unless_allowed(
        self, stackstate: StackStateEmulator
    ) -> None:
        """http:// is refused by default and works with allow_insecure_http."""
        settings = Settings(url=stackstate.url, api_token=SecretStr(stackstate.api_token))
        with pytest.raises(ConfigError, match="allow_insecure_http"):
            build_stackstate_client(settings)
        settings.allow_insecure_http = True
        with build_stackstate_client(settings) as client:
            assert client.list_keys("ingestion-api-key") == []

    def test_api_token_is_sent_as_x_api_token(self, stackstate: StackStateEmulator) -> None:
        """A personal API token alone authenticates (as X-API-Token)."""
        with make_client(stackstate, api_token=Secret(stackstate.api_token)) as client:
            assert client.list_keys("service-token") == []

    def test_only_one_credential_is_sent(self, stackstate: StackStateEmulator) -> None:
        """With several credentials configured the service token wins and only it is sent."""
        with make_client(
            stackstate,
            service_token=Secret(stackstate.service_token),
            api_token=Secret("another-credential"),
        ) as client:
            assert client.list_keys("service-token") == []

    def test_service_bearer_file_is_read_at_every_request(
        self, tmp_path: Path, make_stackstate: Callable[..., StackStateEmulator]
    ) -> None:
        """A rotated service-account token file is picked up without a new client."""
        emulator = make_stackstate(service_bearer="bearer-one")
        bearer = tmp_path / "token"
        bearer.write_text("bearer-one\n")
        with make_client(emulator, service_bearer_file=bearer) as client:
            assert client.list_keys("service-token") == []
            emulator.service_bearer = "bearer-two"
            bearer.write_text("bearer-two")
            assert client.list_keys("service-token") == []
            bearer.unlink()
            with pytest.raises(ConfigError, match="service_bearer_file"):
                client.list_keys("service-token")

    def test_custom_api_path(self, make_stackstate: Callable[..., StackStateEmulator]) -> None:
        """A non-default API base path is honoured, with or without slashes around it."""
        emulator = make_stackstate(api_path="/stackstate/api")
        with make_client(emulator, api_path="stackstate/api/") as client:
            assert client.server_info().version == "6.0.0"
            assert client.url == f"{emulator.url}/stackstate/api"

    @pytest.mark.parametrize(
        "url",
        ["ftp://host", "https://", "https://user:pw@host", "https://host/api", "https://host?x=1"],
    )
    def test_unusable_urls_are_config_errors(self, url: str) -> None:
        """A URL that is not a plain http(s) origin is refused at construction."""
        with pytest.raises(ConfigError, match=r"stackstate\.url"):
            StackStateClient(base_url=url, service_token=Secret("token"))

    def test_a_credential_is_required(self) -> None:
        """A client without any credential is a configuration error."""
        with pytest.raises(ConfigError, match="no credential"):
            StackStateClient(base_url="https://host")


class TestSecretHygiene:
    """Invariant I4: key values never reach logs or error messages."""

    def test_values_never_appear_in_logs_or_errors(
        self,
        stackstate: StackStateEmulator,
        client: StackStateClient,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Across successes, retries, lost answers and failures no issued value is ever printed."""
        errors: list[RotatorError] = []

        def attempt(call: Callable[[], object]) -> None:
            try:
                call()
            except RotatorError as exc:
                errors.append(exc)

        caplog.set_level(logging.DEBUG)
        with structlog.testing.capture_logs() as events:
            values = [create(client, kind, f"k-{kind}") for kind in KEY_KINDS]
            for kind, value in zip(KEY_KINDS, values, strict=True):
                attempt(lambda k=kind, v=value: client.verify(k, v))
            stackstate.fail_next("POST", TOKENS, 500)
            attempt(lambda: create(client, "service-token", "k-retried"))
            stackstate.drop_after_processing("POST", INGESTION_KEYS)
            attempt(lambda: create(client, "ingestion-api-key", "k-lost"))
            stackstate.seed_key("service-token", "k-dup", expiration=None, roles=[INGEST_ROLE])
            attempt(lambda: create(client, "service-token", "k-dup"))
            stackstate.fail_next("GET", TOKENS, 503, count=None)
            attempt(lambda: client.list_keys("service-token"))
            with make_client(stackstate, service_token=Secret("bad-admin-token-value")) as bad:
                attempt(lambda: bad.verify("ingestion-api-key", values[1]))
        assert {e["event"] for e in events} >= {"stackstate.request", "stackstate.retry"}
        assert len(errors) == 4
        secrets_ = [*stackstate.issued_values(), stackstate.service_token, "bad-admin-token-value"]
        assert len(stackstate.issued_values()) >= 5
        printed = [repr(events), caplog.text, *(f"{e!s} {e!r}" for e in errors)]
        for value in secrets_:
            for text in printed:
                assert value not in text
