# SPDX-License-Identifier: GPL-3.0-or-later
"""ds_undo's conflict handling (409 -> re-read -> retry once), which a real cluster cannot trigger on demand.

The objects are the real ones captured from the cluster (tests/unit/fixtures/history); only the API calls
are stood in for by a small recorder.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _history
from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api, K8sError
from ansible_collections.kubeops.daemonset.plugins.modules import ds_undo

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "history"
NAME = "fluentd-elasticsearch"


def state(stage: str, generation_bump: int = 0) -> tuple[dict, list[dict]]:
    items = yaml.safe_load((FIXTURES / f"{stage}.yaml").read_text())["items"]
    (ds,) = [i for i in items if i["kind"] == "DaemonSet" and i["metadata"]["name"] == NAME]
    ds = copy.deepcopy(ds)
    ds["metadata"]["generation"] += generation_bump
    return ds, [i for i in items if i["kind"] == "ControllerRevision"]


class Recorder:
    """Answers reads from a queue of cluster states; the first CONFLICTS patches get 409."""

    def __init__(self, states: list[tuple[dict, list[dict]]], conflicts: int) -> None:
        self.states, self.conflicts, self.patches = states, conflicts, []
        self.reads = 0

    def require_daemonset(self, namespace: str, name: str) -> dict:
        self.reads += 1
        return self.states[min(self.reads, len(self.states)) - 1][0]

    def list_controller_revisions(self, namespace: str, selector: str) -> list[dict]:
        return self.states[min(self.reads, len(self.states)) - 1][1]

    owned_revisions = Api.owned_revisions  # the real lookup over the scripted lists

    def patch_daemonset(self, namespace: str, name: str, body: dict, dry_run: bool = False) -> dict:
        self.patches.append(body)
        if len(self.patches) <= self.conflicts:
            raise K8sError("Operation cannot be fulfilled: the object has been modified", 409)
        return {}


class Module:
    check_mode = False

    def __init__(self) -> None:
        self.params = {"namespace": "ns", "name": NAME, "change_cause": None}
        self.warnings: list[str] = []

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)


def undo(api: Recorder, to_revision: int = 1) -> tuple[dict, Module]:
    module = Module()
    daemonset, revisions = ds_undo.load(api, "ns", NAME)
    plan = _history.plan_undo(daemonset, revisions, to_revision)
    return ds_undo.write(module, api, daemonset, plan), module


def test_no_conflict_sends_one_conditioned_patch():
    ds, revisions = state("01-updated-v2")
    api = Recorder([(ds, revisions)], conflicts=0)
    plan, _module = undo(api)
    assert plan["changed"] and len(api.patches) == 1
    assert api.patches[0]["metadata"] == {"resourceVersion": ds["metadata"]["resourceVersion"]}
    assert api.patches[0]["spec"]["template"]["$patch"] == "replace"


def test_status_only_conflict_retries_quietly_with_the_new_resource_version():
    first = state("01-updated-v2")
    second = copy.deepcopy(first)
    second[0]["metadata"]["resourceVersion"] = "99999"
    api = Recorder([first, second], conflicts=1)
    plan, module = undo(api)
    assert plan["changed"] and plan["to_revision"] == 1
    assert [p["metadata"]["resourceVersion"] for p in api.patches] == [first[0]["metadata"]["resourceVersion"], "99999"]
    assert module.warnings == []


def test_spec_change_meanwhile_is_warned():
    api = Recorder([state("01-updated-v2"), state("01-updated-v2", generation_bump=1)], conflicts=1)
    _plan, module = undo(api)
    assert len(api.patches) == 2
    assert module.warnings == [
        "the DaemonSet's spec changed while rolling back; re-read it and retried against the new state"
    ]


def test_two_conflicts_fail_without_a_third_write():
    api = Recorder([state("01-updated-v2"), state("01-updated-v2")], conflicts=2)
    with pytest.raises(K8sError, match=r"kept changing while rolling back \(409 Conflict twice\); nothing was"):
        undo(api)
    assert len(api.patches) == 2


def test_someone_else_rolled_back_meanwhile():
    """The re-read finds the target live already (renumbered 1 -> 3): nothing more to write."""
    api = Recorder([state("01-updated-v2"), state("02-undone-to-1", generation_bump=1)], conflicts=1)
    plan, _module = undo(api)
    assert len(api.patches) == 1
    assert plan["changed"] is False
    assert plan["to_revision"] == 3  # same ControllerRevision, its new number
    assert plan["message"] == "skipped rollback (current template already matches revision 3)"


def test_target_pruned_meanwhile():
    ds, revisions = state("01-updated-v2")
    pruned = [r for r in revisions if r["revision"] != 1]
    api = Recorder([(ds, revisions), (ds, pruned)], conflicts=1)
    with pytest.raises(_history.HistoryError, match=r"revision 1 \(fluentd-elasticsearch-84fc888bb7\) disappeared"):
        undo(api)
