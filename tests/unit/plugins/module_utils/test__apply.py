# SPDX-License-Identifier: GPL-3.0-or-later
"""_apply's three-way merge on a DaemonSet kubectl itself applied (captured from the cluster), and _manifest's
checks of what is to be applied."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _apply, _manifest, _template
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import LAST_APPLIED

ROOT = Path(__file__).resolve().parents[4]
V1, V2 = (yaml.safe_load((ROOT / "playbooks" / "files" / name).read_text())
          for name in ("fluentd-daemonset.yaml", "fluentd-daemonset-update.yaml"))  # fmt: skip


def kubectl_applied() -> dict:
    """The seed's v1 DaemonSet as the cluster holds it after `kubectl apply` (server defaults, status, annotation)."""
    items = yaml.safe_load((ROOT / "tests/unit/fixtures/rollout/complete.yaml").read_text())["items"]
    return copy.deepcopy(next(item for item in items if item["kind"] == "DaemonSet"))


def configuration(live: dict, source: dict) -> dict:
    """SOURCE in LIVE's namespace, as it would be applied there."""
    return _manifest.prepare(source, None, live["metadata"]["namespace"], None, None)


def test_applying_what_kubectl_applied_changes_nothing() -> None:
    live = kubectl_applied()
    applied = json.loads(live["metadata"]["annotations"][LAST_APPLIED])
    assert _apply.same_object(_apply.planned(live, applied), live)
    assert _apply.same_object(_apply.planned(live, configuration(live, V1)), live)


def test_fields_the_new_configuration_drops_are_removed_and_others_stay() -> None:
    live = kubectl_applied()
    live["metadata"]["annotations"]["example.com/owner"] = "someone else"  # in no applied configuration
    v2 = _apply.planned(live, configuration(live, V2))
    pod = v2["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"] == {"memory": "200Mi"}
    assert len(pod["tolerations"]) == 2
    back = _apply.planned(v2, configuration(live, V1))
    container = back["spec"]["template"]["spec"]["containers"][0]
    assert "resources" not in container  # set by v2, dropped by v1
    assert len(back["spec"]["template"]["spec"]["tolerations"]) == 1
    assert container["terminationMessagePath"] == "/dev/termination-log"  # a server default stays
    assert back["metadata"]["annotations"]["example.com/owner"] == "someone else"
    assert json.loads(back["metadata"]["annotations"][LAST_APPLIED]) == json.loads(
        _apply.applied_configuration(configuration(live, V1))
    )
    assert back["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]  # the write is conditioned


def test_named_list_items_merge_by_key_in_the_new_order() -> None:
    live = kubectl_applied()
    config = configuration(live, V1)
    pod = config["spec"]["template"]["spec"]
    pod["containers"][0]["env"] = [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]
    pod["volumes"] = list(reversed(pod["volumes"]))
    merged = _apply.planned(live, config)["spec"]["template"]["spec"]
    assert [v["name"] for v in merged["volumes"]] == [v["name"] for v in pod["volumes"]]
    assert [e["name"] for e in merged["containers"][0]["env"]] == ["B", "A"]
    assert all(v["hostPath"].get("type") == "" for v in merged["volumes"])  # the server's default, kept


def test_nothing_live_creates_the_configuration_with_its_annotation() -> None:
    created = _apply.planned(None, V1)
    # kubectl writes the configuration without annotations as "annotations": {}
    assert json.loads(created["metadata"]["annotations"][LAST_APPLIED]) == {
        **V1,
        "metadata": {**V1["metadata"], "annotations": {}},
    }
    assert created["metadata"]["annotations"][LAST_APPLIED].endswith("\n")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("kind: Deployment\napiVersion: apps/v1\n", r"holds 0 DaemonSets \(Deployment\)"),
        ("{not: [yaml", "is not valid YAML"),
        ("", r"holds 0 DaemonSets \(nothing\)"),
        (yaml.safe_dump_all([V1, V1]), r"holds 2 DaemonSets"),
        (yaml.safe_dump({**V1, "apiVersion": "extensions/v1beta1"}), "a DaemonSet is apiVersion apps/v1"),
        (yaml.safe_dump({**V1, "spec": {**V1["spec"], "selector": {}}}), "has no spec.selector"),
        (yaml.safe_dump({**V1, "spec": {**V1["spec"], "selector": {"matchLabels": {"name": "other"}}}}),
         "does not match the pod template's labels"),
    ],
)  # fmt: skip
def test_manifests_that_are_not_one_valid_daemonset(source: str, message: str) -> None:
    with pytest.raises(_manifest.ManifestError, match=message):
        _manifest.one_daemonset(source)


