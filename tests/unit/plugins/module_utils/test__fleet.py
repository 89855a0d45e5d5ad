"""_fleet: the waves of a fleet update, each wave's failure budget, the verdict, what goes back, and the summary."""

from __future__ import annotations

import pytest
from ansible_collections.kubeops.daemonset.plugins.module_utils import _fleet
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import RequestError

GROUPS = {
    "all": ["canary-eu", "eu-1", "eu-2", "us-1", "us-2", "us-3", "lab"],
    "ungrouped": ["lab"],
    "fleet": ["canary-eu", "eu-1", "eu-2", "us-1", "us-2", "us-3"],
    "canary": ["canary-eu"],
    "eu": ["canary-eu", "eu-1", "eu-2"],
    "us": ["us-1", "us-2", "us-3"],
}
FLEET = GROUPS["fleet"]


@pytest.mark.parametrize(("pattern", "expected"), [
    ("fleet", FLEET),
    ("us,eu", ["us-1", "us-2", "us-3", "canary-eu", "eu-1", "eu-2"]),
    ("eu:lab", ["canary-eu", "eu-1", "eu-2", "lab"]),
    (["canary", "eu"], ["canary-eu", "eu-1", "eu-2"]),
])  # fmt: skip
def test_targets_follow_the_pattern_each_cluster_once(pattern, expected):
    assert _fleet.targets(pattern, GROUPS) == expected


def test_an_unknown_name_in_the_pattern_is_refused():
    with pytest.raises(RequestError, match="'nowhere' is neither a group nor a host"):
        _fleet.targets("fleet,nowhere", GROUPS)


@pytest.mark.parametrize(("spec", "expected"), [
    # sizes as Ansible's serial counts them: N% of all the clusters, rounded down, at least 1; the last repeats
    ([1, "25%", "100%"], [["canary-eu"], ["eu-1"], ["eu-2", "us-1", "us-2", "us-3"]]),
    ([1, 2], [["canary-eu"], ["eu-1", "eu-2"], ["us-1", "us-2"], ["us-3"]]),
    (["50%"], [["canary-eu", "eu-1", "eu-2"], ["us-1", "us-2", "us-3"]]),
    # groups: their clusters not in an earlier wave; a last group leaves the rest to one wave
    (["canary", "eu", "us"], [["canary-eu"], ["eu-1", "eu-2"], ["us-1", "us-2", "us-3"]]),
    (["canary", "eu"], [["canary-eu"], ["eu-1", "eu-2"], ["us-1", "us-2", "us-3"]]),
    (["canary", "canary", 1], [["canary-eu"], ["eu-1"], ["eu-2"], ["us-1"], ["us-2"], ["us-3"]]),
    ([1, "us"], [["canary-eu"], ["us-1", "us-2", "us-3"], ["eu-1", "eu-2"]]),
    (["1%"], [[c] for c in FLEET]),
])  # fmt: skip
def test_waves_from_sizes_and_groups(spec, expected):
    assert _fleet.waves(spec, FLEET, GROUPS) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ([], "non-empty list"),
    ("1", "non-empty list"),
    ([1, "nope"], "'nope' is neither a size"),
    ([0], "a wave of 0 clusters is empty"),
    ([1, "-5"], "'-5' is neither a size"),
])  # fmt: skip
def test_bad_waves_are_refused(spec, message):
    with pytest.raises(RequestError, match=message):
        _fleet.waves(spec, FLEET, GROUPS)


@pytest.mark.parametrize(("budget", "size", "allowed"), [
    (0, 5, 0), ("1", 5, 1), ("10%", 5, 0), ("20%", 5, 1), ("50%", 3, 1), ("100%", 4, 4), (" 2 ", 1, 2),
])  # fmt: skip
def test_allowed_failures_round_a_percentage_down(budget, size, allowed):
    assert _fleet.allowed_failures(budget, size) == allowed


