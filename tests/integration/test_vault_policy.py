"""End to end on a real OpenBao: ``rotator rotate`` with an AppRole holding exactly the Vault
policy the README documents.

The policy is read from README.md's "Vault policy" section (its ``hcl`` blocks, KV v2 and KV v1)
and handed to OpenBao verbatim, so the documentation and what is proven here cannot drift apart.
StackState and Kubernetes are the emulators of the ``world`` fixture; Vault is the ``openbao``
dev server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rotator.secrets import Secret
from rotator.targets.vault import AppRoleAuth, VaultSession
from tests.plugins.backends import OpenBaoVault, parse_policy
from tests.plugins.world import World

README = Path(__file__).resolve().parents[2] / "README.md"
KIND = "service-token"
CAPS = ["create", "read", "update"]


def readme_policy() -> str:
    """The ``hcl`` blocks of README.md's "Vault policy" section, joined: the policy as text."""
    text = README.read_text(encoding="utf-8")
    # The section ends at the next heading of level 2 or 3 ("# " starts HCL comments).
    match = re.search(r"^### Vault policy\n(.*?)(?=^#{2,3} |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match is not None, "README.md has no '### Vault policy' section"
    blocks = re.findall(r"^```hcl\n(.*?)^```", match.group(1), re.MULTILINE | re.DOTALL)
    assert blocks, "the Vault policy section has no ```hcl block"
    return "\n".join(blocks)


def vault_targets(name: str) -> list[dict[str, Any]]:
    """The two targets of a managed key: KV v2 ``secret`` and KV v1 ``kv``, under stackstate/."""
    return [
        {"type": "vault-kv", "mount": "secret", "path": f"stackstate/{name}", "key": "api_key"},
        {
            "type": "vault-kv",
            "mount": "kv",
            "path": f"stackstate/{name}",
            "key": "api_key",
            "kv_version": 1,
        },
    ]


@pytest.fixture
def approle(openbao: OpenBaoVault) -> tuple[str, str]:
    """An AppRole whose tokens hold the README policy (and Vault's ``default``)."""
    openbao.set_policy("stackstate-rotator", readme_policy())
    return openbao.add_approle("stackstate-rotator", ["stackstate-rotator"])


@pytest.fixture
def world_on_openbao(world: World, openbao: OpenBaoVault, approle: tuple[str, str]) -> World:
    """The world's configuration with ``vault:`` pointing at OpenBao, AppRole auth."""
    role_id, secret_id = approle
    world.sections["vault"] = {
        "url": openbao.url,
        "auth": {"method": "approle", "role_id": role_id, "secret_id": secret_id},
        "timeout": "5s",
    }
    return world


def held(openbao: OpenBaoVault, mount: str, name: str) -> str | None:
    """The api_key field at ``<mount>/stackstate/<name>``."""
    data = openbao.read(mount, f"stackstate/{name}") or {}
    value = data.get("api_key")
    return value if isinstance(value, str) else None


class TestReadmePolicy:
    """The documented policy itself."""

    def test_it_is_create_read_update_on_the_kv_v2_and_v1_paths(self) -> None:
        """Exactly create/read/update on v2 data and metadata paths and on the v1 path."""
        assert parse_policy(readme_policy()) == {
            "secret/data/stackstate/*": CAPS,
            "secret/metadata/stackstate/*": CAPS,
            "kv/stackstate/*": CAPS,
        }

    def test_it_lets_the_session_see_each_mounts_kv_version(
        self, openbao: OpenBaoVault, approle: tuple[str, str]
    ) -> None:
        """``sys/internal/ui/mounts`` answers for both mounts without any sys/ rule."""
        role_id, secret_id = approle
        session = VaultSession(
            url=openbao.url,
            namespace=None,
            ca_file=None,
            timeout=5,
            auth=AppRoleAuth(role_id, Secret(secret_id)),
        )
        try:
            assert session.kv_version("secret", where="t") == 2
            assert session.kv_version("kv", where="t") == 1
        finally:
            session.close()


class TestRotationWithTheReadmePolicy:
    """A whole rotation, AppRole limited to the README policy, KV v2 and v1 targets."""

    def test_bootstrap_rotate_and_revoke(
        self, world_on_openbao: World, openbao: OpenBaoVault
    ) -> None:
        """Bootstrap, rotation near expiry and revocation all succeed; both paths follow."""
        world = world_on_openbao
        world.defaults = {"validity": "20d", "rotate_before": "14d"}
        world.add_key("agent", targets=vault_targets("agent"))
        first = world.rotator("rotate", "--output", "json")
        assert first.code == 0, first.out + first.err
        (old,) = world.managed_keys(KIND, "agent")
        old_value = world.stackstate.value_of(KIND, old["id"])
        assert held(openbao, "secret", "agent") == old_value
        assert held(openbao, "kv", "agent") == old_value
        world.settle()

        world.defaults = {"validity": "90d", "rotate_before": "30d"}
        rotated = world.rotator("rotate", "--output", "json")
        assert rotated.code == 0, rotated.out + rotated.err
        assert [k["outcome"] for k in json.loads(rotated.out)["keys"]] == ["rotated"]
        (new,) = [k for k in world.managed_keys(KIND, "agent") if k["id"] != old["id"]]
        new_value = world.stackstate.value_of(KIND, new["id"])
        assert held(openbao, "secret", "agent") == new_value
        assert held(openbao, "kv", "agent") == new_value
        custom = openbao.custom_metadata("secret", "stackstate/agent")
        assert json.loads(custom["rotator.stackstate.io/api_key"])["key-id"] == new["id"]
        assert json.loads(custom["previous.rotator.stackstate.io/api_key"])["key-id"] == old["id"]
        v1 = openbao.read("kv", "stackstate/agent") or {}
        assert json.loads(v1["_rotator.api_key"])["key-id"] == new["id"]

        world.settle()  # no consumers, no grace period: the old key is revoked
        assert [k["id"] for k in world.managed_keys(KIND, "agent")] == [new["id"]]
        for output in (first, rotated):
            assert "permission denied" not in output.out + output.err
            for value in (old_value, new_value, *world.secret_values()):
                assert value not in output.out + output.err

    def test_a_path_outside_the_policy_is_a_policy_denial(
        self, world_on_openbao: World, openbao: OpenBaoVault
    ) -> None:
        """A target outside stackstate/ fails as denied by policy (not as an invalid token)."""
        world = world_on_openbao
        world.add_key(
            "agent",
            targets=[{"type": "vault-kv", "mount": "secret", "path": "other/agent", "key": "k"}],
        )
        result = world.rotator("rotate", "--output", "json")
        assert result.code == 1
        (key,) = json.loads(result.out)["keys"]
        assert "permission denied by vault policy" in json.dumps(key)
        assert openbao.read("secret", "other/agent") is None
        assert world.managed_keys(KIND, "agent") == []
