# SPDX-License-Identifier: GPL-3.0-or-later
"""ds_undo's conflict handling (409 -> read again -> decide again), which a real cluster cannot trigger on demand.

The objects are the real ones captured from the cluster (tests/unit/fixtures/history); only the API calls
are stood in for by a small recorder. Check mode keeps the run to the plan and its write (no read-back).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _history
from ansible_collections.kubeops.daemonset.plugins.module_utils._client import K8sError
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops import write
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import Request
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

    def list_items(self, resource: str, namespace: str, label_selector: str | None = None) -> list[dict]:
        assert resource == "controllerrevisions"
        return self.states[min(self.reads, len(self.states)) - 1][1]

    def patch(self, resource: str, namespace: str, name: str, body: dict, dry_run: bool = False) -> dict:
        self.patches.append(body)
        if len(self.patches) <= self.conflicts:
            raise K8sError("Operation cannot be fulfilled: the object has been modified", 409)
        return {}


def undo(api: Recorder, to_revision: int = 1) -> tuple[dict, Request]:
    params = {"namespace": "ns", "name": NAME, "to_revision": to_revision, "change_cause": None, "wait": False,
              "wait_timeout": 300, "from_template_generation": None, "on_foreign_owner": "warn"}  # fmt: skip
    request = Request(params, check_mode=True)
    return ds_undo.run(request, api), request


def conflict_warnings(request: Request) -> list[str]:
    """The warnings about the conflict (the fixtures were applied with kubectl apply: that warning comes too)."""
    return [warning for warning in request.warnings if "last-applied-configuration" not in warning]


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(write.time, "sleep", lambda seconds: None)


def test_no_conflict_sends_one_conditioned_patch():
    ds, revisions = state("01-updated-v2")
    api = Recorder([(ds, revisions)], conflicts=0)
    result, _request = undo(api)
    assert result["changed"] and len(api.patches) == 1
    assert api.patches[0]["metadata"] == {"resourceVersion": ds["metadata"]["resourceVersion"]}
    assert api.patches[0]["spec"]["template"]["$patch"] == "replace"


def test_status_only_conflict_retries_quietly_with_the_new_resource_version():
    first = state("01-updated-v2")
    second = copy.deepcopy(first)
    second[0]["metadata"]["resourceVersion"] = "99999"
    api = Recorder([first, second], conflicts=1)
    result, request = undo(api)
    assert result["changed"] and result["to_revision"] == 1
    assert [p["metadata"]["resourceVersion"] for p in api.patches] == [first[0]["metadata"]["resourceVersion"], "99999"]
    assert conflict_warnings(request) == []


def test_spec_change_meanwhile_is_warned():
    api = Recorder([state("01-updated-v2"), state("01-updated-v2", generation_bump=1)], conflicts=1)
    _result, request = undo(api)
    assert len(api.patches) == 2
    assert conflict_warnings(request) == [
        "the DaemonSet's spec changed while rolling back; re-read it and retried against the new state"
    ]


def test_conflicts_that_never_stop_fail_after_a_bounded_number_of_writes():
    api = Recorder([state("01-updated-v2"), state("01-updated-v2")], conflicts=100)
    with pytest.raises(K8sError, match=r"kept changing while it was written \(8 times 409 Conflict\); nothing was"):
        undo(api)
    assert len(api.patches) == write.CONFLICT_ATTEMPTS


def test_someone_else_rolled_back_meanwhile():
    """The re-read finds the target live already (renumbered 1 -> 3): nothing more to write."""
    api = Recorder([state("01-updated-v2"), state("02-undone-to-1", generation_bump=1)], conflicts=1)
    result, _request = undo(api)
    assert len(api.patches) == 1
    assert result["changed"] is False
    assert result["to_revision"] == 3  # same ControllerRevision, its new number
    assert result["msg"] == "skipped rollback (current template already matches revision 3)"


def test_target_pruned_meanwhile():
    ds, revisions = state("01-updated-v2")
    pruned = [r for r in revisions if r["revision"] != 1]
    api = Recorder([(ds, revisions), (ds, pruned)], conflicts=1)
    with pytest.raises(_history.HistoryError, match=r"revision 1 \(fluentd-elasticsearch-84fc888bb7\) disappeared"):
        undo(api)


def test_a_template_another_writer_changed_is_not_rolled_back():
    ds, revisions = state("01-updated-v2")
    api = Recorder([(ds, revisions)], conflicts=0)
    params = {"namespace": "ns", "name": NAME, "to_revision": 1, "change_cause": None, "wait": False,
              "wait_timeout": 300, "from_template_generation": 99, "on_foreign_owner": "warn"}  # fmt: skip
    with pytest.raises(_history.RequestError, match="changed by another writer"):
        ds_undo.run(Request(params, check_mode=True), api)
    assert api.patches == []
