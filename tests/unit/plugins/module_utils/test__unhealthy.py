"""_unhealthy: which nodes a rollout may leave behind, on objects captured from the real cluster."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils._history import current_hash
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import node_trouble, troubled_node_names
from ansible_collections.kubeops.daemonset.plugins.module_utils._unhealthy import allowed, left_behind, verdict

FIXTURES = Path(__file__).parents[2] / "fixtures" / "realnode"
LATER = datetime(2030, 1, 1, tzinfo=timezone.utc)  # long after every pod became ready (minReadySeconds passed)


def scene(name: str) -> dict:
    return yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())


def view(captured: dict, nodes: list | None = None, pods: list | None = None) -> dict:
    ds = captured["daemonset"]
    return left_behind(ds, nodes or captured["nodes"], captured["pods"] if pods is None else pods,
                       current_hash(ds, captured["revisions"]), LATER)  # fmt: skip


def healthy_twin(node: dict, name: str) -> dict:
    twin = copy.deepcopy(node)
    twin["metadata"]["name"] = twin["metadata"]["labels"]["kubernetes.io/hostname"] = name
    twin["spec"].pop("taints", None)
    twin["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    return twin


@pytest.mark.parametrize("kind", ["real", "kwok"])
def test_a_stopped_kubelet_is_unreachable_and_its_not_ready_pod_skipped(kind: str) -> None:
    captured = scene(f"kubelet-stopped-{kind}")
    (node,) = captured["nodes"]
    assert node_trouble(node) == "unreachable"
    found = view(captured)
    assert found["targets"] == 1 and found["pending"] == []
    assert [(s["node"], s["trouble"]) for s in found["skipped"]] == [(node["metadata"]["name"], "unreachable")]
    assert found["skipped"][0]["pod"].startswith("new pod not available")


def test_within_the_budget_done_over_it_not_and_the_stall_is_explained() -> None:
    captured = scene("kubelet-stopped-real")
    dead = captured["nodes"][0]
    twin = healthy_twin(dead, "healthy-1")
    ds = captured["daemonset"]
    ds["spec"]["template"]["spec"]["nodeSelector"] = {}  # the DaemonSet also targets the healthy twin
    ds["spec"]["template"]["spec"].pop("affinity", None)
    found = view(captured, nodes=[dead, twin])
    assert found["targets"] == 2 and found["pending"] == ["healthy-1"]  # no pod there yet
    stalled = verdict(found, 1)
    assert not stalled["done"] and "use up maxUnavailable=1" in stalled["line"] and "healthy-1" in stalled["line"]
    on_twin = copy.deepcopy(captured["pods"][0])
    on_twin["spec"]["nodeName"] = "healthy-1"
    on_twin["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    found = view(captured, nodes=[dead, twin], pods=[*captured["pods"], on_twin])
    assert found["pending"] == []
    assert verdict(found, 1)["done"] and verdict(found, "50%")["done"]
    over = verdict(found, 0)
    assert not over["done"] and over["over"] and "over unhealthy_node_budget=0" in over["line"]
    assert not verdict(found, "49%")["done"]  # rounded down: 49% of 2 nodes allows none


def test_a_dropped_node_has_no_pod_and_healthy_nodes_without_trouble_are_not_skipped() -> None:
    captured = scene("kubelet-stopped-kwok")
    found = view(captured, pods=[])
    assert [s["pod"] for s in found["skipped"]] == ["no pod"]
    assert verdict(view(scene("missing-image-kwok")), 1)["line"] is None  # a healthy node is never skipped


@pytest.mark.parametrize(
    ("budget", "targets", "expected"), [(0, 10, 0), (2, 10, 2), ("10%", 10, 1), ("19%", 10, 1), ("5%", 10, 0)]
)
def test_budget_counts_and_percentages_round_down(budget, targets: int, expected: int) -> None:
    assert allowed(budget, targets) == expected


def test_troubled_names_from_the_table_or_a_plain_list() -> None:
    table = {
        "kind": "Table",
        "columnDefinitions": [{"name": "Name"}, {"name": "Status"}, {"name": "Roles"}],
        "rows": [{"cells": ["a", "Ready", ""]}, {"cells": ["b", "NotReady", ""]},
                 {"cells": ["c", "Ready,SchedulingDisabled", ""]}, {"cells": ["d", "Unknown", ""]}],
    }  # fmt: skip
    assert troubled_node_names(table) == ["b", "c", "d"]
    stopped = scene("kubelet-stopped-real")["nodes"][0]
    healthy = healthy_twin(stopped, "fine")
    assert troubled_node_names({"kind": "NodeList", "items": [stopped, healthy]}) == [stopped["metadata"]["name"]]
