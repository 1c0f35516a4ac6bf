"""``rotator rotate`` with ``lock: {type: vault}``: the run holds a KV v2 entry, or waits for it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.plugins.world import World

LOCK_PATH = "stackstate-key-rotator/lock"


@pytest.fixture
def locked_world(world: World) -> World:
    """One managed key, settled, with the Vault lock configured."""
    world.add_key("agent")
    world.settle()
    world.sections["lock"] = {"type": "vault", "path": LOCK_PATH, "ttl": "30s"}
    return world


class TestVaultLock:
    """The run takes the entry for its duration and leaves it released."""

    def test_the_run_holds_the_entry_and_releases_it(self, locked_world: World) -> None:
        """Acquired with check-and-set before the run, released (empty holder) after it."""
        locked_world.vault.clear_log()
        result = locked_world.rotator("rotate", "--force", "--output", "json")
        assert result.code == 0, result.out + result.err
        assert [k["outcome"] for k in json.loads(result.out)["keys"]] == ["rotated"]
        entry = locked_world.vault.read("secret", LOCK_PATH)
        assert entry is not None and entry["holder"] == ""
        writes = [
            json.loads(r.body)
            for r in locked_world.vault.log
            if r.method in ("POST", "PUT") and r.path == f"/v1/secret/data/{LOCK_PATH}"
        ]
        assert writes[0]["data"]["holder"].startswith("rotate-")
        assert writes[-1]["data"]["holder"] == ""
        assert all("cas" in w["options"] for w in writes)

    def test_an_entry_held_by_another_host_is_waited_for_then_refused(
        self, locked_world: World
    ) -> None:
        """Another live holder past --wait-timeout: exit 1, nothing changed in StackState."""
        expires = datetime.now(UTC) + timedelta(minutes=5)
        locked_world.vault.write(
            "secret",
            LOCK_PATH,
            {"holder": "rotate-other-host-1", "expires_at": expires.isoformat()},
        )
        locked_world.stackstate.clear_log()
        result = locked_world.rotator("rotate", "--force", "--wait-timeout", "1s")
        assert result.code == 1
        assert "held by rotate-other-host-1" in result.err
        assert [r for r in locked_world.stackstate.log if r.method in ("POST", "DELETE")] == []

    def test_an_expired_entry_is_taken_over(self, locked_world: World) -> None:
        """A holder that stopped renewing long ago does not block the run."""
        expired = datetime.now(UTC) - timedelta(minutes=5)
        locked_world.vault.write(
            "secret", LOCK_PATH, {"holder": "dead-host-1", "expires_at": expired.isoformat()}
        )
        result = locked_world.rotator("rotate", "--force")
        assert result.code == 0, result.out + result.err
        entry = locked_world.vault.read("secret", LOCK_PATH)
        assert entry is not None and entry["holder"] == ""
