# SPDX-License-Identifier: GPL-3.0-or-later
"""_history on real objects captured from the local cluster (tests/unit/fixtures/history/*.yaml).

The fixtures follow the seed workflow on fluentd-elasticsearch: 01 after the update to v2.6.0
(revisions 1, 2), 02 after `kubectl rollout undo --to-revision=1` (1 became 3), 03 a bad image
mid-rollout (revision 4, pods split across two hashes), 04 plus a twin DaemonSet whose selector
overlaps (its revision and pods match the selector but are owned by the twin).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _history as h
from ansible_collections.kubeops.daemonset.plugins.module_utils import _objects, _template

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
NAME = "fluentd-elasticsearch"
V252 = "quay.io/fluentd_elasticsearch/fluentd:v2.5.2"
V260 = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
BAD = "quay.io/fluentd_elasticsearch/fluentd:does-not-exist"


def load(stage: str, name: str = NAME) -> tuple[dict, list[dict], list[dict]]:
    items = yaml.safe_load((FIXTURES / "history" / f"{stage}.yaml").read_text())["items"]
    by_kind: dict[str, list[dict]] = {}
    for item in items:
        by_kind.setdefault(item["kind"], []).append(item)
    (ds,) = [d for d in by_kind["DaemonSet"] if d["metadata"]["name"] == name]
    return ds, by_kind["ControllerRevision"], by_kind.get("Pod", [])


def numbers(revisions: list[dict]) -> list[int]:
    return [int(r["revision"]) for r in revisions]


# --- ownership -----------------------------------------------------------------------------


def test_owned_revisions_sorted_by_revision():
    ds, revisions, _pods = load("03-bad-image-mid-rollout")
    assert numbers(h.owned_revisions(ds, reversed(revisions))) == [2, 3, 4]


def test_overlapping_selector_twin_is_filtered_by_owner_uid():
    ds, revisions, pods = load("04-twin-overlapping-selector")
    twin = load("04-twin-overlapping-selector", "fluentd-twin")[0]
    # the twin's revision carries the same selector label: only the ownerReference tells them apart
    assert len(revisions) == 4
    assert all(_objects.selector_matches(ds["spec"]["selector"], r["metadata"]["labels"]) for r in revisions)
    assert numbers(h.owned_revisions(ds, revisions)) == [2, 3, 4]
    assert [r["metadata"]["name"] for r in h.owned_revisions(twin, revisions)] == ["fluentd-twin-7d8f45fbdc"]
    assert len(_objects.owned_by(ds, pods)) == 3
    assert len(_objects.owned_by(twin, pods)) == 3


def test_selector_must_match_too():
    ds, revisions, _pods = load("01-updated-v2")
    ds = copy.deepcopy(ds)
    ds["spec"]["selector"] = {"matchLabels": {"name": "other"}}
    assert h.owned_revisions(ds, revisions) == []


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {"a": "1"}, False),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_selector_matches(selector, labels, expected):
    assert _objects.selector_matches(selector, labels) is expected


# --- templates and summary -----------------------------------------------------------------


def test_revision_template_drops_patch_directive():
    ds, revisions, _pods = load("01-updated-v2")
    first = h.find_revision(h.owned_revisions(ds, revisions), 1)
    template = h.revision_template(first)
    assert "$patch" not in template
    assert "$patch" in first["data"]["spec"]["template"]  # the input is not modified
    assert template["spec"]["containers"][0]["image"] == V252


def test_live_template_equals_its_revision_after_server_defaulting():
    for stage in ("01-updated-v2", "02-undone-to-1", "03-bad-image-mid-rollout"):
        ds, revisions, _pods = load(stage)
        owned = h.owned_revisions(ds, revisions)
        assert h.current_revision(ds, owned) is owned[-1], stage
        assert _template.templates_equal(ds["spec"]["template"], h.revision_template(owned[-1]))
        assert not _template.templates_equal(ds["spec"]["template"], h.revision_template(owned[0]))


def test_templates_equal_is_semantic():
    ds = load("01-updated-v2")[0]
    live = ds["spec"]["template"]
    reordered = dict(reversed(list(copy.deepcopy(live).items())))
    reordered["metadata"]["creationTimestamp"] = None
    reordered["$patch"] = "replace"
    assert _template.templates_equal(live, reordered)
    changed = copy.deepcopy(live)
    changed["spec"]["containers"][0]["image"] = "other"
    assert not _template.templates_equal(live, changed)


def test_current_revision_none_before_the_controller_records_it():
    ds, revisions, _pods = load("01-updated-v2")
    ds = copy.deepcopy(ds)
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = "new"
    assert h.current_revision(ds, h.owned_revisions(ds, revisions)) is None
    entries = h.summarize(ds, revisions)
    assert not any(e["current"] for e in entries)
    assert all(e["pods"] is None for e in entries)  # pods unknown


def test_summarize_mid_rollout():
    ds, revisions, pods = load("04-twin-overlapping-selector")
    entries = h.summarize(ds, revisions, pods)
    assert [e["revision"] for e in entries] == [2, 3, 4]
    assert [e["images"] for e in entries] == [[V260], [V252], [BAD]]
    assert [e["pods"] for e in entries] == [0, 2, 1]  # the twin's 3 pods are not counted
    assert [e["current"] for e in entries] == [False, False, True]
    assert [e["hash"] for e in entries] == ["75767cbd6b", "84fc888bb7", "69478bc797"]
    assert all(e["name"] == f"{NAME}-{e['hash']}" for e in entries)
    # the controller copied the DaemonSet's annotation when it created revision 4
    assert [e["change_cause"] for e in entries] == [
        "update to v2.6.0 with resources",
        "kubectl apply --filename=fluentd-daemonset.yaml --record=true",
        "update to v2.6.0 with resources",
    ]
    assert all(e["created"].endswith("Z") for e in entries)


def test_revision_hash_falls_back_to_name_suffix():
    assert h.revision_hash({"metadata": {"name": "a-b-5d9c", "labels": {}}}) == "5d9c"


def test_history_table_is_kubectl_format():
    ds, revisions, _pods = load("02-undone-to-1")
    assert h.history_table(h.summarize(ds, revisions)) == (
        "REVISION  CHANGE-CAUSE\n"
        "2         update to v2.6.0 with resources\n"
        "3         kubectl apply --filename=fluentd-daemonset.yaml --record=true\n"
    )
    entries = [{"revision": 12345678901, "change_cause": None}]
    assert h.history_table(entries) == "REVISION     CHANGE-CAUSE\n12345678901  <none>\n"
    assert h.history_table([]) == "No rollout history found.\n"


# --- selection -----------------------------------------------------------------------------


def owned(stage: str) -> list[dict]:
    ds, revisions, _pods = load(stage)
    return h.owned_revisions(ds, revisions)


def test_select_previous_is_second_highest():
    assert h.select_revision(owned("03-bad-image-mid-rollout"), 0)["revision"] == 3
    assert h.select_revision(owned("03-bad-image-mid-rollout"), None)["revision"] == 3


def test_select_exact():
    assert h.select_revision(owned("03-bad-image-mid-rollout"), 2)["metadata"]["name"] == f"{NAME}-75767cbd6b"


@pytest.mark.parametrize(
    ("to_revision", "message"),
    [
        (-1, "unable to find specified revision -1 in history; available revisions: 2, 3, 4"),
        (1, "unable to find specified revision 1 in history; available revisions: 2, 3, 4"),
        (5, "unable to find specified revision 5 in history; available revisions: 2, 3, 4"),
    ],
)
def test_select_errors_list_available(to_revision, message):
    with pytest.raises(h.HistoryError) as err:
        h.select_revision(owned("03-bad-image-mid-rollout"), to_revision)
    assert str(err.value) == message


def test_select_previous_with_one_revision():
    one = owned("01-updated-v2")[:1]
    with pytest.raises(h.HistoryError, match=r"^no last revision to roll back to; available revisions: 1$"):
        h.select_revision(one, 0)
    with pytest.raises(h.HistoryError, match="no last revision to roll back to; the DaemonSet has no revisions"):
        h.select_revision([], None)


# --- diffs ---------------------------------------------------------------------------------


def test_template_diff_and_changes_between_revisions():
    revs = owned("01-updated-v2")
    first, second = (h.revision_template(r) for r in revs)
    diff = _template.template_diff(first, second, "revision 1", "revision 2")
    assert diff.startswith("--- revision 1\n+++ revision 2\n")
    assert f"-  - image: {V252}\n" in diff
    assert f"+  - image: {V260}\n" in diff
    assert "+      requests:\n" in diff
    assert _template.template_diff(first, first, "a", "b") == ""
    assert _template.template_changes(first, second) == [
        {"path": "spec.containers[name=fluentd-elasticsearch].image", "before": V252, "after": V260},
        {"path": "spec.containers[name=fluentd-elasticsearch].resources", "before": {}, "after": None},
        {
            "path": "spec.containers[name=fluentd-elasticsearch].resources.limits.memory",
            "before": None,
            "after": "200Mi",
        },
        {
            "path": "spec.containers[name=fluentd-elasticsearch].resources.requests.cpu",
            "before": None,
            "after": "100m",
        },
        {
            "path": "spec.containers[name=fluentd-elasticsearch].resources.requests.memory",
            "before": None,
            "after": "200Mi",
        },
    ]


def test_changes_on_unnamed_lists_use_indexes():
    before = {"spec": {"args": ["a", "b"]}}
    after = {"spec": {"args": ["a", "c", "d"]}}
    assert _template.template_changes(before, after) == [
        {"path": "spec.args[1]", "before": "b", "after": "c"},
        {"path": "spec.args[2]", "before": None, "after": "d"},
    ]


def test_to_yaml_sorted_block_style():
    assert _template.to_yaml({"b": 1, "a": {"c": [1]}}) == "a:\n  c:\n  - 1\nb: 1\n"


# --- undo ----------------------------------------------------------------------------------


def test_undo_patch_is_the_stored_data_plus_precondition_and_cause():
    first = owned("01-updated-v2")[0]
    assert h.undo_patch(first) == first["data"]
    patch = h.undo_patch(first, "517", "roll back to v2.5.2")
    assert patch["spec"] == first["data"]["spec"]
    assert patch["metadata"] == {
        "resourceVersion": "517",
        "annotations": {"kubernetes.io/change-cause": "roll back to v2.5.2"},
    }
    assert "metadata" not in first["data"]


def test_predicted_new_revision():
    revs = owned("03-bad-image-mid-rollout")  # 2, 3, 4
    assert [h.predicted_new_revision(revs, r) for r in revs] == [5, 5, 4]  # the highest keeps its number
    assert h.predicted_new_revision(revs[:1], revs[0]) == 2


def test_plan_undo_rolls_forward():
    ds, revisions, _pods = load("01-updated-v2")
    plan = h.plan_undo(ds, revisions, 1)
    assert plan["changed"] is True
    assert (plan["rolled_back_from"], plan["to_revision"], plan["predicted_revision"]) == (2, 1, 3)
    assert plan["target"]["metadata"]["name"] == f"{NAME}-84fc888bb7"
    assert plan["before"] == ds["spec"]["template"]
    assert plan["after"]["spec"]["containers"][0]["image"] == V252
    assert plan["message"] == f"daemonset.apps/{NAME} rolled back to revision 1"


def test_plan_matches_what_the_controller_did():
    """Fixture 02 is fixture 01 after the real undo to 1: same template, revision 1 became 3."""
    ds1, revisions1, _pods = load("01-updated-v2")
    ds2, revisions2, _pods = load("02-undone-to-1")
    plan = h.plan_undo(ds1, revisions1, 1)
    assert _template.templates_equal(plan["after"], ds2["spec"]["template"])
    reused = h.find_revision(h.owned_revisions(ds2, revisions2), plan["predicted_revision"])
    assert reused["metadata"]["name"] == plan["target"]["metadata"]["name"]


def test_plan_undo_skips_when_template_already_matches():
    ds, revisions, _pods = load("02-undone-to-1")
    plan = h.plan_undo(ds, revisions, 3)
    assert plan["changed"] is False
    assert plan["predicted_revision"] == 3
    assert plan["message"] == "skipped rollback (current template already matches revision 3)"


def test_plan_undo_errors():
    ds, revisions, _pods = load("02-undone-to-1")
    with pytest.raises(h.HistoryError, match="revision 1 in history; available revisions: 2, 3"):
        h.plan_undo(ds, revisions, 1)
