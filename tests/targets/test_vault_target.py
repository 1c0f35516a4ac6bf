"""Tests for the vault-kv target and its session, through hvac over HTTP.

Most tests take ``vault_server`` and so run twice: on the Vault emulator and on a real OpenBao
dev server (``tests/plugins/vault.py``, ``tests/plugins/openbao.py``). They watch the requests the
session sends through a :class:`Recorder` (the session's own ``requests.Session``), not through
a server's log, so the same assertions hold on both. Tests marked ``emulator_only`` need
something only the emulator offers; each says what.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hvac
import hvac.exceptions
import pytest
import requests
from structlog.testing import capture_logs

from rotator.errors import (
    ConfigError,
    RotatorError,
    TargetConflict,
    TargetError,
    TargetForbidden,
    TargetInvalid,
    TargetUnavailable,
)
from rotator.secrets import Secret
from rotator.targets.base import KeyMetadata, Target, TargetState
from rotator.targets.vault import (
    MAX_METADATA_KEY,
    MAX_METADATA_VALUE,
    AppRoleAuth,
    KubernetesAuth,
    TokenAuth,
    VaultAuth,
    VaultKvTarget,
    VaultSession,
    map_error,
)
from rotator_sandbox.kubernetes_config import generate_tls
from rotator_sandbox.vault import VaultEmulator
from tests.plugins.vault import ROOT_TOKEN, VaultClock, VaultServer

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PATH = "stackstate/agent"
KEY = "api_key"
OLD = Secret("old-value-0123456789")
NEW = Secret("new-value-9876543210")
CURRENT = "rotator.stackstate.io/api_key"
PREVIOUS = "previous.rotator.stackstate.io/api_key"
DATA_PATH = f"/v1/secret/data/{PATH}"
LOOKUP_SELF = "/v1/auth/token/lookup-self"
RENEW_SELF = "/v1/auth/token/renew-self"
#: A policy allowing the rotator's KV work on both test mounts.
KV_RULES = {"secret/*": ["create", "read", "update"], "kv/*": ["create", "read", "update"]}


def meta(value: Secret, key_id: int | None = 7, **extra: Any) -> KeyMetadata:
    """Metadata describing ``value``."""
    return KeyMetadata(
        key_id=key_id,
        key_name=f"agent-{key_id}",
        kind="service-token",
        fingerprint=value.fingerprint,
        expires_at=NOW + timedelta(days=30),
        rotated_at=NOW,
        **extra,
    )


def assert_hygienic(exc: BaseException, *secrets: str) -> None:
    """Neither the error's text nor that of anything chained to it holds a secret."""
    seen: BaseException | None = exc
    while seen is not None:
        for secret in secrets:
            assert secret not in str(seen)
            assert secret not in repr(seen)
        seen = seen.__cause__


@dataclass(frozen=True)
class Call:
    """One request a session sent, as answered."""

    method: str
    path: str
    status: int
    namespace: str | None
    body: bytes

    def json(self) -> Any:
        """The request body as JSON."""
        return json.loads(self.body)


