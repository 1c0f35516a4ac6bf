"""The contract every Target keeps, checked once for each target type over its real backend.

Each case is a real adapter on a real backend: ``kubernetes-secret`` on the Kubernetes emulator
(over HTTP, through the official client), ``vault-kv`` v2 and v1 through hvac on the Vault
emulator and on a real OpenBao dev server, ``file`` in each of its formats in a temporary
directory. The contract:

- **metadata round-trip** — ``read()`` returns the value and exactly the metadata written with
  it; ``write_metadata()`` replaces the metadata and leaves the value alone;
- **other data preserved** — whatever else lives at the location (other Secret keys, labels and
  annotations; other Vault fields; other lines or YAML fields of the file) survives a write and
  a metadata update;
- **conflicting writer** — a value another writer put at our data key is never taken for ours
  (it reads without metadata, as an adopted value), and the next write replaces it with ours;
  where the backend offers optimistic concurrency (a Secret's ``resourceVersion``, KV v2's
  check-and-set), a write that meets a concurrent writer detects it, reads again and keeps that
  writer's change. KV v1 and files have no such primitive (their modules say so), so they are
  not in that last case.

Details that belong to one type (request sequences, modes, comments, CAS numbers) stay in that
type's own test module.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
import requests

from rotator.clients.kubernetes import KubeClients
from rotator.clients.vault import TokenAuth, VaultSession
from rotator.secrets import Secret
from rotator.targets.base import METADATA_PREFIX, KeyMetadata, Target
from rotator.targets.file import FileTarget
from rotator.targets.kubernetes import KubernetesSecretTarget
from rotator.targets.vault import VaultKvTarget
from rotator_sandbox.kubernetes import KubernetesEmulator
from tests.plugins.backends import VaultServer

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OLD = Secret("contract-old-value-0001")
NEW = Secret("contract-new-value-0002")
FOREIGN = Secret("contract-foreign-value-0003")
NAMESPACE = "monitoring"
NAME = "sts-agent-secrets"
DATA_KEY = "STS_API_KEY"
VAULT_PATH = "stackstate/agent"
VAULT_KEY = "api_key"

#: Every target type and variant the contract runs on.
ALL = [
    "kubernetes-secret",
    "vault-kv-v2",
    "vault-kv-v1",
    "vault-kv-v2-openbao",
    "vault-kv-v1-openbao",
    "file-raw",
    "file-env",
    "file-yaml",
]
#: Those with other data at the location (a raw file holds the value alone).
WITH_OTHER_DATA = [case for case in ALL if case != "file-raw"]
#: Those whose backend detects a concurrent writer (optimistic concurrency).
DETECTS_CONCURRENT_WRITES = ["kubernetes-secret", "vault-kv-v2", "vault-kv-v2-openbao"]


def meta(value: Secret, key_id: int = 7) -> KeyMetadata:
    """Metadata for ``value`` that replaced key 6 (so the previous fields round-trip too)."""
    return KeyMetadata(
        key_id=key_id,
        key_name=f"agent-20261126T120000Z-00{key_id:02d}",
        kind="service-token",
        fingerprint=value.fingerprint,
        expires_at=NOW,
        rotated_at=NOW,
        previous_key_id=key_id - 1,
        previous_key_name=f"agent-20261001T120000Z-00{key_id - 1:02d}",
    )


@dataclass
class Case:
    """One target under the contract, and what another party can do at its location."""

    target: Target
    #: Another writer puts this text at our data key (keeping the rest of the location).
    put_foreign: Callable[[str], None]
    #: Another party's data at the location, with OLD at our data key.
    seed_other: Callable[[], None]
    #: The other party's data as stored now (our data key and our metadata left out).
    other: Callable[[], Any]
    #: Arrange that the next write meets a concurrent writer; returns the other data expected
    #: afterwards (None: the backend cannot detect one).
    race: Callable[[], Callable[[], Any]] | None = None


# -- kubernetes-secret ----------------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _kubernetes_case(kube: KubernetesEmulator, clients: KubeClients) -> Case:
    target = KubernetesSecretTarget(
        clients, namespace=NAMESPACE, name=NAME, key=DATA_KEY, conflict_backoff=0.0
    )

    def stored() -> dict[str, Any]:
        secret: dict[str, Any] | None = kube.get("secrets", NAMESPACE, NAME)
        assert secret is not None
        return secret

    def put_foreign(text: str) -> None:
        secret = stored()
        secret["data"][DATA_KEY] = _b64(text)
        kube.apply(secret)

    def seed_other() -> None:
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": NAME,
                    "namespace": NAMESPACE,
                    "labels": {"team": "observability"},
                    "annotations": {"example.com/note": "kept"},
                },
                "type": "Opaque",
                "data": {DATA_KEY: _b64(OLD.reveal()), "OTHER": _b64("unrelated")},
            }
        )

    def other() -> Any:
        secret = stored()
        annotations = secret["metadata"].get("annotations") or {}
        return (
            {k: v for k, v in kube.secret_data(NAMESPACE, NAME).items() if k != DATA_KEY},
            secret["metadata"].get("labels"),
            {k: v for k, v in annotations.items() if METADATA_PREFIX not in k},
        )

    def race() -> Callable[[], Any]:
        # The API server refuses our update as a concurrent writer's would be (409).
        expected = other()
        kube.conflict_next_update("secrets", NAMESPACE, NAME, count=1)
        return lambda: expected

    return Case(target, put_foreign, seed_other, other, race)


# -- vault-kv --------------------------------------------------------------------------------------


def _vault_case(server: VaultServer, http: requests.Session, version: Literal[1, 2]) -> Case:
    mount = "secret" if version == 2 else "kv"
    session = VaultSession(
        url=server.url,
        namespace=None,
        ca_file=None,
        timeout=5.0,
        auth=TokenAuth(Secret(server.root_token)),
        http=http,
    )
    target = VaultKvTarget(session, mount=mount, path=VAULT_PATH, key=VAULT_KEY, kv_version=version)

    def put_foreign(text: str) -> None:
        server.write(mount, VAULT_PATH, {**(server.read(mount, VAULT_PATH) or {}), VAULT_KEY: text})

    def seed_other() -> None:
        server.write(mount, VAULT_PATH, {VAULT_KEY: OLD.reveal(), "url": "https://sts", "n": 3})

    def other() -> Any:
        data = server.read(mount, VAULT_PATH) or {}
        return {k: v for k, v in data.items() if k != VAULT_KEY and not k.startswith("_rotator.")}

    def race() -> Callable[[], Any]:
        # Another client writes right after our next read of the data, before our write: a
        # response hook on the session's own requests.Session (a public requests feature).
        fired = [False]

        def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            request = response.request
            if (
                not fired[0]
                and request.method == "GET"
                and f"/data/{VAULT_PATH}" in str(request.url)
            ):
                fired[0] = True
                current = server.read(mount, VAULT_PATH) or {}
                server.write(mount, VAULT_PATH, {**current, "concurrent": "theirs"})

        http.hooks["response"].append(hook)
        return lambda: {"url": "https://sts", "n": 3, "concurrent": "theirs"}

    return Case(target, put_foreign, seed_other, other, race if version == 2 else None)


# -- file ------------------------------------------------------------------------------------------

_ENV_OTHER = "# agent environment\nexport STS_URL=https://sts/receiver\nLOG_LEVEL=info\n"
_YAML_OTHER = "# agent configuration\nsts_url: https://sts/receiver  # receiver\nlogs: true\n"


def _file_case(directory: Path, file_format: str) -> Case:
    path = directory / {"raw": "token", "env": "agent.env", "yaml": "agent.yaml"}[file_format]
    field = {"raw": None, "env": "STS_API_KEY", "yaml": "api_key"}[file_format]
    target = FileTarget(path, file_format=file_format, field=field)  # type: ignore[arg-type]

    def line_of(text: str) -> str:
        if file_format == "env":
            return f"STS_API_KEY={text}\n"
        if file_format == "yaml":
            return f"api_key: {text}\n"
        return f"{text}\n"

    def ours(line: str) -> bool:
        return file_format == "raw" or line.startswith(("STS_API_KEY=", "api_key:"))

    def put_foreign(text: str) -> None:
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(line_of(text) if ours(line) else line for line in lines))

    def seed_other() -> None:
        head = {"env": _ENV_OTHER, "yaml": _YAML_OTHER}.get(file_format, "")
        path.write_text(head + line_of(OLD.reveal()))

    def other() -> Any:
        return [line for line in path.read_text().splitlines() if not ours(line)]

    return Case(target, put_foreign, seed_other, other)


# -- the cases -------------------------------------------------------------------------------------


@pytest.fixture
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    """The target named by the test's parameter, on its backend (the emulators are started only
    for the cases that need them)."""
    kind: str = request.param
    if kind == "kubernetes-secret":
        kube: KubernetesEmulator = request.getfixturevalue("kube")
        kube.create_namespace(NAMESPACE)
        with KubeClients(request.getfixturevalue("kubeconfig"), request_timeout=5.0) as clients:
            yield _kubernetes_case(kube, clients)
    elif kind.startswith("vault-kv"):
        # The Vault emulator, or a real OpenBao dev server (skipped when it is not installed).
        server: VaultServer = request.getfixturevalue(
            "openbao" if kind.endswith("-openbao") else "vault_server"
        )
        with requests.Session() as http:
            built = _vault_case(server, http, 2 if "-v2" in kind else 1)
            yield built
            assert isinstance(built.target, VaultKvTarget)
            built.target.session.close()
    else:
        yield _file_case(tmp_path, kind.removeprefix("file-"))


@pytest.mark.parametrize("case", ALL, indirect=True)
class TestMetadataRoundTrip:
    """What is written is what is read back: the value and exactly its metadata."""

    def test_an_empty_location_reads_as_nothing(self, case: Case) -> None:
        """Before any write there is no value and no metadata (a bootstrap, not an error)."""
        state = case.target.read()
        assert (state.value, state.metadata) == (None, None)

    def test_value_and_metadata_round_trip(self, case: Case) -> None:
        """read() returns the value and the metadata written with it, field for field."""
        case.target.write(NEW, meta(NEW))
        state = case.target.read()
        assert state.value == NEW
        assert state.metadata == meta(NEW)
        assert state.managed_metadata == meta(NEW)

    def test_write_metadata_replaces_only_the_metadata(self, case: Case) -> None:
        """write_metadata() records progress for the value held; the value is untouched."""
        case.target.write(NEW, meta(NEW))
        progressed = replace(
            meta(NEW), switched=True, switched_at=NOW, previous_revoked=True, done=("cmd-1",)
        )
        case.target.write_metadata(progressed)
        state = case.target.read()
        assert state.value == NEW
        assert state.managed_metadata == progressed

    def test_a_rotation_replaces_the_value_and_its_metadata(self, case: Case) -> None:
        """Writing a new value over ours: the new value with its own metadata is read back."""
        case.target.write(OLD, meta(OLD, key_id=6))
        case.target.write(NEW, meta(NEW, key_id=7))
        state = case.target.read()
        assert state.value == NEW
        assert state.managed_metadata == meta(NEW, key_id=7)


@pytest.mark.parametrize("case", WITH_OTHER_DATA, indirect=True)
class TestOtherDataPreserved:
    """The rotator owns one data key and its metadata at a location, nothing else."""

    def test_write_keeps_everything_else(self, case: Case) -> None:
        """Another party's data at the location is as it was after our write."""
        case.seed_other()
        before = case.other()
        assert before, "the case seeds other data"
        case.target.write(NEW, meta(NEW))
        assert case.other() == before
        assert case.target.read().value == NEW

    def test_write_metadata_keeps_everything_else(self, case: Case) -> None:
        """A metadata update touches no other data either."""
        case.seed_other()
        case.target.write(NEW, meta(NEW))
        before = case.other()
        case.target.write_metadata(replace(meta(NEW), switched=True, switched_at=NOW))
        assert case.other() == before


