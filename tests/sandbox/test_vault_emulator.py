"""The Vault emulator, driven over real HTTP through hvac (and plain httpx for exact bytes)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import hvac
import hvac.exceptions
import pytest

from rotator_sandbox.vault import (
    ACL_DENIED,
    CAS_MISMATCH,
    CAS_REQUIRED,
    INVALID_TOKEN,
    VaultEmulator,
)
from tests.plugins.vault import ROOT_TOKEN, VaultClock

MakeClient = Callable[..., hvac.Client]
TIMEOUT = httpx.Timeout(5.0)


def fake_service_account_jwt(namespace: str, name: str) -> str:
    """An unsigned JWT shaped like a Kubernetes service-account token."""

    def part(payload: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")

    claims: dict[str, object] = {
        "iss": "kubernetes/serviceaccount",
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io": {"serviceaccount": {"name": name, "uid": "1234-uid"}},
    }
    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


@pytest.fixture
def http(vault: VaultEmulator) -> Iterator[httpx.Client]:
    """A plain httpx client on the emulator (no token set)."""
    with httpx.Client(base_url=vault.url, timeout=TIMEOUT) as client:
        yield client


ROOT = {"X-Vault-Token": ROOT_TOKEN}


class TestKvV2:
    """KV v2 reads, writes, versions, CAS and metadata through hvac."""

    def test_create_then_read_returns_data_and_version_metadata(
        self, vault_client: hvac.Client
    ) -> None:
        """A first write answers version 1 in the standard envelope and reads back its data."""
        written = vault_client.secrets.kv.v2.create_or_update_secret("app/key", {"api_key": "v1"})
        assert written["data"]["version"] == 1
        assert written["data"]["deletion_time"] == ""
        assert written["data"]["destroyed"] is False
        assert written["data"]["custom_metadata"] is None
        for name in ("request_id", "lease_id", "renewable", "lease_duration", "wrap_info"):
            assert name in written
        read = vault_client.secrets.kv.v2.read_secret_version(
            "app/key", raise_on_deleted_version=True
        )
        assert read["data"]["data"] == {"api_key": "v1"}
        assert read["data"]["metadata"]["version"] == 1
        assert read["data"]["metadata"]["created_time"] == written["data"]["created_time"]

    def test_every_write_is_a_new_version_and_old_versions_stay_readable(
        self, vault_client: hvac.Client
    ) -> None:
        """Writes number versions 1, 2, 3 and ``?version=N`` reads an older one."""
        kv = vault_client.secrets.kv.v2
        for value in ("a", "b", "c"):
            kv.create_or_update_secret("app/key", {"v": value})
        latest = kv.read_secret_version("app/key", raise_on_deleted_version=True)
        first = kv.read_secret_version("app/key", version=1, raise_on_deleted_version=True)
        assert latest["data"]["metadata"]["version"] == 3
        assert latest["data"]["data"] == {"v": "c"}
        assert first["data"]["data"] == {"v": "a"}
        metadata = kv.read_secret_metadata("app/key")["data"]
        assert metadata["current_version"] == 3
        assert sorted(metadata["versions"]) == ["1", "2", "3"]

    def test_cas_mismatch_raises_invalid_request_with_vaults_message(
        self, vault_client: hvac.Client
    ) -> None:
        """A write whose ``cas`` is not the current version fails with Vault's 400 message."""
        kv = vault_client.secrets.kv.v2
        kv.create_or_update_secret("app/key", {"v": "1"})
        with pytest.raises(hvac.exceptions.InvalidRequest) as caught:
            kv.create_or_update_secret("app/key", {"v": "2"}, cas=5)
        assert caught.value.errors == [CAS_MISMATCH]
        kv.create_or_update_secret("app/key", {"v": "2"}, cas=1)

    def test_cas_zero_only_creates(self, vault_client: hvac.Client) -> None:
        """``cas=0`` writes a missing key and is refused once the key exists."""
        kv = vault_client.secrets.kv.v2
        assert kv.create_or_update_secret("app/new", {"v": "1"}, cas=0)["data"]["version"] == 1
        with pytest.raises(hvac.exceptions.InvalidRequest, match="did not match"):
            kv.create_or_update_secret("app/new", {"v": "2"}, cas=0)

    def test_cas_required_on_the_key_refuses_writes_without_cas(
        self, vault_client: hvac.Client
    ) -> None:
        """With ``cas_required`` in the key's metadata a write without ``cas`` answers 400."""
        kv = vault_client.secrets.kv.v2
        kv.update_metadata("app/key", cas_required=True)
        with pytest.raises(hvac.exceptions.InvalidRequest) as caught:
            kv.create_or_update_secret("app/key", {"v": "1"})
        assert caught.value.errors == [CAS_REQUIRED]
        kv.create_or_update_secret("app/key", {"v": "1"}, cas=0)

    def test_cas_required_on_the_mount_refuses_writes_without_cas(
        self, vault_client: hvac.Client
    ) -> None:
        """The mount's ``config`` ``cas_required`` applies to every key."""
        vault_client.secrets.kv.v2.configure(cas_required=True)
        assert vault_client.secrets.kv.v2.read_configuration()["data"]["cas_required"] is True
        with pytest.raises(hvac.exceptions.InvalidRequest, match="required"):
            vault_client.secrets.kv.v2.create_or_update_secret("any", {"v": "1"})

    def test_concurrent_create_only_writes_have_exactly_one_winner(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """Racing ``cas=0`` writes from several clients create the key once."""
        clients = [make_vault_client() for _ in range(6)]
        barrier = threading.Barrier(len(clients))
        outcomes: list[str] = []

        def race(client: hvac.Client) -> None:
            barrier.wait()
            try:
                client.secrets.kv.v2.create_or_update_secret("race", {"v": "x"}, cas=0)
                outcomes.append("won")
            except hvac.exceptions.InvalidRequest:
                outcomes.append("lost")

        threads = [threading.Thread(target=race, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert sorted(outcomes) == ["lost"] * 5 + ["won"]
        assert vault.metadata("secret", "race")["current_version"] == 1  # type: ignore[index]

    def test_hvac_patch_reads_merges_and_writes_with_cas(
        self, vault: VaultEmulator, vault_client: hvac.Client
    ) -> None:
        """hvac's ``patch`` (read, merge, CAS write) keeps other keys and adds a version."""
        kv = vault_client.secrets.kv.v2
        kv.create_or_update_secret("app/key", {"a": "1", "b": "2"})
        # hvac's patch reads without raise_on_deleted_version, which warns in hvac 2.x.
        with pytest.warns(DeprecationWarning, match="raise_on_deleted_version"):
            answer = kv.patch("app/key", {"b": "3"})
        assert answer["data"]["version"] == 2
        assert vault.read("secret", "app/key") == {"a": "1", "b": "3"}
        last = vault.log[-1]
        assert json.loads(last.body)["options"] == {"cas": 1}

    def test_server_side_patch_merges_and_deletes_null_keys(
        self, vault: VaultEmulator, http: httpx.Client
    ) -> None:
        """A PATCH with merge-patch JSON merges into the latest version; null removes a key."""
        vault.write("secret", "app/key", {"a": "1", "b": "2"})
        answer = http.patch(
            "/v1/secret/data/app/key",
            headers={**ROOT, "Content-Type": "application/merge-patch+json"},
            content=json.dumps({"data": {"a": None, "c": "3"}}),
        )
        assert answer.status_code == 200
        assert vault.read("secret", "app/key") == {"b": "2", "c": "3"}
        refused = http.patch("/v1/secret/data/app/key", headers=ROOT, json={"data": {"a": "1"}})
        assert refused.status_code == 415

    def test_patch_of_a_missing_secret_raises_invalid_path(self, vault_client: hvac.Client) -> None:
        """hvac's ``patch`` of a missing key surfaces Vault's 404 as InvalidPath."""
        with (
            pytest.warns(DeprecationWarning, match="raise_on_deleted_version"),
            pytest.raises(hvac.exceptions.InvalidPath),
        ):
            vault_client.secrets.kv.v2.patch("missing", {"a": "1"})

    def test_custom_metadata_replaces_the_whole_map_and_shows_in_reads_and_writes(
        self, vault_client: hvac.Client
    ) -> None:
        """``update_metadata(custom_metadata=...)`` replaces the map; reads and writes show it."""
        kv = vault_client.secrets.kv.v2
        kv.create_or_update_secret("app/key", {"v": "1"})
        assert (
            kv.update_metadata("app/key", custom_metadata={"a": "1", "b": "2"}).status_code == 204
        )
        kv.update_metadata("app/key", custom_metadata={"c": "3"})
        assert kv.read_secret_metadata("app/key")["data"]["custom_metadata"] == {"c": "3"}
        read = kv.read_secret_version("app/key", raise_on_deleted_version=True)
        assert read["data"]["metadata"]["custom_metadata"] == {"c": "3"}
        written = kv.create_or_update_secret("app/key", {"v": "2"})
        assert written["data"]["custom_metadata"] == {"c": "3"}

    def test_update_metadata_without_custom_metadata_keeps_it(
        self, vault_client: hvac.Client
    ) -> None:
        """An ``update_metadata`` that does not send ``custom_metadata`` leaves the map alone."""
        kv = vault_client.secrets.kv.v2
        kv.update_metadata("app/key", custom_metadata={"a": "1"})
        kv.update_metadata("app/key", max_versions=3)
        metadata = kv.read_secret_metadata("app/key")["data"]
        assert metadata["custom_metadata"] == {"a": "1"}
        assert metadata["max_versions"] == 3
        assert metadata["current_version"] == 0

    @pytest.mark.parametrize(
        ("custom", "message"),
        [
            (
                {f"k{i}": "v" for i in range(65)},
                "payload must contain at most 64 keys, provided 65",
            ),
            ({"k" * 129: "v"}, "but must be 0 < len(key) <= 128"),
            ({"k": "v" * 513}, "is 513 but must be 0 < len(value) <= 512"),
            ({"k": ""}, "is 0 but must be 0 < len(value) <= 512"),
        ],
    )
    def test_custom_metadata_beyond_vaults_limits_is_refused(
        self, vault_client: hvac.Client, custom: dict[str, str], message: str
    ) -> None:
        """Too many keys, or a key/value too long or empty, answers 400 in multierror form."""
        with pytest.raises(hvac.exceptions.InvalidRequest) as caught:
            vault_client.secrets.kv.v2.update_metadata("app/key", custom_metadata=custom)
        (error,) = caught.value.errors
        assert error.startswith("1 error occurred:\n\t* custom_metadata validation failed: ")
        assert message in error

    def test_max_versions_trims_the_oldest_versions(self, vault_client: hvac.Client) -> None:
        """With ``max_versions=2`` only the two newest versions are kept, as Vault slides it."""
        kv = vault_client.secrets.kv.v2
        kv.update_metadata("app/key", max_versions=2)
        for value in ("1", "2", "3", "4"):
            kv.create_or_update_secret("app/key", {"v": value})
        metadata = kv.read_secret_metadata("app/key")["data"]
        assert sorted(metadata["versions"]) == ["3", "4"]
        assert metadata["oldest_version"] == 3
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.read_secret_version("app/key", version=1, raise_on_deleted_version=True)

    def test_reading_a_missing_secret_raises_invalid_path_with_empty_errors(
        self, vault_client: hvac.Client
    ) -> None:
        """A missing key is 404 ``{"errors": []}``."""
        with pytest.raises(hvac.exceptions.InvalidPath) as caught:
            vault_client.secrets.kv.v2.read_secret_version("nope", raise_on_deleted_version=True)
        assert caught.value.json == {"errors": []}

    def test_a_soft_deleted_version_reads_as_404_with_metadata(
        self, vault: VaultEmulator, vault_client: hvac.Client
    ) -> None:
        """After delete_latest, reads are 404 carrying the envelope, data null and metadata."""
        kv = vault_client.secrets.kv.v2
        kv.create_or_update_secret("app/key", {"v": "1"})
        assert kv.delete_latest_version_of_secret("app/key").status_code == 204
        with pytest.raises(hvac.exceptions.InvalidPath) as caught:
            kv.read_secret_version("app/key", raise_on_deleted_version=True)
        body = caught.value.json
        assert "errors" not in body
        assert body["data"]["data"] is None
        assert body["data"]["metadata"]["version"] == 1
        assert body["data"]["metadata"]["deletion_time"] != ""
        tolerated = kv.read_secret_version("app/key", raise_on_deleted_version=False)
        assert tolerated["data"]["data"] is None
        assert vault.read("secret", "app/key") is None

    def test_undelete_restores_and_destroy_is_final(
        self, vault: VaultEmulator, vault_client: hvac.Client
    ) -> None:
        """Deleted versions come back with undelete; destroyed ones never do."""
        kv = vault_client.secrets.kv.v2
        kv.create_or_update_secret("app/key", {"v": "1"})
        kv.create_or_update_secret("app/key", {"v": "2"})
        kv.delete_secret_versions("app/key", versions=[1, 2])
        assert vault.read("secret", "app/key", version=1) is None
        kv.undelete_secret_versions("app/key", versions=[1])
        assert vault.read("secret", "app/key", version=1) == {"v": "1"}
        kv.destroy_secret_versions("app/key", versions=[1])
        kv.undelete_secret_versions("app/key", versions=[1])
        assert vault.read("secret", "app/key", version=1) is None
        versions = kv.read_secret_metadata("app/key")["data"]["versions"]
        assert versions["1"]["destroyed"] is True

    def test_version_operations_without_versions_are_refused(self, http: httpx.Client) -> None:
        """delete/undelete/destroy with no versions answer 400 with the KV plugin's message."""
        answer = http.post("/v1/secret/destroy/app/key", headers=ROOT, json={"versions": []})
        assert answer.status_code == 400
        assert answer.json() == {"errors": ["no version number provided"]}

    def test_delete_version_after_expires_versions_by_the_clock(
        self, vault: VaultEmulator, vault_client: hvac.Client, vault_clock: VaultClock
    ) -> None:
        """A version written under ``delete_version_after`` reads as deleted once it elapses."""
        kv = vault_client.secrets.kv.v2
        kv.update_metadata("app/key", delete_version_after="1h")
        written = kv.create_or_update_secret("app/key", {"v": "1"})
        assert written["data"]["deletion_time"] != ""
        assert vault.read("secret", "app/key") == {"v": "1"}
        vault_clock.advance(timedelta(hours=1, seconds=1))
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.read_secret_version("app/key", raise_on_deleted_version=True)
        assert kv.read_secret_metadata("app/key")["data"]["delete_version_after"] == "1h0m0s"

    def test_deleting_metadata_removes_every_version(
        self, vault: VaultEmulator, vault_client: hvac.Client
    ) -> None:
        """``delete_metadata_and_all_versions`` forgets the key entirely."""
        kv = vault_client.secrets.kv.v2
        kv.create_or_update_secret("app/key", {"v": "1"})
        assert kv.delete_metadata_and_all_versions("app/key").status_code == 204
        assert vault.metadata("secret", "app/key") is None
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.read_secret_metadata("app/key")

    def test_list_shows_keys_and_folders_under_a_folder(
        self, vault: VaultEmulator, vault_client: hvac.Client, http: httpx.Client
    ) -> None:
        """LIST (and GET ?list=true) answer direct children, folders with a trailing slash."""
        for path in ("apps/a", "apps/b", "apps/team/c", "other"):
            vault.write("secret", path, {"v": "1"})
        listed = vault_client.secrets.kv.v2.list_secrets("apps")
        assert listed["data"]["keys"] == ["a", "b", "team/"]
        via_get = http.get("/v1/secret/metadata/apps/", params={"list": "true"}, headers=ROOT)
        assert via_get.json()["data"]["keys"] == ["a", "b", "team/"]
        with pytest.raises(hvac.exceptions.InvalidPath):
            vault_client.secrets.kv.v2.list_secrets("empty")

    def test_a_write_without_data_is_refused(self, http: httpx.Client) -> None:
        """A v2 write whose body has no ``data`` answers 400 ``no data provided``."""
        answer = http.post("/v1/secret/data/app/key", headers=ROOT, json={"options": {}})
        assert answer.status_code == 400
        assert answer.json() == {"errors": ["no data provided"]}

    def test_a_v1_style_path_on_a_v2_mount_is_invalid_path(self, vault_client: hvac.Client) -> None:
        """Reading ``secret/x`` without ``data/`` is 404 with Vault's versioned-KV warning."""
        with pytest.raises(hvac.exceptions.InvalidPath) as caught:
            vault_client.secrets.kv.v1.read_secret("app/key", mount_point="secret")
        assert "versioned K/V" in caught.value.json["warnings"][0]


class TestKvV1:
    """KV v1 through hvac."""

    def test_create_or_update_posts_then_puts_and_reads_back(
        self, vault: VaultEmulator, vault_client: hvac.Client
    ) -> None:
        """hvac reads first, POSTs a new key, PUTs an existing one; both answer 204."""
        kv = vault_client.secrets.kv.v1
        assert (
            kv.create_or_update_secret("app/key", {"v": "1"}, mount_point="kv").status_code == 204
        )
        assert (
            kv.create_or_update_secret("app/key", {"v": "2"}, mount_point="kv").status_code == 204
        )
        writes = [r.method for r in vault.mutating_requests() if r.path == "/v1/kv/app/key"]
        assert writes == ["POST", "PUT"]
        read = kv.read_secret("app/key", mount_point="kv")
        assert read["data"] == {"v": "2"}
        assert read["lease_duration"] == 2764800
        assert read["lease_id"] == ""
        assert read["renewable"] is False
        assert read["auth"] is None

    def test_reading_a_missing_key_raises_invalid_path(self, vault_client: hvac.Client) -> None:
        """A missing v1 key is 404 ``{"errors": []}``."""
        with pytest.raises(hvac.exceptions.InvalidPath) as caught:
            vault_client.secrets.kv.v1.read_secret("nope", mount_point="kv")
        assert caught.value.json == {"errors": []}

    def test_delete_removes_and_list_shows_children(
        self, vault: VaultEmulator, vault_client: hvac.Client
    ) -> None:
        """DELETE answers 204 and removes the key; LIST shows what is left."""
        vault.write("kv", "apps/a", {"v": "1"})
        vault.write("kv", "apps/b", {"v": "1"})
        kv = vault_client.secrets.kv.v1
        assert kv.delete_secret("apps/a", mount_point="kv").status_code == 204
        assert vault.read("kv", "apps/a") is None
        assert kv.list_secrets("apps", mount_point="kv")["data"]["keys"] == ["b"]

    def test_a_ttl_key_sets_the_lease_duration(
        self, vault: VaultEmulator, vault_client: hvac.Client
    ) -> None:
        """A ``ttl`` field in the data is the lease hint, as in Vault's passthrough backend."""
        vault.write("kv", "app/key", {"v": "1", "ttl": "1h"})
        assert (
            vault_client.secrets.kv.v1.read_secret("app/key", mount_point="kv")["lease_duration"]
            == 3600
        )


class TestAccessControl:
    """Tokens, policies, seal state and the shape of errors."""

    def test_an_unknown_token_is_forbidden_with_two_errors(
        self, make_vault_client: MakeClient
    ) -> None:
        """A token Vault does not know answers 403 "permission denied" + "invalid token"."""
        client = make_vault_client("hvs.not-a-real-token")
        with pytest.raises(hvac.exceptions.Forbidden) as caught:
            client.secrets.kv.v2.read_secret_version("app/key", raise_on_deleted_version=True)
        assert caught.value.errors == [INVALID_TOKEN]

    def test_a_token_without_a_matching_policy_is_forbidden(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """A valid token whose policies do not cover the path answers 403 "1 error occurred"."""
        client = make_vault_client(vault.create_token())
        with pytest.raises(hvac.exceptions.Forbidden) as caught:
            client.secrets.kv.v2.read_secret_version("app/key", raise_on_deleted_version=True)
        assert caught.value.errors == [ACL_DENIED]

    def test_policies_grant_exactly_their_capabilities(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """A read-only policy reads but cannot create; create covers new keys, update old ones."""
        vault.set_policy("reader", {"secret/data/app/*": ["read"]})
        vault.set_policy("creator", {"secret/data/app/*": ["create"]})
        vault.write("secret", "app/key", {"v": "1"})
        reader = make_vault_client(vault.create_token(["reader"]))
        creator = make_vault_client(vault.create_token(["creator"]))
        assert reader.secrets.kv.v2.read_secret_version("app/key", raise_on_deleted_version=True)[
            "data"
        ]["data"] == {"v": "1"}
        with pytest.raises(hvac.exceptions.Forbidden):
            reader.secrets.kv.v2.create_or_update_secret("app/key", {"v": "2"})
        creator.secrets.kv.v2.create_or_update_secret("app/new", {"v": "1"})
        with pytest.raises(hvac.exceptions.Forbidden):
            creator.secrets.kv.v2.create_or_update_secret("app/key", {"v": "2"})

    def test_the_most_specific_policy_path_wins_and_deny_overrides(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """An exact path beats a glob, ``+`` matches one segment, and ``deny`` refuses."""
        vault.set_policy(
            "mixed",
            {
                "secret/data/*": ["read"],
                "secret/data/app/locked": ["deny"],
                "secret/data/+/open": ["create", "update"],
            },
        )
        client = make_vault_client(vault.create_token(["mixed"]))
        kv = client.secrets.kv.v2
        kv.create_or_update_secret("team/open", {"v": "1"})
        with pytest.raises(hvac.exceptions.Forbidden):
            kv.create_or_update_secret("team/deeper/open", {"v": "1"})
        vault.write("secret", "app/locked", {"v": "1"})
        with pytest.raises(hvac.exceptions.Forbidden):
            kv.read_secret_version("app/locked", raise_on_deleted_version=True)

    def test_a_missing_token_is_a_plain_permission_denied(self, http: httpx.Client) -> None:
        """No token at all answers 403 ``permission denied`` (no multierror wrapping)."""
        answer = http.get("/v1/secret/data/app/key")
        assert answer.status_code == 403
        assert answer.json() == {"errors": ["permission denied"]}

    def test_a_bearer_authorization_header_is_accepted(
        self, vault: VaultEmulator, http: httpx.Client
    ) -> None:
        """``Authorization: Bearer <token>`` works like ``X-Vault-Token``."""
        vault.write("secret", "app/key", {"v": "1"})
        answer = http.get(
            "/v1/secret/data/app/key", headers={"Authorization": f"Bearer {ROOT_TOKEN}"}
        )
        assert answer.status_code == 200

    def test_a_sealed_vault_answers_vault_down_except_health(
        self, vault: VaultEmulator, vault_client: hvac.Client
    ) -> None:
        """Sealed: KV calls raise VaultDown, seal-status says sealed, health answers 503."""
        vault.seal()
        with pytest.raises(hvac.exceptions.VaultDown) as caught:
            vault_client.secrets.kv.v2.read_secret_version("app/key", raise_on_deleted_version=True)
        assert caught.value.errors == ["Vault is sealed"]
        assert vault_client.sys.is_sealed() is True
        health = vault_client.sys.read_health_status(method="GET")
        assert health.status_code == 503
        assert health.json()["sealed"] is True
        vault.unseal()
        assert vault_client.sys.is_sealed() is False
        assert vault_client.sys.read_health_status(method="GET")["initialized"] is True

    def test_an_injected_500_raises_internal_server_error_with_vaults_body(
        self, vault: VaultEmulator, vault_client: hvac.Client
    ) -> None:
        """``fail_next`` answers ``{"errors": [...]}`` so hvac maps it to InternalServerError."""
        vault.fail_next("GET", r"/v1/secret/data/.*", 500)
        with pytest.raises(hvac.exceptions.InternalServerError) as caught:
            vault_client.secrets.kv.v2.read_secret_version("app/key", raise_on_deleted_version=True)
        assert caught.value.errors == ["injected fault"]

    def test_error_answers_carry_exactly_application_json(self, http: httpx.Client) -> None:
        """Every error has ``Content-Type: application/json`` with no parameters."""
        answers = [
            http.get("/v1/secret/data/app/key"),
            http.get("/v1/secret/data/app/key", headers={"X-Vault-Token": "bad"}),
            http.get("/v1/secret/data/missing", headers=ROOT),
            http.post("/v1/secret/data/x", headers=ROOT, json={}),
            http.get("/v1/typo/data/x", headers=ROOT),
        ]
        assert [a.status_code for a in answers] == [403, 403, 404, 400, 404]
        assert {a.headers["content-type"] for a in answers} == {"application/json"}

    def test_error_bodies_are_vaults_bytes(self, vault: VaultEmulator, http: httpx.Client) -> None:
        """Error bodies match Vault's Go encoding byte for byte (compact JSON, newline)."""
        assert http.get("/v1/secret/data/x").content == b'{"errors":["permission denied"]}\n'
        assert (
            http.get("/v1/secret/data/x", headers={"X-Vault-Token": "bad"}).content
            == b'{"errors":["2 errors occurred:\\n\\t* permission denied'
            b'\\n\\t* invalid token\\n\\n"]}\n'
        )
        limited = {"X-Vault-Token": vault.create_token()}
        assert (
            http.get("/v1/secret/data/x", headers=limited).content
            == b'{"errors":["1 error occurred:\\n\\t* permission denied\\n\\n"]}\n'
        )
        assert http.get("/v1/secret/data/x", headers=ROOT).content == b'{"errors":[]}\n'
        assert (
            http.get("/v1/typo/data/x", headers=ROOT).content
            == b'{"errors":["no handler for route \\"typo/data/x\\". route entry not found."]}\n'
        )
        vault.seal()
        sealed = http.get("/v1/secret/data/x", headers=ROOT)
        assert (sealed.status_code, sealed.content) == (503, b'{"errors":["Vault is sealed"]}\n')

    def test_requests_are_recorded_with_their_vault_headers(
        self, vault: VaultEmulator, vault_client: hvac.Client, http: httpx.Client
    ) -> None:
        """``seen`` notes X-Vault-Request and the token's accessor, never the token."""
        vault.write("secret", "a", {"v": "1"})
        vault_client.secrets.kv.v2.read_secret_version("a", raise_on_deleted_version=True)
        http.get("/v1/secret/data/a", headers=ROOT)
        via_hvac, via_httpx = vault.seen[-2:]
        assert via_hvac.vault_request_header is True
        assert via_httpx.vault_request_header is False
        root_accessor = vault.lookup_token(ROOT_TOKEN)["accessor"]  # type: ignore[index]
        assert via_hvac.accessor == root_accessor
        assert ROOT_TOKEN not in repr(vault.seen)


class TestTokens:
    """The token store: lookup, renewal, expiry, revocation and child tokens."""

    def test_lookup_self_describes_the_token(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """lookup-self answers policies (with default), ttl and renewability."""
        token = vault.create_token(["reader"], ttl=timedelta(hours=1))
        data = make_vault_client(token).auth.token.lookup_self()["data"]
        assert data["policies"] == ["default", "reader"]
        assert data["ttl"] == 3600
        assert data["renewable"] is True
        assert data["id"] == token

    def test_renew_self_extends_the_ttl_from_now(
        self, vault: VaultEmulator, make_vault_client: MakeClient, vault_clock: VaultClock
    ) -> None:
        """renew-self restarts the TTL (or ``increment``) from the clock's now."""
        client = make_vault_client(vault.create_token(ttl=timedelta(hours=1)))
        vault_clock.advance(timedelta(minutes=50))
        assert client.auth.token.renew_self()["auth"]["lease_duration"] == 3600
        assert client.auth.token.lookup_self()["data"]["ttl"] == 3600
        assert client.auth.token.renew_self(increment="2h")["auth"]["lease_duration"] == 7200

    def test_renewal_is_capped_at_the_max_ttl_with_a_warning(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """An increment beyond the token's max TTL is capped, and Vault warns about it."""
        token = vault.create_token(ttl=timedelta(hours=1), max_ttl=timedelta(minutes=90))
        answer = make_vault_client(token).auth.token.renew_self(increment="2h")
        assert answer["auth"]["lease_duration"] == 5400
        assert "capped" in answer["warnings"][0]

    def test_a_non_renewable_token_cannot_renew(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """renew-self on a non-renewable token answers 400 ``lease is not renewable``."""
        client = make_vault_client(vault.create_token(renewable=False))
        with pytest.raises(hvac.exceptions.InvalidRequest, match="lease is not renewable"):
            client.auth.token.renew_self()

    def test_tokens_expire_by_the_clock(
        self, vault: VaultEmulator, make_vault_client: MakeClient, vault_clock: VaultClock
    ) -> None:
        """Once its TTL passed on the emulator's clock, a token is an invalid token."""
        client = make_vault_client(vault.create_token(ttl=timedelta(minutes=5)))
        assert client.is_authenticated()
        vault_clock.advance(timedelta(minutes=5))
        with pytest.raises(hvac.exceptions.Forbidden) as caught:
            client.auth.token.lookup_self()
        assert caught.value.errors == [INVALID_TOKEN]

    def test_a_revoked_token_and_its_children_stop_working(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """revoke_token also revokes tokens created from it."""
        vault.set_policy("maker", {"auth/token/create": ["update"]})
        parent = vault.create_token(["maker"])
        child = make_vault_client(parent).auth.token.create(policies=["default"], ttl="10m")
        child_token = child["auth"]["client_token"]
        assert make_vault_client(child_token).is_authenticated()
        vault.revoke_token(parent)
        assert not make_vault_client(parent).is_authenticated()
        assert not make_vault_client(child_token).is_authenticated()

    def test_a_child_token_cannot_gain_policies(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """A non-root parent can only hand out a subset of its own policies."""
        vault.set_policy("maker", {"auth/token/create": ["update"]})
        client = make_vault_client(vault.create_token(["maker"]))
        with pytest.raises(hvac.exceptions.InvalidRequest, match="subset"):
            client.auth.token.create(policies=["admin"])


class TestAuthMethods:
    """Kubernetes and AppRole logins through hvac's auth methods."""

    def test_kubernetes_login_issues_a_token_with_the_roles_policies(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """A configured role and JWT log in; the client then reads with the role's policy."""
        jwt = fake_service_account_jwt("monitoring", "rotator")
        vault.set_policy("rotator", {"secret/data/*": ["read"]})
        vault.add_kubernetes_role("rotator", jwt, ["rotator"], ttl=timedelta(hours=1))
        vault.write("secret", "app/key", {"v": "1"})
        client = make_vault_client(None)
        answer = client.auth.kubernetes.login("rotator", jwt)
        auth = answer["auth"]
        assert auth["policies"] == ["default", "rotator"]
        assert auth["token_policies"] == ["default", "rotator"]
        assert auth["lease_duration"] == 3600
        assert auth["renewable"] is True
        assert auth["metadata"]["service_account_namespace"] == "monitoring"
        assert auth["metadata"]["service_account_name"] == "rotator"
        assert client.secrets.kv.v2.read_secret_version("app/key", raise_on_deleted_version=True)[
            "data"
        ]["data"] == {"v": "1"}

    def test_kubernetes_login_errors(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """An unknown role is 400 ``invalid role name``; a wrong JWT is 403."""
        vault.add_kubernetes_role("rotator", "good-jwt", ["rotator"])
        client = make_vault_client(None)
        with pytest.raises(hvac.exceptions.InvalidRequest) as unknown:
            client.auth.kubernetes.login("x", "good-jwt")
        assert unknown.value.errors == ['invalid role name "x"']
        with pytest.raises(hvac.exceptions.Forbidden) as wrong:
            client.auth.kubernetes.login("rotator", "bad-jwt")
        assert wrong.value.errors == ["permission denied"]

    def test_kubernetes_login_on_a_custom_mount(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """Roles live on the auth mount they were added to."""
        vault.add_kubernetes_role("r", "jwt", mount="k8s-prod")
        client = make_vault_client(None)
        assert client.auth.kubernetes.login("r", "jwt", mount_point="k8s-prod")["auth"]
        with pytest.raises(hvac.exceptions.Forbidden):
            client.auth.kubernetes.login("r", "jwt")  # no such mount: not an unauth path

    def test_approle_login_and_bad_credentials(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """AppRole logs in with role_id and secret_id; wrong ones answer 400."""
        vault.add_approle("role-1", "secret-1", ["rotator"], ttl=timedelta(minutes=30))
        client = make_vault_client(None)
        auth = client.auth.approle.login("role-1", "secret-1")["auth"]
        assert auth["lease_duration"] == 1800
        assert auth["metadata"] == {"role_name": "role-1"}
        assert client.auth.token.lookup_self()["data"]["policies"] == ["default", "rotator"]
        with pytest.raises(hvac.exceptions.InvalidRequest) as caught:
            make_vault_client(None).auth.approle.login("role-1", "wrong")
        assert caught.value.errors == ["invalid role or secret ID"]


class TestNamespaces:
    """Namespaces keep separate storage and bind tokens."""

    def test_namespaces_isolate_storage(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """A write through ``Client(namespace=...)`` is invisible in the root namespace."""
        vault.add_namespace("team-a")
        scoped = make_vault_client(namespace="team-a")
        scoped.secrets.kv.v2.create_or_update_secret("app/key", {"v": "ns"})
        assert vault.read("secret", "app/key", namespace="team-a") == {"v": "ns"}
        assert vault.read("secret", "app/key") is None
        with pytest.raises(hvac.exceptions.InvalidPath):
            make_vault_client().secrets.kv.v2.read_secret_version(
                "app/key", raise_on_deleted_version=True
            )

    def test_header_and_path_namespaces_are_the_same(
        self, vault: VaultEmulator, http: httpx.Client
    ) -> None:
        """``X-Vault-Namespace: a/`` + ``b/secret/...`` reaches ``/v1/a/b/secret/...``."""
        vault.add_namespace("a/b")
        vault.write("secret", "k", {"v": "deep"}, namespace="a/b")
        by_header = http.get("/v1/b/secret/data/k", headers={**ROOT, "X-Vault-Namespace": "a/"})
        by_path = http.get("/v1/a/b/secret/data/k", headers=ROOT)
        assert by_header.json()["data"]["data"] == by_path.json()["data"]["data"] == {"v": "deep"}

    def test_a_namespace_token_works_only_in_its_namespace(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """A token created in a namespace is refused in the root namespace."""
        vault.add_namespace("team-a")
        vault.set_policy("writer", {"secret/data/*": ["create", "read", "update"]})
        token = vault.create_token(["writer"], namespace="team-a")
        make_vault_client(token, namespace="team-a").secrets.kv.v2.create_or_update_secret(
            "k", {"v": "1"}
        )
        with pytest.raises(hvac.exceptions.Forbidden):
            make_vault_client(token).secrets.kv.v2.create_or_update_secret("k", {"v": "1"})

    def test_logins_in_a_namespace_issue_namespace_tokens(
        self, vault: VaultEmulator, make_vault_client: MakeClient
    ) -> None:
        """A Kubernetes login through a namespace yields a token of that namespace."""
        vault.add_namespace("team-a")
        vault.add_kubernetes_role("r", "jwt", namespace="team-a")
        client = make_vault_client(None, namespace="team-a")
        client.auth.kubernetes.login("r", "jwt")
        assert client.auth.token.lookup_self()["data"]["namespace_path"] == "team-a/"


class TestInProcessApi:
    """Seeding and inspection helpers used by other tests."""

    def test_seeded_values_are_served_and_inspection_sees_writes(
        self, vault: VaultEmulator, vault_client: hvac.Client
    ) -> None:
        """``write`` seeds a version that hvac reads; ``read``/``metadata`` see hvac's writes."""
        assert vault.write("secret", "seeded", {"v": "1"}) == 1
        assert vault_client.secrets.kv.v2.read_secret_version(
            "seeded", raise_on_deleted_version=True
        )["data"]["data"] == {"v": "1"}
        vault_client.secrets.kv.v2.create_or_update_secret("seeded", {"v": "2"})
        assert vault.read("secret", "seeded") == {"v": "2"}
        assert vault.read("secret", "seeded", version=1) == {"v": "1"}
        assert vault.metadata("secret", "seeded")["current_version"] == 2  # type: ignore[index]
        assert vault.read("secret", "never") is None
        assert vault.metadata("secret", "never") is None

    def test_read_returns_a_copy(self, vault: VaultEmulator) -> None:
        """Mutating what ``read`` returned does not change the stored secret."""
        vault.write("kv", "k", {"v": "1"})
        copy = vault.read("kv", "k")
        assert copy is not None
        copy["v"] = "changed"
        assert vault.read("kv", "k") == {"v": "1"}

    def test_custom_mounts(
        self, make_vault: Callable[..., VaultEmulator], make_vault_client: MakeClient
    ) -> None:
        """``mounts`` replaces the default mounts; unknown mounts are 404 no handler."""
        emulator = make_vault(mounts={"team/kv": 2})
        client = make_vault_client(emulator=emulator)
        client.secrets.kv.v2.create_or_update_secret("k", {"v": "1"}, mount_point="team/kv")
        assert emulator.read("team/kv", "k") == {"v": "1"}
        with pytest.raises(hvac.exceptions.InvalidPath, match="no handler for route"):
            client.secrets.kv.v2.read_secret_version("k", raise_on_deleted_version=True)