class Recorder(requests.Session):
    """The ``requests.Session`` a VaultSession sends through, noting every answered call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.hooks["response"].append(self._note)

    def _note(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        body = request.body or b""
        self.calls.append(
            Call(
                method=str(request.method),
                path=urlsplit(str(request.url)).path,
                status=response.status_code,
                namespace=request.headers.get("X-Vault-Namespace"),
                body=body.encode() if isinstance(body, str) else body,
            )
        )

    def paths(self) -> list[str]:
        """The paths called, in order."""
        return [c.path for c in self.calls]

    def count(self, path: str, status: int | None = None) -> int:
        """How many calls went to ``path`` (answered ``status``, if given)."""
        return sum(1 for c in self.calls if c.path == path and status in (None, c.status))

    def mutating(self) -> list[Call]:
        """The calls that could change something (logins and token self-service aside)."""
        return [
            c
            for c in self.calls
            if c.method not in ("GET", "LIST") and not c.path.startswith("/v1/auth/")
        ]

    def clear(self) -> None:
        """Forget the calls so far."""
        self.calls.clear()


def data_writes(recorder: Recorder, mount: str = "secret") -> list[dict[str, Any]]:
    """Bodies of the KV v2 data writes the server answered 200."""
    return [
        c.json()
        for c in recorder.calls
        if c.method == "POST" and c.path.startswith(f"/v1/{mount}/data/") and c.status == 200
    ]


def concurrent_writer(vault_server: VaultServer, recorder: Recorder, times: int) -> None:
    """Make someone else write the secret right after each of our next ``times`` data reads.

    It is a requests response hook on the session's HTTP client (a public requests feature):
    the competing write, through another client, lands between our read and our check-and-set
    write, as a real concurrent writer would.
    """
    remaining = [times]

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if remaining[0] > 0 and request.method == "GET" and DATA_PATH in str(request.url):
            remaining[0] -= 1
            current = vault_server.read("secret", PATH) or {}
            vault_server.write("secret", PATH, {**current, "other": f"concurrent-{remaining[0]}"})

    recorder.hooks["response"].append(hook)


def logins(logs: list[dict[str, Any]]) -> int:
    """How many ``vault.login`` events the session logged."""
    return sum(1 for entry in logs if entry["event"] == "vault.login")


@pytest.fixture
def recorder() -> Recorder:
    """The recording HTTP session of the default ``session``."""
    return Recorder()


@pytest.fixture
def make_session(
    vault_server: VaultServer, vault_clock: VaultClock
) -> Iterator[Callable[..., VaultSession]]:
    """A factory of sessions on ``vault_server`` (its root token by default), closed at teardown.

    The session's clock is ``vault_clock`` on both backends (see ``tests/plugins/vault.py``).
    """
    sessions: list[VaultSession] = []

    def make(
        auth: VaultAuth | None = None,
        *,
        namespace: str | None = None,
        timeout: float = 5.0,
        http: requests.Session | None = None,
    ) -> VaultSession:
        session = VaultSession(
            url=vault_server.url,
            namespace=namespace,
            ca_file=None,
            timeout=timeout,
            auth=auth or TokenAuth(Secret(vault_server.root_token)),
            clock=vault_clock,
            http=http if http is not None else Recorder(),
        )
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def session(make_session: Callable[..., VaultSession], recorder: Recorder) -> VaultSession:
    """A root-token session on ``vault_server``, sending through ``recorder``."""
    return make_session(http=recorder)


@pytest.fixture
def target(session: VaultSession) -> VaultKvTarget:
    """A KV v2 target ``secret/stackstate/agent[api_key]``."""
    return VaultKvTarget(session, mount="secret", path=PATH, key=KEY, kv_version=2)


@pytest.fixture
def v1_target(session: VaultSession) -> VaultKvTarget:
    """A KV v1 target ``kv/stackstate/agent[api_key]``."""
    return VaultKvTarget(session, mount="kv", path=PATH, key=KEY, kv_version=1)


def v2_target(session: VaultSession, key: str = KEY) -> VaultKvTarget:
    """A KV v2 target at PATH on ``session``."""
    return VaultKvTarget(session, mount="secret", path=PATH, key=key, kv_version=2)


class TestIdentity:
    """Ids, descriptions and argument checks of VaultKvTarget."""

    def test_satisfies_the_target_protocol(self, target: VaultKvTarget) -> None:
        """The class implements the Target Protocol."""
        assert isinstance(target, Target)

    def test_id_names_mount_path_and_key(self, target: VaultKvTarget) -> None:
        """The id is ``vault-kv:mount/path[key]`` without a namespace."""
        assert target.id == "vault-kv:secret/stackstate/agent[api_key]"

    def test_id_carries_the_namespace(self, make_session: Callable[..., VaultSession]) -> None:
        """With a namespace the id starts with ``ns=<namespace>/``."""
        target = v2_target(make_session(namespace="team-a/"))
        assert target.id == "vault-kv:ns=team-a/secret/stackstate/agent[api_key]"

    def test_describe_is_one_line_with_engine_version(
        self, target: VaultKvTarget, vault_server: VaultServer
    ) -> None:
        """describe() names the engine version, path, key and Vault host on one line."""
        line = target.describe()
        assert "\n" not in line
        assert "KV v2 secret/stackstate/agent key api_key" in line
        assert urlsplit(vault_server.url).netloc in line

    def test_nothing_is_sent_before_first_use(
        self, recorder: Recorder, target: VaultKvTarget
    ) -> None:
        """Building a session and a target sends no request (the login is lazy)."""
        assert target.id
        assert recorder.calls == []

    def test_empty_path_is_refused(self, session: VaultSession) -> None:
        """A target without a path raises TargetInvalid."""
        with pytest.raises(TargetInvalid):
            VaultKvTarget(session, mount="secret", path="/", key=KEY, kv_version=2)


class TestKvV2Read:
    """Reading a KV v2 field."""

    def test_missing_path_reads_as_empty(self, target: VaultKvTarget) -> None:
        """A path that does not exist is an empty state, not an error."""
        state = target.read()
        assert (state.value, state.metadata, state.version) == (None, None, None)

    def test_value_and_version_are_read(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """The field's value is returned with the KV version number as the version."""
        vault_server.write("secret", PATH, {KEY: OLD.reveal()})
        vault_server.write("secret", PATH, {KEY: OLD.reveal(), "x": "1"})
        state = target.read()
        assert state.value == OLD
        assert state.version == "2"
        assert state.metadata is None

    def test_missing_field_reads_as_empty(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """A path without our field has no value."""
        vault_server.write("secret", PATH, {"other": "x"})
        assert target.read().value is None

    def test_soft_deleted_latest_version_reads_as_empty(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """A soft-deleted latest version counts as empty even though older versions exist."""
        vault_server.write("secret", PATH, {KEY: OLD.reveal()})
        vault_server.write("secret", PATH, {KEY: NEW.reveal()})
        vault_server.client().secrets.kv.v2.delete_latest_version_of_secret(path=PATH)
        state = target.read()
        assert state.value is None
        assert state.version == "2"

    def test_destroyed_latest_version_reads_as_empty(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """A destroyed latest version counts as empty."""
        vault_server.write("secret", PATH, {KEY: OLD.reveal()})
        vault_server.client().secrets.kv.v2.destroy_secret_versions(path=PATH, versions=[1])
        assert target.read().value is None

    def test_non_string_field_is_invalid(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """A field holding a number or a map raises TargetInvalid."""
        vault_server.write("secret", PATH, {KEY: {"nested": 1}})
        with pytest.raises(TargetInvalid, match="not a string"):
            target.read()

    def test_unknown_mount_is_invalid(self, session: VaultSession) -> None:
        """A mount that does not exist raises TargetInvalid rather than reading as empty."""
        target = VaultKvTarget(session, mount="nope", path=PATH, key=KEY, kv_version=2)
        with pytest.raises(TargetInvalid, match="no such mount"):
            target.read()

    def test_engine_version_mismatch_is_invalid(
        self, recorder: Recorder, session: VaultSession
    ) -> None:
        """A v2 target on a KV v1 mount raises TargetInvalid and writes nothing."""
        target = VaultKvTarget(session, mount="kv", path=PATH, key=KEY, kv_version=2)
        with pytest.raises(TargetInvalid, match="KV v1 engine"):
            target.write(NEW, meta(NEW))
        assert recorder.mutating() == []

    def test_mount_version_is_checked_once_per_session(
        self, recorder: Recorder, target: VaultKvTarget
    ) -> None:
        """The engine version lookup happens once, not before every call."""
        target.read()
        target.read()
        assert sum(1 for path in recorder.paths() if "sys/internal/ui/mounts" in path) == 1


class TestKvV2Write:
    """Writing a KV v2 field with check-and-set and custom_metadata."""

    def test_bootstrap_into_a_missing_path(
        self, vault_server: VaultServer, recorder: Recorder, target: VaultKvTarget
    ) -> None:
        """A missing path is created with cas=0 (create-only), holding only our field."""
        target.write(NEW, meta(NEW))
        assert vault_server.read("secret", PATH) == {KEY: NEW.reveal()}
        assert data_writes(recorder)[0]["options"] == {"cas": 0}
        assert target.read().value == NEW

    def test_other_fields_are_preserved(
        self, vault_server: VaultServer, recorder: Recorder, target: VaultKvTarget
    ) -> None:
        """Every other field at the path survives, and the write carries the version read."""
        vault_server.write("secret", PATH, {KEY: OLD.reveal(), "url": "https://sts", "n": 3})
        target.write(NEW, meta(NEW))
        assert vault_server.read("secret", PATH) == {
            KEY: NEW.reveal(),
            "url": "https://sts",
            "n": 3,
        }
        assert data_writes(recorder)[0]["options"] == {"cas": 1}

    def test_other_custom_metadata_and_key_settings_are_preserved(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """Other custom_metadata keys, max_versions and delete_version_after stay as they were."""
        vault_server.write("secret", PATH, {KEY: OLD.reveal()})
        vault_server.client().secrets.kv.v2.update_metadata(
            path=PATH,
            max_versions=4,
            delete_version_after="720h",
            custom_metadata={"owner": "team-x", "ticket": "OPS-1"},
        )
        target.write(NEW, meta(NEW))
        stored = vault_server.metadata("secret", PATH)
        assert stored is not None
        assert stored["custom_metadata"]["owner"] == "team-x"
        assert stored["custom_metadata"]["ticket"] == "OPS-1"
        assert stored["max_versions"] == 4
        assert stored["delete_version_after"] == "720h0m0s"

    def test_entries_for_current_and_previous_value_are_kept(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """After a rotation the replaced value's entry moves to the previous slot."""
        target.write(OLD, meta(OLD, key_id=6))
        target.write(NEW, meta(NEW, key_id=7))
        entries = vault_server.custom_metadata("secret", PATH)
        assert json.loads(entries[CURRENT])["key-id"] == 7
        assert json.loads(entries[PREVIOUS])["key-id"] == 6

    def test_rewriting_the_same_value_drops_the_previous_entry(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """Writing the value already held keeps only its own entry."""
        target.write(OLD, meta(OLD, key_id=6))
        target.write(NEW, meta(NEW, key_id=7))
        target.write(NEW, meta(NEW, key_id=7))
        assert PREVIOUS not in vault_server.custom_metadata("secret", PATH)
        assert target.read().metadata == meta(NEW, key_id=7)

    def test_hand_written_value_has_no_previous_entry(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """Replacing an adopted value (no entry describes it) leaves no previous entry."""
        vault_server.write("secret", PATH, {KEY: OLD.reveal()})
        target.write(NEW, meta(NEW))
        assert set(vault_server.custom_metadata("secret", PATH)) == {CURRENT}

    def test_write_over_a_soft_deleted_version(
        self, vault_server: VaultServer, recorder: Recorder, target: VaultKvTarget
    ) -> None:
        """Writing over a deleted latest version uses its number for check-and-set."""
        vault_server.write("secret", PATH, {KEY: OLD.reveal(), "other": "gone-too"})
        vault_server.client().secrets.kv.v2.delete_latest_version_of_secret(path=PATH)
        target.write(NEW, meta(NEW))
        assert data_writes(recorder)[0]["options"] == {"cas": 1}
        assert vault_server.read("secret", PATH) == {KEY: NEW.reveal()}

    def test_mount_with_cas_required_is_written(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """A mount that requires check-and-set accepts our writes."""
        vault_server.configure_mount("secret", cas_required=True)
        target.write(OLD, meta(OLD))
        target.write(NEW, meta(NEW))
        assert target.read().value == NEW

    def test_two_keys_at_one_path_keep_their_own_metadata(
        self, vault_server: VaultServer, session: VaultSession
    ) -> None:
        """Two managed keys at one path each keep their value and metadata."""
        first = v2_target(session, "a")
        second = v2_target(session, "b")
        first.write(OLD, meta(OLD, key_id=1))
        second.write(NEW, meta(NEW, key_id=2))
        assert first.read().metadata == meta(OLD, key_id=1)
        assert second.read().metadata == meta(NEW, key_id=2)
        assert vault_server.read("secret", PATH) == {"a": OLD.reveal(), "b": NEW.reveal()}

    def test_long_data_key_uses_a_hashed_metadata_key(
        self, vault_server: VaultServer, session: VaultSession
    ) -> None:
        """A data key too long for Vault's 128-character metadata keys is hashed, and works."""
        target = v2_target(session, "k" * 120)
        target.write(OLD, meta(OLD, key_id=1))
        target.write(NEW, meta(NEW, key_id=2))
        assert target.current_metadata_key.startswith("rotator.stackstate.io/sha256-")
        assert all(
            len(name) <= MAX_METADATA_KEY for name in vault_server.custom_metadata("secret", PATH)
        )
        assert target.read().metadata == meta(NEW, key_id=2)

    def test_long_names_are_left_out_to_fit_vault_limit(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """Metadata over 512 characters drops the key names and keeps the ids."""
        long_name = "n" * 200
        written = KeyMetadata(
            key_id=42,
            key_name=f"{long_name}-20261126T120000Z",
            kind="service-token",
            fingerprint=NEW.fingerprint,
            expires_at=NOW,
            rotated_at=NOW,
            previous_key_id=41,
            previous_key_name=f"{long_name}-20261026T120000Z",
        )
        target.write(NEW, written)
        assert len(vault_server.custom_metadata("secret", PATH)[CURRENT]) <= MAX_METADATA_VALUE
        found = target.read().metadata
        assert found is not None
        assert (found.key_id, found.previous_key_id, found.previous_key_name) == (42, 41, None)


class TestKvV2CheckAndSet:
    """Concurrent writers and the check-and-set retry."""

    def test_conflict_is_retried_once_from_a_fresh_read(
        self, vault_server: VaultServer, recorder: Recorder, target: VaultKvTarget
    ) -> None:
        """A check-and-set mismatch re-reads and writes again, keeping the other writer's field."""
        vault_server.write("secret", PATH, {KEY: OLD.reveal()})
        concurrent_writer(vault_server, recorder, times=1)
        target.write(NEW, meta(NEW))
        assert vault_server.read("secret", PATH) == {KEY: NEW.reveal(), "other": "concurrent-0"}
        posts = [c for c in recorder.calls if c.method == "POST" and "/data/" in c.path]
        assert [(c.json()["options"]["cas"], c.status) for c in posts] == [(1, 400), (2, 200)]
        assert target.read().metadata == meta(NEW)

    def test_gives_up_after_the_second_conflict(
        self, vault_server: VaultServer, recorder: Recorder, target: VaultKvTarget
    ) -> None:
        """Two check-and-set mismatches in a row raise TargetConflict; the other writer wins."""
        vault_server.write("secret", PATH, {KEY: OLD.reveal()})
        concurrent_writer(vault_server, recorder, times=2)
        with pytest.raises(TargetConflict, match="check-and-set failed twice") as caught:
            target.write(NEW, meta(NEW))
        assert caught.value.retryable
        assert vault_server.read("secret", PATH) == {KEY: OLD.reveal(), "other": "concurrent-0"}
        assert_hygienic(caught.value, NEW.reveal(), OLD.reveal(), vault_server.root_token)


# Emulator only: a data write that fails (or is processed but never answered) needs the
# emulator's fault injection; a real server cannot be told to fail one request.
@pytest.mark.emulator_only
class TestKvV2CrashSafety:
    """The metadata is written before the data, so a crash between them is harmless."""

    def test_metadata_written_data_not_still_describes_old_value(
        self, vault: VaultEmulator, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """When the data write never happens, read() returns the old value with its metadata."""
        target.write(OLD, meta(OLD, key_id=6))
        vault.fail_next("POST", rf"/v1/secret/data/{PATH}", 503)
        with pytest.raises(TargetUnavailable):
            target.write(NEW, meta(NEW, key_id=7, previous_key_id=6))
        entries = vault_server.custom_metadata("secret", PATH)
        assert json.loads(entries[CURRENT])["key-id"] == 7  # the metadata went first
        state = target.read()
        assert state.value == OLD
        assert state.managed_metadata == meta(OLD, key_id=6)

    def test_rerun_after_the_crash_completes_the_write(
        self, vault: VaultEmulator, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """Running the same write again after the crash ends with the new value described."""
        target.write(OLD, meta(OLD, key_id=6))
        vault.fail_next("POST", rf"/v1/secret/data/{PATH}", 503)
        with pytest.raises(TargetUnavailable):
            target.write(NEW, meta(NEW, key_id=7))
        target.write(NEW, meta(NEW, key_id=7))
        state = target.read()
        assert (state.value, state.managed_metadata) == (NEW, meta(NEW, key_id=7))
        assert json.loads(vault_server.custom_metadata("secret", PATH)[PREVIOUS])["key-id"] == 6

    def test_lost_answer_of_the_data_write_is_unavailable(
        self, vault: VaultEmulator, target: VaultKvTarget
    ) -> None:
        """A data write processed but unanswered raises TargetUnavailable; the new value is held."""
        target.write(OLD, meta(OLD, key_id=6))
        vault.drop_after_processing("POST", rf"/v1/secret/data/{PATH}")
        with pytest.raises(TargetUnavailable):
            target.write(NEW, meta(NEW, key_id=7))
        assert target.read().managed_metadata == meta(NEW, key_id=7)


class TestKvV2WriteMetadata:
    """write_metadata() changes only our metadata."""

    def test_updates_the_entry_of_the_value_held(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """The held value's entry is replaced; the data gets no new version."""
        target.write(OLD, meta(OLD, key_id=6))
        target.write(NEW, meta(NEW, key_id=7, previous_key_id=6))
        revoked = meta(NEW, key_id=7, previous_key_id=6, previous_revoked=True)
        target.write_metadata(revoked)
        state = target.read()
        assert state.metadata == revoked
        assert state.version == "2"
        assert json.loads(vault_server.custom_metadata("secret", PATH)[PREVIOUS])["key-id"] == 6

    def test_keeps_other_custom_metadata(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """Other custom_metadata keys survive a metadata-only update."""
        target.write(NEW, meta(NEW))
        entries = vault_server.custom_metadata("secret", PATH)
        vault_server.set_custom_metadata("secret", PATH, {**entries, "owner": "x"})
        target.write_metadata(meta(NEW, previous_revoked=True))
        assert vault_server.custom_metadata("secret", PATH)["owner"] == "x"

    def test_describes_an_adopted_value(
        self, vault_server: VaultServer, target: VaultKvTarget
    ) -> None:
        """Metadata for a value the rotator did not write makes it read as managed."""
        vault_server.write("secret", PATH, {KEY: OLD.reveal()})
        target.write_metadata(meta(OLD, key_id=None))
        assert target.read().managed_metadata == meta(OLD, key_id=None)


class TestKvV1:
    """KV v1: the value field plus a sibling metadata field, written in one request."""

    def test_missing_path_reads_as_empty(self, v1_target: VaultKvTarget) -> None:
        """A missing v1 path is an empty state."""
        state = v1_target.read()
        assert (state.value, state.metadata, state.version) == (None, None, None)

    def test_write_sets_value_and_sibling_metadata_keeping_other_fields(
        self, vault_server: VaultServer, recorder: Recorder, v1_target: VaultKvTarget
    ) -> None:
        """One PUT holds our value, ``_rotator.<key>`` and every other field."""
        vault_server.write("kv", PATH, {KEY: OLD.reveal(), "url": "https://sts"})
        v1_target.write(NEW, meta(NEW))
        stored = vault_server.read("kv", PATH)
        assert stored is not None
        assert stored[KEY] == NEW.reveal()
        assert stored["url"] == "https://sts"
        assert json.loads(stored["_rotator.api_key"])["fingerprint"] == NEW.fingerprint
        assert [c.method for c in recorder.mutating() if c.path == f"/v1/kv/{PATH}"] == ["PUT"]

    def test_v1_target_on_a_v2_mount_is_invalid(self, session: VaultSession) -> None:
        """A v1 target on a KV v2 mount raises TargetInvalid instead of writing plain data."""
        target = VaultKvTarget(session, mount="secret", path=PATH, key=KEY, kv_version=1)
        with pytest.raises(TargetInvalid, match="KV v2 engine"):
            target.write(NEW, meta(NEW))


class TestErrors:
    """Failures are translated into the rotator's error tree, without values or tokens."""

    # Emulator only: sealing needs the emulator's seal switch (a dev OpenBao would need its
    # unseal key handed back after every test).
    @pytest.mark.emulator_only
    def test_sealed_vault_is_unavailable_and_value_unchanged(
        self, vault: VaultEmulator, target: VaultKvTarget
    ) -> None:
        """A sealed Vault raises TargetUnavailable and the stored value stays as it was."""
        target.write(OLD, meta(OLD))
        vault.seal()
        with pytest.raises(TargetUnavailable, match="sealed") as caught:
            target.write(NEW, meta(NEW))
        vault.unseal()
        assert target.read().value == OLD
        assert caught.value.retryable

    # Emulator only: as above, sealing.
    @pytest.mark.emulator_only
    def test_sealed_before_first_login_is_unavailable(
        self, vault: VaultEmulator, make_session: Callable[..., VaultSession]
    ) -> None:
        """A login against a sealed Vault is a temporary failure, not a credentials problem."""
        vault.add_approle("rotator-role", "approle-secret-id-1")
        vault.seal()
        session = make_session(AppRoleAuth("rotator-role", Secret("approle-secret-id-1")))
        with pytest.raises(TargetUnavailable):
            v2_target(session).read()

    def test_token_without_policy_is_forbidden(
        self, vault_server: VaultServer, make_session: Callable[..., VaultSession]
    ) -> None:
        """A valid token lacking the policy raises TargetForbidden saying permission denied."""
        token = vault_server.create_token(["nothing"])
        target = v2_target(make_session(TokenAuth(Secret(token))))
        with pytest.raises(TargetForbidden, match="permission denied by vault policy") as caught:
            target.read()
        assert caught.value.message.startswith(target.id)
        assert not caught.value.retryable
        assert_hygienic(caught.value, token)

    def test_read_only_policy_cannot_write(
        self, vault_server: VaultServer, make_session: Callable[..., VaultSession]
    ) -> None:
        """A token that may only read raises TargetForbidden on write and changes nothing."""
        vault_server.set_policy(
            "reader", {"secret/data/*": ["read"], "secret/metadata/*": ["read"]}
        )
        session = make_session(TokenAuth(Secret(vault_server.create_token(["reader"]))))
        with pytest.raises(TargetForbidden, match="by vault policy"):
            v2_target(session).write(NEW, meta(NEW))
        assert vault_server.read("secret", PATH) is None

    def test_least_privilege_policy_is_enough(
        self, vault_server: VaultServer, make_session: Callable[..., VaultSession]
    ) -> None:
        """The documented policy (data create/read/update, metadata create/read/update) works."""
        vault_server.set_policy(
            "rotator",
            {
                "secret/data/stackstate/*": ["create", "read", "update"],
                "secret/metadata/stackstate/*": ["create", "read", "update"],
            },
        )
        session = make_session(TokenAuth(Secret(vault_server.create_token(["rotator"]))))
        target = v2_target(session)
        target.write(OLD, meta(OLD))
        target.write(NEW, meta(NEW))
        assert target.read().managed_metadata == meta(NEW)

    # Emulator only: a 500 answer needs fault injection.
    @pytest.mark.emulator_only
    def test_server_error_is_unavailable(self, vault: VaultEmulator, target: VaultKvTarget) -> None:
        """A 500 answer raises TargetUnavailable."""
        target.read()
        vault.fail_next("GET", rf"/v1/secret/data/{PATH}", 500)
        with pytest.raises(TargetUnavailable, match="500"):
            target.read()

    # Emulator only: a slow answer needs the emulator's injected latency.
    @pytest.mark.emulator_only
    def test_timeout_is_unavailable(
        self, vault: VaultEmulator, make_session: Callable[..., VaultSession]
    ) -> None:
        """No answer within the session timeout raises TargetUnavailable naming the timeout."""
        target = v2_target(make_session(timeout=0.2))
        target.read()
        vault.add_latency("GET", rf"/v1/secret/data/{PATH}", 1.0, count=1)
        with pytest.raises(TargetUnavailable, match=r"within 0\.2s"):
            target.read()

    def test_connection_refused_is_unavailable(self, vault_clock: VaultClock) -> None:
        """A Vault that is not listening raises TargetUnavailable."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        session = VaultSession(
            url=f"http://127.0.0.1:{port}",
            namespace=None,
            ca_file=None,
            timeout=5,
            auth=TokenAuth(Secret(ROOT_TOKEN)),
            clock=vault_clock,
        )
        try:
            with pytest.raises(TargetUnavailable, match="cannot connect"):
                v2_target(session).read()
        finally:
            session.close()


# Emulator only: serving HTTPS with a certificate of a private CA is an emulator setting.
@pytest.mark.emulator_only
class TestTls:
    """TLS is verified; ca_file adds a private CA."""

    @pytest.fixture
    def tls_vault(
        self, tmp_path: Path, make_vault: Callable[..., VaultEmulator]
    ) -> tuple[VaultEmulator, Path]:
        """An emulator serving HTTPS with a certificate of a private CA, and that CA's file."""
        ca, cert, key = generate_tls(tmp_path / "tls")
        return make_vault(tls=(str(cert), str(key))), ca

    def tls_session(
        self, emulator: VaultEmulator, ca: Path | None, clock: VaultClock
    ) -> VaultSession:
        """A root-token session on the HTTPS emulator."""
        return VaultSession(
            url=emulator.url,
            namespace=None,
            ca_file=ca,
            timeout=5,
            auth=TokenAuth(Secret(ROOT_TOKEN)),
            clock=clock,
        )

    def test_ca_file_makes_a_private_ca_trusted(
        self, tls_vault: tuple[VaultEmulator, Path], vault_clock: VaultClock
    ) -> None:
        """With the private CA in ca_file the HTTPS Vault is trusted."""
        emulator, ca = tls_vault
        session = self.tls_session(emulator, ca, vault_clock)
        target = v2_target(session)
        try:
            target.write(NEW, meta(NEW))
            assert target.read().value == NEW
        finally:
            session.close()

    def test_unknown_ca_is_unavailable(
        self, tls_vault: tuple[VaultEmulator, Path], vault_clock: VaultClock
    ) -> None:
        """Without ca_file a certificate of an unknown CA fails the handshake."""
        emulator, _ = tls_vault
        session = self.tls_session(emulator, None, vault_clock)
        try:
            with pytest.raises(TargetUnavailable, match="TLS"):
                v2_target(session).read()
        finally:
            session.close()
        assert emulator.log == []


#: Concurrent readers of the pool tests.
READERS = 6


class TestPoolSize:
    """The session's own HTTP session keeps ``pool_size`` connections to Vault."""

    def test_pool_size_reaches_the_http_adapters(
        self, vault_server: VaultServer, vault_clock: VaultClock
    ) -> None:
        """Without a given ``http`` the session's adapters hold ``pool_size`` connections."""
        session = VaultSession(
            url=vault_server.url,
            namespace=None,
            ca_file=None,
            timeout=5,
            auth=TokenAuth(Secret(vault_server.root_token)),
            clock=vault_clock,
            pool_size=3,
        )
        try:
            adapter = session.client().adapter.session.get_adapter(vault_server.url)
            assert adapter.poolmanager.connection_pool_kw["maxsize"] == 3
        finally:
            session.close()

    # Emulator only: the overlap of the readers comes from the emulator's injected latency.
    @pytest.mark.emulator_only
    @pytest.mark.parametrize(("pool_size", "discarded"), [(READERS, False), (2, True)])
    def test_concurrent_readers_fit_a_pool_of_their_number(
        self,
        vault: VaultEmulator,
        vault_server: VaultServer,
        vault_clock: VaultClock,
        caplog: pytest.LogCaptureFixture,
        pool_size: int,
        discarded: bool,
    ) -> None:
        """READERS overlapping reads reuse a pool of READERS connections; a smaller pool makes
        urllib3 open extra ones and discard them ("Connection pool is full")."""
        session = VaultSession(
            url=vault_server.url,
            namespace=None,
            ca_file=None,
            timeout=5,
            auth=TokenAuth(Secret(vault_server.root_token)),
            clock=vault_clock,
            pool_size=pool_size,
        )
        target = v2_target(session)
        start = threading.Barrier(READERS)

        def read(_: int) -> TargetState:
            start.wait(timeout=5)
            return target.read()

        try:
            target.write(NEW, meta(NEW))
            vault.add_latency("GET", rf"^/v1/secret/data/{PATH}$", 0.3)
            watched = caplog.at_level(logging.WARNING, logger="urllib3.connectionpool")
            with watched, ThreadPoolExecutor(max_workers=READERS) as pool:
                states = list(pool.map(read, range(READERS)))
        finally:
            session.close()
        assert [state.value for state in states] == [NEW] * READERS
        full = [r for r in caplog.records if "Connection pool is full" in r.getMessage()]
        assert bool(full) is discarded

    def test_pool_size_below_one_is_refused(self, vault_server: VaultServer) -> None:
        """A pool without connections is a ConfigError."""
        with pytest.raises(ConfigError, match="pool size must be at least 1"):
            VaultSession(
                url=vault_server.url,
                namespace=None,
                ca_file=None,
                timeout=5,
                auth=TokenAuth(Secret("t")),
                pool_size=0,
            )


class TestMapError:
    """map_error() leaves no hvac or requests failure unmapped."""

    @pytest.mark.parametrize(
        ("exc", "expected"),
        [
            (
                hvac.exceptions.Forbidden(errors=["1 error occurred:\n\t* permission denied\n\n"]),
                TargetForbidden,
            ),
            (hvac.exceptions.Unauthorized("no"), TargetForbidden),
            (hvac.exceptions.InvalidRequest(errors=["no data provided"]), TargetInvalid),
            (
                hvac.exceptions.InvalidRequest(
                    errors=["check-and-set parameter did not match the current version"]
                ),
                TargetConflict,
            ),
            (hvac.exceptions.InvalidPath(errors=["no handler for route"]), TargetInvalid),
            (hvac.exceptions.RateLimitExceeded(), TargetUnavailable),
            (hvac.exceptions.InternalServerError(), TargetUnavailable),
            (hvac.exceptions.VaultNotInitialized(), TargetUnavailable),
            (hvac.exceptions.BadGateway(), TargetUnavailable),
            (hvac.exceptions.VaultDown(errors=["Vault is sealed"]), TargetUnavailable),
            (hvac.exceptions.UnexpectedError(), TargetUnavailable),
            (hvac.exceptions.ParamValidationError(), TargetUnavailable),
            (requests.ConnectTimeout(), TargetUnavailable),
            (requests.ReadTimeout(), TargetUnavailable),
            (requests.exceptions.SSLError(), TargetUnavailable),
            (requests.ConnectionError(), TargetUnavailable),
            (requests.exceptions.InvalidJSONError(), TargetUnavailable),
            (ValueError("boom"), TargetUnavailable),
        ],
    )
    def test_every_failure_maps_to_a_target_error(
        self, exc: BaseException, expected: type[TargetError]
    ) -> None:
        """Each hvac exception class and requests failure maps to the expected TargetError."""
        mapped = map_error(exc, where="vault-kv:secret/p[k]", timeout=5)
        assert type(mapped) is expected
        assert str(mapped).startswith("vault-kv:secret/p[k]: ")

    def test_every_hvac_exception_class_is_covered(self) -> None:
        """No VaultError subclass falls through to a non-TargetError."""
        classes = [
            c
            for c in vars(hvac.exceptions).values()
            if isinstance(c, type) and issubclass(c, hvac.exceptions.VaultError)
        ]
        assert len(classes) > 10
        for cls in classes:
            assert isinstance(map_error(cls(), where="w", timeout=1), TargetError)

    def test_login_refusals_need_a_human(self) -> None:
        """A refused login (400 invalid role or secret ID) is TargetForbidden, not TargetInvalid."""
        exc = hvac.exceptions.InvalidRequest(errors=["invalid role or secret ID"])
        assert isinstance(map_error(exc, where="w", timeout=1, login=True), TargetForbidden)

    def test_multierror_lists_are_quoted_flat(self) -> None:
        """Vault's ``2 errors occurred`` formatting becomes one readable line."""
        exc = hvac.exceptions.Forbidden(
            errors=["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"]
        )
        mapped = map_error(exc, where="w", timeout=1, auth="approle at auth/approle")
        assert str(mapped) == (
            "w: permission denied, vault auth (approle at auth/approle) token is invalid, "
            "expired or revoked"
        )

    @pytest.mark.parametrize(
        ("verdict", "says"),
        [
            ("valid", "w: permission denied by vault policy: permission denied"),
            ("invalid", "w: permission denied, vault auth (token) token is invalid, expired"),
            ("unknown", "w: permission denied, vault auth (token): invalid token, or a token "),
        ],
    )
    def test_a_plain_403_is_what_the_verdict_says(self, verdict: Any, says: str) -> None:
        """OpenBao's bare ``permission denied`` is worded by what lookup-self found out."""
        exc = hvac.exceptions.Forbidden(errors=["permission denied"])
        mapped = map_error(exc, where="w", timeout=1, verdict=verdict)
        assert isinstance(mapped, TargetForbidden)
        assert str(mapped).startswith(says)


class TestStaticToken:
    """A configured token: looked up, renewed when it can be, never replaced."""

    def test_lookup_self_learns_the_ttl_once(
        self, vault_server: VaultServer, make_session: Callable[..., VaultSession]
    ) -> None:
        """The first call looks the token up; later calls do not."""
        vault_server.set_policy("rotator", KV_RULES)
        recorder = Recorder()
        token = vault_server.create_token(["rotator"])
        target = v2_target(make_session(TokenAuth(Secret(token)), http=recorder))
        target.read()
        target.read()
        assert recorder.count(LOOKUP_SELF) == 1

    def test_renewed_when_less_than_a_third_of_ttl_remains(
        self,
        vault_server: VaultServer,
        vault_clock: VaultClock,
        make_session: Callable[..., VaultSession],
    ) -> None:
        """With 15 of 60 minutes left (by the session's clock) the token is renewed first."""
        vault_server.set_policy("rotator", KV_RULES)
        token = vault_server.create_token(["rotator"], ttl=timedelta(hours=1))
        recorder = Recorder()
        target = v2_target(make_session(TokenAuth(Secret(token)), http=recorder))
        target.read()
        vault_clock.advance(timedelta(minutes=30))
        target.read()
        assert recorder.count(RENEW_SELF) == 0
        vault_clock.advance(timedelta(minutes=15))
        target.read()
        assert recorder.count(RENEW_SELF, status=200) == 1
        assert (vault_server.lookup_token(token) or {})["ttl"] > 3500

    def test_revoked_token_is_forbidden_without_login(
        self, vault_server: VaultServer, make_session: Callable[..., VaultSession]
    ) -> None:
        """A revoked static token raises TargetForbidden naming the vault auth; nothing retries."""
        vault_server.set_policy("rotator", KV_RULES)
        token = vault_server.create_token(["rotator"])
        recorder = Recorder()
        target = v2_target(make_session(TokenAuth(Secret(token)), http=recorder))
        target.read()
        vault_server.revoke_token(token)
        recorder.clear()
        with pytest.raises(TargetForbidden, match=r"vault auth \(token\).*invalid") as caught:
            target.read()
        # The refused read, then lookup-self to tell a dead token from a policy denial.
        assert recorder.paths() == [DATA_PATH, LOOKUP_SELF]
        assert_hygienic(caught.value, token)

    def test_unknown_token_fails_at_first_call(
        self, make_session: Callable[..., VaultSession]
    ) -> None:
        """A token the server does not know raises TargetForbidden at the first call."""
        session = make_session(TokenAuth(Secret("hvs.not-a-real-token-123")))
        with pytest.raises(TargetForbidden, match=r"vault auth \(token\).*invalid") as caught:
            v2_target(session).read()
        assert_hygienic(caught.value, "hvs.not-a-real-token-123")

    def test_expired_non_renewable_token_is_forbidden(
        self,
        vault_server: VaultServer,
        vault_clock: VaultClock,
        make_session: Callable[..., VaultSession],
    ) -> None:
        """A static token past its TTL (by the session's clock) raises without asking Vault."""
        vault_server.set_policy("rotator", KV_RULES)
        token = vault_server.create_token(["rotator"], ttl=timedelta(hours=1), renewable=False)
        recorder = Recorder()
        target = v2_target(make_session(TokenAuth(Secret(token)), http=recorder))
        target.read()
        vault_clock.advance(timedelta(minutes=59))
        target.read()  # low, not renewable: used as it is until it expires
        vault_clock.advance(timedelta(minutes=2))
        recorder.clear()
        with pytest.raises(TargetForbidden, match="expired"):
            target.read()
        assert recorder.calls == []

    def test_root_token_is_never_renewed(
        self, vault_clock: VaultClock, recorder: Recorder, target: VaultKvTarget
    ) -> None:
        """A token without a TTL is used forever without renewal."""
        target.read()
        vault_clock.advance(timedelta(days=400))
        target.read()
        assert recorder.count(RENEW_SELF) == 0


class TestForbiddenDiagnosis:
    """A 403 says nothing reliable about why (OpenBao: bare ``permission denied``): the session
    finds out — a new login for AppRole/Kubernetes, ``lookup-self`` for a static token."""

    def test_revoked_approle_token_is_recovered_by_a_new_login(
        self, vault_server: VaultServer, make_session: Callable[..., VaultSession]
    ) -> None:
        """After its token is revoked, an AppRole session logs in again and the write succeeds."""
        vault_server.set_policy("rotator", KV_RULES)
        role_id, secret_id = vault_server.add_approle("rotator", ["rotator"])
        session = make_session(AppRoleAuth(role_id=role_id, secret_id=Secret(secret_id)))
        target = v2_target(session)
        target.write(OLD, meta(OLD))
        first = session.client().token
        vault_server.revoke_token(first)
        with capture_logs() as logs:
            target.write(NEW, meta(NEW))
        assert logins(logs) == 1
        assert session.client().token != first
        assert vault_server.read("secret", PATH) == {KEY: NEW.reveal()}
        assert next(e for e in logs if e["event"] == "vault.forbidden")["action"] == "login"

    def test_policy_denial_after_a_new_login_is_reported_as_such(
        self, vault_server: VaultServer, make_session: Callable[..., VaultSession]
    ) -> None:
        """A 403 for a login session: one new login, one retry, then "denied by vault policy"."""
        vault_server.set_policy("reader", {"secret/data/*": ["read"]})
        role_id, secret_id = vault_server.add_approle("reader", ["reader"])
        recorder = Recorder()
        session = make_session(AppRoleAuth(role_id, Secret(secret_id)), http=recorder)
        with pytest.raises(TargetForbidden, match="permission denied by vault policy") as caught:
            v2_target(session).write(NEW, meta(NEW))
        assert recorder.count("/v1/auth/approle/login") == 2
        assert recorder.count(f"/v1/secret/metadata/{PATH}", status=403) == 2
        assert vault_server.read("secret", PATH) is None
        assert_hygienic(caught.value, secret_id, session.client().token)

    def test_static_revoked_token_reports_an_invalid_token(
        self, vault_server: VaultServer, make_session: Callable[..., VaultSession]
    ) -> None:
        """A revoked static token (with the default policy) is reported invalid, not denied."""
        vault_server.set_policy("rotator", KV_RULES)
        token = vault_server.create_token(["rotator"])
        target = v2_target(make_session(TokenAuth(Secret(token))))
        target.write(OLD, meta(OLD))
        vault_server.revoke_token(token)
        with pytest.raises(TargetForbidden) as caught:
            target.write(NEW, meta(NEW))
        assert "invalid" in str(caught.value)
        assert "by vault policy" not in str(caught.value)
        assert caught.value.category == "fix-permissions"
        assert_hygienic(caught.value, token)

    def test_static_token_without_permission_reports_policy_denied(
        self, vault_server: VaultServer, make_session: Callable[..., VaultSession]
    ) -> None:
        """A valid static token refused on the path is a policy denial (lookup-self answers)."""
        vault_server.set_policy("elsewhere", {"secret/data/other/*": ["read"]})
        token = vault_server.create_token(["elsewhere"])
        recorder = Recorder()
        target = v2_target(make_session(TokenAuth(Secret(token)), http=recorder))
        with pytest.raises(TargetForbidden, match="permission denied by vault policy") as caught:
            target.read()
        assert "invalid" not in str(caught.value)
        assert recorder.count(LOOKUP_SELF, status=200) >= 1
        assert_hygienic(caught.value, token)

    def test_static_token_without_default_policy_says_both_causes(
        self, vault_server: VaultServer, make_session: Callable[..., VaultSession]
    ) -> None:
        """Without ``default``, lookup-self is refused too: the error names both possibilities."""
        vault_server.set_policy("elsewhere", {"secret/data/other/*": ["read"]})
        token = vault_server.create_token(["elsewhere"], no_default_policy=True)
        target = v2_target(make_session(TokenAuth(Secret(token))))
        with pytest.raises(TargetForbidden, match="without the default policy") as caught:
            target.read()
        assert_hygienic(caught.value, token)

    def test_token_without_default_policy_still_works_where_allowed(
        self,
        vault_server: VaultServer,
        vault_clock: VaultClock,
        make_session: Callable[..., VaultSession],
    ) -> None:
        """A token that may not look itself up is used with an unknown TTL, never renewed."""
        vault_server.set_policy("rotator", KV_RULES)
        token = vault_server.create_token(["rotator"], no_default_policy=True)
        recorder = Recorder()
        target = v2_target(make_session(TokenAuth(Secret(token)), http=recorder))
        target.write(NEW, meta(NEW))
        vault_clock.advance(timedelta(minutes=55))
        assert target.read().value == NEW
        assert recorder.count(LOOKUP_SELF, status=403) == 1
        assert recorder.count(RENEW_SELF) == 0


class TestLoginAuth:
    """AppRole and Kubernetes logins, renewals and re-logins."""

    @pytest.fixture
    def approle(self, vault_server: VaultServer) -> AppRoleAuth:
        """An AppRole the server accepts, with a policy covering the KV mounts."""
        vault_server.set_policy("rotator", KV_RULES)
        role_id, secret_id = vault_server.add_approle("rotator", ["rotator"])
        return AppRoleAuth(role_id=role_id, secret_id=Secret(secret_id))

    @pytest.fixture
    def jwt_file(self, tmp_path: Path, vault: VaultEmulator) -> Path:
        """A projected service-account token file the emulator accepts for role ``rotator``."""
        vault.set_policy("rotator", {"secret/*": ["create", "read", "update"]})
        vault.add_kubernetes_role("rotator", "jwt-one", ["rotator"], ttl=timedelta(hours=1))
        path = tmp_path / "token"
        path.write_text("jwt-one\n")
        return path

    def test_approle_logs_in_lazily_once(
        self, make_session: Callable[..., VaultSession], approle: AppRoleAuth
    ) -> None:
        """The first call logs in; later calls reuse the token."""
        recorder = Recorder()
        target = v2_target(make_session(approle, http=recorder))
        assert recorder.calls == []
        target.write(NEW, meta(NEW))
        target.read()
        assert recorder.count("/v1/auth/approle/login") == 1

    def test_approle_token_renewed_when_ttl_low(
        self,
        vault_clock: VaultClock,
        make_session: Callable[..., VaultSession],
        approle: AppRoleAuth,
    ) -> None:
        """Below a third of the TTL the token is renewed, not replaced by a new login."""
        recorder = Recorder()
        session = make_session(approle, http=recorder)
        target = v2_target(session)
        target.read()
        token = session.client().token
        vault_clock.advance(timedelta(minutes=45))
        target.read()
        assert session.client().token == token
        assert recorder.count("/v1/auth/approle/login") == 1
        assert recorder.count(RENEW_SELF, status=200) == 1
        vault_clock.advance(timedelta(minutes=45))  # past the original expiry
        target.read()
        assert recorder.count("/v1/auth/approle/login") == 1

    def test_approle_relogin_after_revocation(
        self,
        vault_server: VaultServer,
        make_session: Callable[..., VaultSession],
        approle: AppRoleAuth,
    ) -> None:
        """A revoked token makes the session log in again and retry the call once."""
        recorder = Recorder()
        session = make_session(approle, http=recorder)
        target = v2_target(session)
        target.write(OLD, meta(OLD))
        vault_server.revoke_token(session.client().token)
        target.write(NEW, meta(NEW))
        assert recorder.count("/v1/auth/approle/login") == 2
        assert target.read().managed_metadata == meta(NEW)

    # Emulator only: the token must reach its max TTL, which takes the server's clock moving.
    @pytest.mark.emulator_only
    def test_relogin_when_renewal_hits_max_ttl(
        self,
        vault: VaultEmulator,
        vault_clock: VaultClock,
        make_session: Callable[..., VaultSession],
    ) -> None:
        """A token that renewal can no longer extend is replaced by a new login."""
        vault.add_approle(
            "role-2",
            "approle-secret-id-2",
            ["root"],
            ttl=timedelta(hours=1),
            max_ttl=timedelta(hours=1),
        )
        recorder = Recorder()
        session = make_session(AppRoleAuth("role-2", Secret("approle-secret-id-2")), http=recorder)
        target = v2_target(session)
        target.read()
        vault_clock.advance(timedelta(minutes=50))
        target.read()
        assert recorder.count("/v1/auth/approle/login") == 2

    def test_bad_secret_id_is_forbidden(
        self, make_session: Callable[..., VaultSession], approle: AppRoleAuth
    ) -> None:
        """A refused AppRole login raises TargetForbidden without the secret id in it."""
        session = make_session(AppRoleAuth(approle.role_id, Secret("wrong-secret-id-999")))
        with pytest.raises(TargetForbidden, match="login refused") as caught:
            v2_target(session).read()
        assert_hygienic(caught.value, "wrong-secret-id-999", approle.secret_id.reveal())

    # Emulator only: the emulator's Kubernetes auth accepts fixed JWTs; OpenBao's needs a
    # TokenReview API (tests/targets/test_vault_openbao.py covers it end to end).
    @pytest.mark.emulator_only
    def test_kubernetes_relogin_rereads_the_jwt_file(
        self,
        vault: VaultEmulator,
        vault_server: VaultServer,
        make_session: Callable[..., VaultSession],
        jwt_file: Path,
    ) -> None:
        """After a revocation the new login uses the JWT now in the file (kubelet rotated it)."""
        recorder = Recorder()
        session = make_session(KubernetesAuth(role="rotator", jwt_file=jwt_file), http=recorder)
        target = v2_target(session)
        target.write(OLD, meta(OLD))
        jwt_file.write_text("jwt-two\n")
        vault.add_kubernetes_role("rotator", "jwt-two", ["rotator"], ttl=timedelta(hours=1))
        vault_server.revoke_token(session.client().token)
        target.write(NEW, meta(NEW))
        assert recorder.count("/v1/auth/kubernetes/login") == 2
        assert target.read().value == NEW

    def test_missing_jwt_file_is_forbidden(
        self, make_session: Callable[..., VaultSession], tmp_path: Path
    ) -> None:
        """An unreadable service-account token file raises TargetForbidden naming the file."""
        missing = tmp_path / "absent"
        session = make_session(KubernetesAuth(role="rotator", jwt_file=missing))
        with pytest.raises(TargetForbidden, match="absent"):
            session.ensure_fresh()

    # Emulator only: the failing retry needs fault injection.
    @pytest.mark.emulator_only
    def test_failed_retry_after_relogin_is_translated(
        self,
        vault: VaultEmulator,
        make_session: Callable[..., VaultSession],
        approle: AppRoleAuth,
    ) -> None:
        """When the call fails again after the re-login, its error is translated, not raw."""
        recorder = Recorder()
        session = make_session(approle, http=recorder)
        target = v2_target(session)
        target.read()
        vault.revoke_token(session.client().token)
        vault.fail_next("GET", rf"/v1/secret/data/{PATH}", 500, count=2)
        with pytest.raises(TargetUnavailable):
            target.read()
        assert recorder.count("/v1/auth/approle/login") == 1  # a 500 is no reason to log in


class TestNamespaces:
    """A session with a namespace works inside it only."""

    def test_namespaced_target_is_isolated(
        self, vault_server: VaultServer, make_session: Callable[..., VaultSession]
    ) -> None:
        """A write through namespace team-a lands there and not in the root namespace."""
        vault_server.add_namespace("team-a")
        vault_server.write("secret", PATH, {KEY: OLD.reveal()})
        recorder = Recorder()
        target = v2_target(make_session(namespace="team-a", http=recorder))
        assert target.read().value is None
        target.write(NEW, meta(NEW))
        assert vault_server.read("secret", PATH, namespace="team-a") == {KEY: NEW.reveal()}
        assert vault_server.read("secret", PATH) == {KEY: OLD.reveal()}
        assert {c.namespace for c in recorder.calls} == {"team-a"}

    def test_login_happens_in_the_namespace(
        self, vault_server: VaultServer, make_session: Callable[..., VaultSession]
    ) -> None:
        """An AppRole defined in the namespace logs in there and can write there."""
        vault_server.add_namespace("team-b")
        vault_server.set_policy("rotator", KV_RULES, namespace="team-b")
        role_id, secret_id = vault_server.add_approle("role-b", ["rotator"], namespace="team-b")
        session = make_session(AppRoleAuth(role_id, Secret(secret_id)), namespace="team-b")
        v2_target(session).write(NEW, meta(NEW))
        assert vault_server.read("secret", PATH, namespace="team-b") == {KEY: NEW.reveal()}
        assert vault_server.read("secret", PATH) is None


# Emulator only: most failure paths here need sealing or fault injection.
@pytest.mark.emulator_only
class TestSecretHygiene:
    """No value, secret id or token appears in any error the target raises."""

    def test_no_value_or_token_in_any_error(
        self, vault: VaultEmulator, make_session: Callable[..., VaultSession]
    ) -> None:
        """Errors from many failure paths never contain a value or an emulator-issued token."""
        vault.set_policy("rotator", {"secret/*": ["create", "read", "update"]})
        vault.add_approle("role-h", "hygiene-secret-id", ["rotator"], ttl=timedelta(hours=1))
        session = make_session(AppRoleAuth("role-h", Secret("hygiene-secret-id")))
        target = v2_target(session)
        target.write(OLD, meta(OLD))
        issued = [session.client().token]
        limited = vault.create_token(["nothing"])
        issued.append(limited)
        no_policy = v2_target(make_session(TokenAuth(Secret(limited))))
        errors: list[RotatorError] = []

        def attempt(action: Callable[[], object]) -> None:
            try:
                action()
            except RotatorError as exc:
                errors.append(exc)

        vault.seal()
        attempt(lambda: target.write(NEW, meta(NEW)))
        vault.unseal()
        attempt(lambda: no_policy.write(NEW, meta(NEW)))
        for status in (400, 403, 404, 500, 502, 503):
            vault.fail_next("POST", rf"/v1/secret/data/{PATH}", status)
            attempt(lambda: target.write(NEW, meta(NEW)))
        vault.fail_next("POST", r"/v1/auth/approle/login", 400)
        vault.revoke_token(session.client().token)
        attempt(target.read)
        vault.write("secret", PATH, {KEY: 12345})
        attempt(target.read)
        assert len(errors) >= 9
        for exc in errors:
            assert_hygienic(exc, OLD.reveal(), NEW.reveal(), "hygiene-secret-id", *issued)
