# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped RBAC manifests (docs/rbac/) are the rules _rbac says each use needs, which forbidden errors quote."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _rbac

RBAC_DOCS = Path(__file__).resolve().parents[4] / "docs" / "rbac"


def manifest(use: str) -> dict[str, list[dict]]:
    """kind -> its rules (one per resource, verbs sorted) in docs/rbac/USE.yaml (a List: one YAML document)."""
    items = yaml.safe_load((RBAC_DOCS / f"{use}.yaml").read_text())["items"]
    assert all(item["metadata"]["name"] == f"kubeops-daemonset-{use}" for item in items)
    return {item["kind"]: _rbac.merged(item["rules"]) for item in items}


def test_one_manifest_per_use() -> None:
    assert sorted(path.stem for path in RBAC_DOCS.glob("*.yaml")) == sorted(_rbac.USES)


@pytest.mark.parametrize("use", sorted(_rbac.USES))
def test_the_manifest_is_what_rbac_rules_say(use: str) -> None:
    role, cluster_role = _rbac.use_rules(use)
    assert manifest(use) == {"Role": role, **({"ClusterRole": cluster_role} if cluster_role else {})}


def test_every_module_has_a_use_and_its_needs_are_named() -> None:
    used = {module for modules, _cluster in _rbac.USES.values() for module in modules}
    assert used == set(_rbac.RBAC_RULES)
    assert _rbac.needed_by("ds_undo") == (
        " ds_undo needs: get, patch on apps/daemonsets; list on apps/controllerrevisions; with wait also list, watch "
        "on apps/daemonsets."
    )
    assert _rbac.needed_by("nope") == ""


def test_merged_rules_are_one_per_resource() -> None:
    rules = [{"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["list"]},
             {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "list"]}]  # fmt: skip
    assert _rbac.merged(rules) == [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "list"]},
    ]