@pytest.mark.parametrize(("value", "expected"), [(1, 1), ("1", 1), ("10%", "10%"), (0, 0)])
def test_budgets_become_what_the_api_wants(value, expected) -> None:
    assert _manifest.int_or_percent(value, "max_unavailable") == expected


@pytest.mark.parametrize(
    ("strategy", "message"),
    [({"type": "Rolling"}, "strategy type must be"), ({"max_unavailable": "ten"}, "max_unavailable must be"),
     ({"max_unavailable": 0, "max_surge": "0%"}, "cannot both be 0"),
     ({"min_ready_seconds": -1}, "must not be negative"), ({"max_surge": "150%"}, "max_surge must be")],
)  # fmt: skip
def test_bad_strategies_name_the_option(strategy, message) -> None:
    with pytest.raises(_manifest.RequestError, match=message):
        _manifest.strategy_spec(strategy)


def test_prepare_sets_name_namespace_change_cause_and_strategy() -> None:
    definition = _manifest.prepare(V1, "agent", "logging", "v1", {"type": "RollingUpdate", "max_unavailable": "2"})
    assert (definition["metadata"]["name"], definition["metadata"]["namespace"]) == ("agent", "logging")
    assert definition["metadata"]["annotations"]["kubernetes.io/change-cause"] == "v1"
    assert definition["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                                    "rollingUpdate": {"maxUnavailable": 2, "maxSurge": 0}}  # fmt: skip
    assert V1["metadata"].get("namespace") != "logging"  # the source is not changed


def test_a_daemonset_built_from_an_image() -> None:
    built = _manifest.build_daemonset("node-agent", "registry.example/agent:1.0", labels={"team": "sre"})
    assert built["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "node-agent"}}
    assert built["spec"]["template"]["metadata"]["labels"] == {"app.kubernetes.io/name": "node-agent", "team": "sre"}
    _manifest.check_daemonset(built)


@pytest.mark.parametrize(
    ("name", "namespace", "message"),
    [("fluentd/status", None, "the DaemonSet's name 'fluentd/status' is not a DaemonSet name"),
     ("Fluentd", None, "the DaemonSet's name 'Fluentd' is not a DaemonSet name"),
     (None, "Bad_NS", "the DaemonSet's namespace 'Bad_NS' is not a namespace name")],
)  # fmt: skip
def test_a_manifest_name_the_api_cannot_hold_is_refused_before_any_request(name, namespace, message) -> None:
    source = copy.deepcopy(V1)
    source["metadata"].update({key: value for key, value in (("name", name), ("namespace", namespace)) if value})
    with pytest.raises(_manifest.RequestError, match=message):
        _manifest.prepare(source, None, None, None, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [("a: 1\n---\nb: 2\n", "template holds 2 YAML documents; give one"), ("- a\n", "template must be a mapping"),
     ("a: [b", "template is not valid YAML")],
)  # fmt: skip
def test_a_mapping_option_as_text_says_what_it_holds(text, message) -> None:
    with pytest.raises(_manifest.RequestError, match=message):
        _manifest.parsed(text, "template")


def test_a_template_of_another_kind_names_where_it_came_from() -> None:
    deployment = {**copy.deepcopy(V1), "kind": "Deployment"}
    with pytest.raises(_template.TemplateError, match=r"^the manifest file x.yaml \(src\) is a Deployment, not a Dae"):
        _template.pod_template_of(deployment, "the manifest file x.yaml (src)")
    assert _template.pod_template_of(V1, "template") is V1["spec"]["template"]
