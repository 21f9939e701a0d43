"""The verdicts of the reconciler against the agents' truth (orchestrator.truth): when the
agent's answer is clear enough to repair the database, and when it must be left alone."""
from orchestrator.truth_rules import OK, Verdict, vm_verdict, volume_verdict

MIB = 1 << 20


def loc(pool, size=MIB, online=True):
    return {"pool": pool, "poolPath": f"/shared/{pool}", "size": size, "online": online}


def test_a_volume_whose_recorded_pool_holds_a_copy_is_ok_even_with_a_stray_copy_elsewhere():
    assert volume_verdict("a", MIB, {"locations": [loc("a")]}) == OK
    assert volume_verdict("a", MIB, {"locations": [loc("a"), loc("b")]}) == OK


def test_a_volume_whose_only_complete_copy_is_elsewhere_is_repaired_to_it():
    assert volume_verdict("a", MIB, {"locations": [loc("b")]}) == Verdict("repair", target="b")


def test_an_unknown_volume_or_no_copy_at_all_is_left_alone():
    assert volume_verdict("a", MIB, None).action == "skip"
    assert volume_verdict("a", MIB, {"locations": []}).action == "skip"


def test_several_copies_none_on_the_recorded_pool_are_ambiguous():
    verdict = volume_verdict("a", MIB, {"locations": [loc("b"), loc("c")]})
    assert verdict.action == "skip" and "several pools" in verdict.why


def test_a_copy_of_the_wrong_size_or_on_an_offline_pool_is_not_trusted():
    assert volume_verdict("a", MIB, {"locations": [loc("b", size=MIB // 2)]}).action == "skip"
    assert volume_verdict("a", MIB, {"locations": [loc("b", online=False)]}).action == "skip"


def test_a_vm_its_recorded_host_runs_is_ok():
    assert vm_verdict("h1", {"h1": True}) == OK
    assert vm_verdict("h1", {"h1": True, "h2": True}) == OK


def test_a_vm_only_another_host_runs_is_repaired_to_that_host():
    assert vm_verdict("h1", {"h1": False, "h2": True, "h3": False}) == Verdict("repair", target="h2")


def test_a_silent_agent_anywhere_means_no_repair():
    assert vm_verdict("h1", {"h1": None}).action == "skip"
    assert vm_verdict("h1", {"h1": False, "h2": True, "h3": None}).action == "skip"


def test_a_vm_no_host_or_several_hosts_run_is_left_alone():
    assert vm_verdict("h1", {"h1": False, "h2": False}).why == "no agent runs it"
    assert "several hosts" in vm_verdict("h1", {"h1": False, "h2": True, "h3": True}).why
