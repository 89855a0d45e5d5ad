# SPDX-License-Identifier: GPL-3.0-or-later
"""_watch's list+watch loop and _ops.wait's rollout wait against a scripted API (real DaemonSet objects from the
rollout fixtures).

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
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.wait import RolloutWait

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
        self.deadline = None

    def list_objects(self, resource, namespace, label_selector=None, field_selector=None):
        self.calls.append(("list", field_selector))
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return {"metadata": {"resourceVersion": answer[0]}, "items": answer[1]}

    # what a wait lists for its result and a failed wait for its report: nothing here (the rollout tests cover it)
    def list_items(self, resource, namespace, label_selector=None, field_selector=None):
        return []

    def list_table(self, resource, namespace):  # every node Ready
        return {"kind": "Table", "columnDefinitions": [{"name": "Name"}, {"name": "Status"}], "rows": []}

    optional = Api.optional  # the real rule over the scripted lists

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
    api = ScriptedApi(clock, lists=[K8sError("connection refused", transient=True), ("5", [ds])], watches=[])
    assert _watch.watch_until(api, "daemonsets", "ns", "ds", lambda obj: True, lambda: 99.0, clock)
    forbidden = ScriptedApi(clock, lists=[("5", [ds])], watches=[K8sError("forbidden: cannot watch", 403)])
    with pytest.raises(K8sError, match="forbidden"):
        _watch.watch_until(forbidden, "daemonsets", "ns", "ds", states([]), lambda: 99.0, clock)


def test_a_transient_error_lasting_past_the_deadline_is_raised() -> None:
    clock = Clock()
    api = ScriptedApi(clock, lists=[K8sError("connection refused", transient=True)], watches=[])
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


def test_an_untrusted_certificate_is_not_retried() -> None:
    clock = Clock()
    api = ScriptedApi(clock, lists=[K8sError("cannot connect: the server's certificate is not trusted")], watches=[])
    with pytest.raises(K8sError, match="not trusted"):
        _watch.watch_until(api, "daemonsets", "ns", "ds", states([]), lambda: 99.0, clock)
    assert len(api.calls) == 1


def test_each_new_message_is_reported_as_it_is_observed_in_one_watch() -> None:
    clock = Clock()
    before = daemonset("bad-image", "1")
    first, done = daemonset("bad-image", "2"), daemonset("complete", "3")
    first["status"]["updatedNumberScheduled"] = 2  # kubectl's message changes
    repeated = daemonset("bad-image", "4")
    repeated["status"]["updatedNumberScheduled"] = 2  # the same message again: not reported twice
    events = [{"type": "MODIFIED", "object": obj} for obj in (first, repeated, done)]
    api = ScriptedApi(clock, lists=[("1", [before])], watches=[events])
    said: list[tuple[float, str]] = []
    result = wait_for(api, clock, timeout=300, on_message=lambda status: said.append((clock.now, status["message"])))
    assert result["outcome"] == "complete" and result["rollout_complete"]
    assert [when for when, _message in said] == [0, 1, 3]  # each line the moment its event arrives
    assert [entry["message"] for entry in result["timeline"]] == [message for _when, message in said]
    assert [call[0] for call in api.calls] == ["list", "watch"]  # one list and one watch for the whole wait


def test_another_writers_template_supersedes_the_wait() -> None:
    clock = Clock()
    ours = daemonset("bad-image", "1")
    ours["metadata"].setdefault("annotations", {})["deprecated.daemonset.template.generation"] = "2"
    theirs = copy.deepcopy(ours)
    theirs["metadata"]["annotations"]["deprecated.daemonset.template.generation"] = "3"
    theirs["metadata"]["resourceVersion"] = "2"
    api = ScriptedApi(clock, lists=[("1", [ours])], watches=[[{"type": "MODIFIED", "object": theirs}]])
    result = wait_for(api, clock, timeout=300, template_generation=2)
    assert result["failed"] and result["outcome"] == "superseded"
    assert "changed by another writer during the wait (template generation 3, this wait was for 2)" in result["msg"]


def wait_for(api: ScriptedApi, clock: Clock, timeout: float, on_delete: str = "report", **kwargs) -> dict:
    return RolloutWait(api, "ns", "ds", timeout=timeout, on_delete=on_delete, clock=clock, **kwargs).run()
