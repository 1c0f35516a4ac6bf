"""The fault matrix's checks are not vacuous: each one reports the violation it exists for when
the world is broken by hand (a key deleted under its consumers, an orphan left, a duplicate
name, a value in an alert), and the journal counts a request whose answer was lost."""

from __future__ import annotations

import httpx
import pytest

from tests.faults.harness import KEY, FaultWorld, orphan_name, restart_patches
from tests.plugins.world import NAMESPACE

TIMEOUT = 5.0


def delete_by_hand(fw: FaultWorld, key_id: int) -> None:
    """DELETE a service token through the StackState API with the admin credential."""
    stackstate = fw.world.stackstate
    response = httpx.delete(
        f"{stackstate.url}/api/security/tokens/{key_id}",
        headers={"X-API-Key": stackstate.service_token},
        timeout=TIMEOUT,
    )
    assert response.status_code == 204


def previous_key(fw: FaultWorld) -> int:
    """The id of the managed key no target holds any more (the one being replaced)."""
    (old,) = fw.unreferenced()
    return int(old["id"])


class TestInvariantChecks:
    """Each check sees the violation it guards against."""

    def test_deleting_the_key_in_use_breaks_i1_and_i2(self, fault_world: FaultWorld) -> None:
        """A key deleted while every target holds it is reported at the deletion and after."""
        fw = fault_world
        fw.add_key()
        fw.bootstrap()
        (live,) = fw.managed_live(KEY)
        delete_by_hand(fw, int(live["id"]))
        assert any("deleted while a target" in p for p in fw.i2_problems())
        assert any("no live key holds it" in p for p in fw.i1_problems("now"))

    def test_deleting_before_the_restart_breaks_i2(self, fault_world: FaultWorld) -> None:
        """The previous key deleted after the push but before any restart is an I2 problem."""
        fw = fault_world
        fw.add_key()
        fw.bootstrap()
        fw.world.kube.forbid("patch", "deployments")
        assert fw.run("rotate", "--force", "-o", "json").code == 1
        delete_by_hand(fw, previous_key(fw))
        assert any("before any restart" in p for p in fw.i2_problems())

    def test_deleting_during_the_rollout_breaks_i2(self, fault_world: FaultWorld) -> None:
        """The previous key deleted while the restart's rollout is under way is an I2 problem."""
        fw = fault_world
        fw.add_key()
        fw.bootstrap()
        fw.world.kube.set_rollout_seconds("Deployment", NAMESPACE, KEY, 3600)
        assert fw.run("rotate", "--force", "-o", "json").code == 0
        delete_by_hand(fw, previous_key(fw))
        problems = fw.i2_problems()
        assert any("rollout" in p and "incomplete" in p for p in problems), problems

    def test_a_proper_revocation_passes(self, fault_world: FaultWorld) -> None:
        """A rotation the rotator completes itself passes every check."""
        fw = fault_world
        fw.add_key()
        fw.bootstrap()
        assert fw.run("rotate", "--force", "-o", "json").code == 0
        problems: list[str] = []
        fw.settle(problems)
        assert problems + fw.final_problems() == []
        assert len(fw.journal.deletions) == 1

    def test_an_orphan_breaks_i3(self, fault_world: FaultWorld) -> None:
        """A managed key no target holds, left in StackState, is an I3 problem."""
        fw = fault_world
        fw.add_key()
        fw.bootstrap()
        fw.world.stackstate.seed_key(
            "service-token", orphan_name(KEY, fw.now()), expiration=None, roles=[]
        )
        assert any("2 live keys" in p for p in fw.i3_problems())

    def test_two_keys_with_one_name_are_duplicates(self, fault_world: FaultWorld) -> None:
        """Two StackState keys sharing a name are reported."""
        fw = fault_world
        fw.add_key()
        fw.bootstrap()
        for _ in range(2):
            fw.world.stackstate.seed_key("service-token", "twin", expiration=None, roles=[])
        assert fw.duplicate_problems("now") == ["duplicate key names now: ['twin']"]

    @pytest.mark.leaks_on_purpose
    def test_a_value_in_an_alert_is_a_leak(self, fault_world: FaultWorld) -> None:
        """A key value in any alert request is an I4 problem."""
        fw = fault_world
        fw.add_key()
        fw.bootstrap()
        (live,) = fw.managed_live(KEY)
        httpx.post(f"{fw.receiver.url}/hook", json={"error": live["_value"]}, timeout=TIMEOUT)
        assert any("alert body" in p for p in fw.leaks())


class TestJournal:
    """The journal records what took effect, answered or not."""

    def test_a_restart_whose_answer_was_lost_counts(self, fault_world: FaultWorld) -> None:
        """A restart PATCH processed but never answered is a restart for I2."""
        fw = fault_world
        fw.add_key()
        fw.bootstrap()
        path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{KEY}"
        before = len(restart_patches(fw.journal.exchanges, KEY))
        fw.world.kube.drop_after_processing("PATCH", path)
        fw.run("rotate", "--force", "-o", "json")
        patches = restart_patches(fw.journal.exchanges, KEY)
        assert len(patches) == before + 1
        assert not next(x for x in fw.journal.exchanges if x.seq == patches[-1][0]).answered
