"""The local/shared matrix of the seed's Scenario 1 and the pool rules migrateVolume applies."""
import pytest

from orchestrator import placement

POOL = placement.PoolFacts(name="p", is_local=False, scope="CLUSTER", state="Up", zone_id=1,
                           cluster_id=10, host_id=None, tags="gold,fast", capacity=100, allocated=0)


@pytest.mark.parametrize("src_local,dest_local,allowed", [
    (True, True, False), (True, False, False), (False, True, False), (False, False, True)])
def test_scenario_1_matrix_allows_only_shared_to_shared(src_local, dest_local, allowed):
    assert (placement.local_shared_refusal(src_local, dest_local) is None) is allowed


@pytest.mark.parametrize("src_local,dest_local,allowed", [
    (True, True, True), (True, False, False), (False, True, False), (False, False, True)])
def test_scenario_2_matrix_keeps_local_local_and_shared_shared(src_local, dest_local, allowed):
    assert placement.VM_WITH_VOLUME_MATRIX[(src_local, dest_local)] is allowed


def test_a_pool_in_another_cluster_is_out_of_reach():
    assert placement.reach_refusal(POOL, host_zone_id=1, host_cluster_id=11)
    assert placement.reach_refusal(POOL, host_zone_id=1, host_cluster_id=10) is None


def test_missing_storage_tags_are_named():
    why = placement.tag_refusal(POOL, "gold,ssd", "offering-x")
    assert "needs [gold, ssd]" in why and "has [fast, gold]" in why
    assert placement.tag_refusal(POOL, "gold", "offering-x") is None


def test_capacity_counts_overprovisioning_and_allocation():
    full = POOL._replace(allocated=150)
    assert placement.capacity_refusal(full, 50, 2.0) is None
    assert "not enough capacity: needs 51 B, 50 B free" in placement.capacity_refusal(full, 51, 2.0)


def test_a_pool_in_maintenance_is_refused_with_its_state():
    down = POOL._replace(state="Maintenance")
    assert "in maintenance" in placement.state_refusal(down)
