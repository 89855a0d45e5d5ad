# SPDX-License-Identifier: GPL-3.0-or-later
"""_watch's list+watch loop against a scripted API (real DaemonSet objects from the rollout fixtures).

The integration tests run the same code against the real cluster; these pin down the paths a live cluster
rarely takes on demand: 410 Gone, a stream the server ends, transient errors, deletion, the deadlines.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _watch
from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api, K8sError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rollout"


def daemonset(stage: str, resource_version: str) -> dict:
    items = yaml.safe_load((FIXTURES / f"{stage}.yaml").read_text())["items"]
    ds = copy.deepcopy(next(item for item in items if item["kind"] == "DaemonSet"))
    ds["metadata"]["resourceVersion"] = resource_version
    return ds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedApi:
    """Answers list_objects/watch from a script; every watch "takes" `step` seconds of the fake clock per event
    and the rest of its timeout when it ends without an event."""

    def __init__(self, clock: Clock, lists: list, watches: list, step: float = 1.0) -> None:
        self.clock, self.lists, self.watches, self.step = clock, lists, watches, step
        self.calls: list[tuple] = []

    def list_objects(self, resource, namespace, label_selector=None, field_selector=None):
        self.calls.append(("list", field_selector))
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return {"metadata": {"resourceVersion": answer[0]}, "items": answer[1]}

    # what a failed wait lists for its report: nothing here (the rollout tests cover the report)
    def list_controller_revisions(self, namespace, label_selector):
        return []

    list_pods = list_events = list_controller_revisions
    owned_revisions = Api.owned_revisions  # the real lookup over the scripted lists

    def watch(self, resource, namespace, name, resource_version, timeout_seconds):
        self.calls.append(("watch", resource_version, timeout_seconds))
        script = self.watches.pop(0) if self.watches else []
        if isinstance(script, Exception):
            raise script
        for event in script:
            self.clock.now += self.step
            yield event
        if not script:
            self.clock.now += timeout_seconds


def states(handled: list):
    return lambda obj: handled.append(obj) or False


def test_relists_after_410_gone_and_resumes_after_the_stream_ends() -> None:
    clock = Clock()
    first, second, third = daemonset("bad-image", "10"), daemonset("bad-image", "20"), daemonset("complete", "30")
    api = ScriptedApi(
        clock,
        lists=[("10", [first]), ("20", [second])],
        watches=[
            [{"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}],
            [],  # the server ended the watch (timeoutSeconds)
            [
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "25"}}},
                {"type": "MODIFIED", "object": third},
            ],
        ],
    )
    seen = []

    def handle(obj):
        seen.append(obj["metadata"]["resourceVersion"])
        return obj["status"]["numberAvailable"] == 3 and obj["status"]["updatedNumberScheduled"] == 3

    assert _watch.watch_until(api, "daemonsets", "ns", "ds", handle, lambda: 1000.0, clock)
    assert seen == ["10", "20", "30"]
    assert [call[0] for call in api.calls] == ["list", "watch", "list", "watch", "watch"]
    assert api.calls[0] == ("list", "metadata.name=ds")
    assert api.calls[3][1] == "20" and api.calls[4][1] == "20"  # resumed from the last resourceVersion seen


def test_deadline_bounds_the_watch_and_returns_false() -> None:
    clock = Clock()
    api = ScriptedApi(clock, lists=[("1", [daemonset("bad-image", "1")])], watches=[])
    assert not _watch.watch_until(api, "daemonsets", "ns", "ds", states([]), lambda: 42.5, clock)
    assert api.calls[1] == ("watch", "1", 43)


def test_long_waits_are_cut_into_bounded_watches() -> None:
    clock = Clock()
    api = ScriptedApi(clock, lists=[("1", [daemonset("bad-image", "1")])], watches=[])
    assert not _watch.watch_until(api, "daemonsets", "ns", "ds", states([]), lambda: 700.0, clock)
    assert [call[2] for call in api.calls[1:]] == [300, 300, 100]


def test_deleted_and_missing_objects_are_reported_as_none() -> None:
    clock = Clock()
    ds = daemonset("bad-image", "1")
    api = ScriptedApi(clock, lists=[("1", [ds])], watches=[[{"type": "DELETED", "object": ds}]])
    handled: list = []
    assert _watch.watch_until(
        api, "daemonsets", "ns", "ds", lambda obj: handled.append(obj) or obj is None, lambda: 99.0, clock
    )
    assert handled == [ds, None]
    missing = ScriptedApi(clock, lists=[("1", [])], watches=[])
    assert _watch.watch_until(missing, "daemonsets", "ns", "ds", lambda obj: obj is None, lambda: 99.0, clock)


def test_transient_errors_relist_and_persistent_ones_are_raised() -> None:
    clock = Clock()
    ds = daemonset("complete", "5")
    api = ScriptedApi(clock, lists=[K8sError("connection refused"), ("5", [ds])], watches=[])
    assert _watch.watch_until(api, "daemonsets", "ns", "ds", lambda obj: True, lambda: 99.0, clock)
    forbidden = ScriptedApi(clock, lists=[("5", [ds])], watches=[K8sError("forbidden: cannot watch", 403)])
    with pytest.raises(K8sError, match="forbidden"):
        _watch.watch_until(forbidden, "daemonsets", "ns", "ds", states([]), lambda: 99.0, clock)


def test_a_transient_error_lasting_past_the_deadline_is_raised() -> None:
    clock = Clock()
    api = ScriptedApi(clock, lists=[K8sError("connection refused")], watches=[])
    with pytest.raises(K8sError, match="connection refused"):
        _watch.watch_until(api, "daemonsets", "ns", "ds", states([]), lambda: 0.0, clock)


def test_wait_for_rollout_progress_deadline_and_timeline() -> None:
    clock = Clock()
    stuck = daemonset("bad-image", "1")
    moved = daemonset("bad-image", "2")
    moved["status"]["numberReady"] = 3  # a counter moves, kubectl's message does not
    api = ScriptedApi(clock, lists=[("1", [stuck])], watches=[[{"type": "MODIFIED", "object": moved}]], step=5)
    result = wait_for(api, clock, timeout=100, progress_deadline=10)
    assert result["outcome"] == "progress_deadline" and result["failed"]
    assert len(result["timeline"]) == 1  # one message, printed once
    assert clock.now == 15  # progress at 5s moved the deadline from 10s to 15s


def test_wait_for_rollout_return_on_change_from() -> None:
    clock = Clock()
    before, after = daemonset("bad-image", "1"), daemonset("complete", "2")
    status = wait_for(ScriptedApi(clock, [("1", [before])], []), clock, timeout=0)["status"]
    api = ScriptedApi(clock, lists=[("1", [before])], watches=[[{"type": "MODIFIED", "object": before}], []])
    result = wait_for(api, clock, timeout=30, return_on_change_from=status)
    assert result["outcome"] == "timeout"  # unchanged: no early return
    changed = ScriptedApi(clock, lists=[("1", [after])], watches=[])
    result = wait_for(changed, clock, timeout=30, return_on_change_from=status)
    assert result["outcome"] == "complete" and result["rollout_complete"]


def test_a_progress_step_collects_changes_until_progress_step() -> None:
    clock = Clock()
    before = daemonset("bad-image", "1")
    status = wait_for(ScriptedApi(clock, [("1", [before])], []), clock, timeout=0)["status"]
    first, second = daemonset("bad-image", "2"), daemonset("crashloop", "3")
    first["status"]["updatedNumberScheduled"] = 2  # kubectl's message changes
    second["status"]["updatedNumberScheduled"] = 3
    first_watch = [{"type": "MODIFIED", "object": first}]  # the change shortens the deadline: a new watch
    second_watch = [{"type": "MODIFIED", "object": obj} for obj in (second, second)]
    api = ScriptedApi(clock, lists=[("1", [before])], watches=[first_watch, second_watch], step=1)
    clock.now = 0.0
    result = wait_for(api, clock, timeout=30, return_on_change_from=status)
    assert result["outcome"] == "changed" and not result["failed"]
    assert clock.now == _watch.PROGRESS_STEP  # not at the first change: one module run carries both
    assert len(result["timeline"]) == 3  # the unchanged first state, then both changes


def test_a_change_followed_by_silence_returns_after_progress_step() -> None:
    clock = Clock()
    before = daemonset("bad-image", "1")
    status = wait_for(ScriptedApi(clock, [("1", [before])], []), clock, timeout=0)["status"]
    moved = daemonset("bad-image", "2")
    moved["status"]["updatedNumberScheduled"] = 2
    api = ScriptedApi(clock, lists=[("1", [before])], watches=[[{"type": "MODIFIED", "object": moved}], []])
    clock.now = 0.0
    result = wait_for(api, clock, timeout=300, return_on_change_from=status)
    assert result["outcome"] == "changed"
    assert api.calls[-1] == ("watch", "2", 2)  # watched again with the step's remaining time, not 300s
    assert clock.now == 1 + 2


def wait_for(api: ScriptedApi, clock: Clock, **kwargs) -> dict:
    return _watch.wait_for_rollout(api, "ns", "ds", clock=clock, **kwargs)