@pytest.mark.parametrize("case", ALL, indirect=True)
class TestConflictingWriter:
    """Another writer at our data key is noticed, never mistaken for the rotator."""

    def test_another_writers_value_is_not_ours(self, case: Case) -> None:
        """A value someone else wrote over ours reads without metadata (adopted): our record
        describes our value only, so it is never claimed for theirs."""
        case.target.write(NEW, meta(NEW))
        case.put_foreign(FOREIGN.reveal())
        state = case.target.read()
        assert state.value == FOREIGN
        assert state.metadata is None
        assert state.managed_metadata is None

    def test_our_next_write_replaces_it(self, case: Case) -> None:
        """The next write puts our value back, described by our metadata again."""
        case.target.write(OLD, meta(OLD, key_id=6))
        case.put_foreign(FOREIGN.reveal())
        case.target.write(NEW, meta(NEW))
        state = case.target.read()
        assert state.value == NEW
        assert state.managed_metadata == meta(NEW)


@pytest.mark.parametrize("case", DETECTS_CONCURRENT_WRITES, indirect=True)
def test_a_concurrent_writer_is_detected_and_kept(case: Case) -> None:
    """A write that meets a concurrent writer reads again: our value is written and the other
    writer's change is kept (no lost update)."""
    assert case.race is not None
    case.seed_other()
    expected = case.race()
    case.target.write(NEW, meta(NEW))
    assert case.target.read().managed_metadata == meta(NEW)
    assert case.other() == expected()