@pytest.mark.parametrize("budget", ["some", "-1", "1.5", None, "10 %"])
def test_a_bad_budget_is_refused(budget):
    with pytest.raises(RequestError, match="fleet_failure_budget must be a count or a percentage"):
        _fleet.allowed_failures(budget, 3)


def record(wave: int, outcome: str, before: int | None = 1, **more) -> dict:
    return {"wave": wave, "outcome": outcome, "before": before, **more}


def test_a_wave_within_its_budget_does_not_halt():
    records = {"a": record(1, "updated"), "b": record(2, "failed"), "c": record(2, "updated")}
    assert _fleet.verdict(records, "50%") == {"halted": False, "wave": None, "failed": [], "allowed": None}


def test_the_first_wave_over_its_budget_halts_the_fleet():
    records = {"a": record(1, "updated"), "b": record(2, "failed"), "c": record(2, "updated"),
               "d": record(3, "failed")}  # fmt: skip
    assert _fleet.verdict(records, 0) == {"halted": True, "wave": 2, "failed": ["b"], "allowed": 0}


def test_what_goes_back_on_a_halt():
    halted = True
    assert _fleet.rollback_to(record(1, "updated", before=4), halted) == 4
    assert _fleet.rollback_to(record(2, "failed", before=4), halted) == 4
    # updated by an earlier, interrupted run: the revision it recorded then
    assert _fleet.rollback_to(record(1, "already at target", before=5, recorded_before=4), halted) == 4
    assert _fleet.rollback_to(record(1, "already at target", before=5), halted) is None
    assert _fleet.rollback_to(record(3, "untouched"), halted) is None
    assert _fleet.rollback_to(record(3, "would update"), halted) is None
    assert _fleet.rollback_to(record(1, "updated", before=4, rolled_back_to=4), halted) is None  # done already
    assert _fleet.rollback_to(record(1, "updated", before=None), halted) is None  # nothing was recorded


def test_without_a_halt_only_a_failed_cluster_goes_back():
    assert _fleet.rollback_to(record(2, "failed", before=4), False) == 4
    assert _fleet.rollback_to(record(1, "updated", before=4), False) is None
    assert _fleet.rollback_to(record(1, "already at target", recorded_before=4), False) is None


def test_summary_and_table():
    records = {
        "eu-1": record(1, "updated", before=1, after=3, seconds=12.5, rolled_back_to=1),
        "eu-2": record(2, "failed", before=1, after=2, seconds=40.1, message="timed out"),
    }
    rows = _fleet.summary(records, ["eu-1", "eu-2", "us-1"])
    assert rows == [
        {"cluster": "eu-1", "wave": 1, "revision_before": 1, "revision_after": 3,
         "outcome": "updated, rolled back to revision 1", "seconds": 12.5, "message": ""},
        {"cluster": "eu-2", "wave": 2, "revision_before": 1, "revision_after": 2, "outcome": "failed",
         "seconds": 40.1, "message": "timed out"},
        {"cluster": "us-1", "wave": None, "revision_before": None, "revision_after": None, "outcome": "untouched",
         "seconds": None, "message": ""},
    ]  # fmt: skip
    assert _fleet.table(rows) == [
        "CLUSTER  WAVE  BEFORE  AFTER  OUTCOME                             SECONDS",
        "eu-1     1     1       3      updated, rolled back to revision 1  12.5",
        "eu-2     2     1       2      failed                              40.1",
        "us-1     -     -       -      untouched                           -",
    ]


def test_plan_lines_say_what_each_cluster_gets():
    records = {"a": record(1, "would update", before=2), "b": record(2, "already at target", before=3),
               "c": record(2, "would update", before=2)}  # fmt: skip
    assert _fleet.plan_lines(["a", "b", "c"], records) == [
        "wave 1: a (revision 2 -> the new template)",
        "wave 2: b (already at target, revision 3), c (revision 2 -> the new template)",
    ]
