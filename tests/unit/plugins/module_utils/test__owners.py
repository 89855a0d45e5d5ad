# SPDX-License-Identifier: GPL-3.0-or-later
"""_owners: who else manages a DaemonSet, read from its labels, annotations and managedFields (a real captured
DaemonSet, with the marks each tool leaves)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _owners
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import FIELD_MANAGER, RequestError

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "rollout" / "complete.yaml"


def daemonset(labels: dict | None = None, annotations: dict | None = None, managers: list | None = None) -> dict:
    """The captured DaemonSet (applied with kubectl apply), with extra marks."""
    items = yaml.safe_load(FIXTURE.read_text())["items"]
    ds = copy.deepcopy(next(item for item in items if item["kind"] == "DaemonSet"))
    ds["metadata"].setdefault("labels", {}).update(labels or {})
    ds["metadata"].setdefault("annotations", {}).update(annotations or {})
    ds["metadata"]["managedFields"] = ds["metadata"].get("managedFields", []) + [
        {"manager": manager, "operation": operation} for manager, operation in managers or []
    ]
    return ds


def kinds(owners: list[dict]) -> list[tuple[str, str]]:
    return [(owner["kind"], owner["name"]) for owner in owners]


def test_kubectl_apply_counts_for_rollbacks_only() -> None:
    ds = daemonset()
    assert kinds(_owners.foreign_owners(ds, FIELD_MANAGER)) == [("kubectl apply", "last-applied-configuration")]
    assert _owners.foreign_owners(ds, FIELD_MANAGER, kubectl_apply=False) == []


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        (
            {},
            {"argocd.argoproj.io/tracking-id": "logging:apps/DaemonSet:kube-system/fluentd"},
            [("Argo CD", "logging")],
        ),
        ({"argocd.argoproj.io/instance": "logging"}, {}, [("Argo CD", "logging")]),
        ({"kustomize.toolkit.fluxcd.io/name": "infra", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}, {},
         [("Flux Kustomization", "flux-system/infra")]),
        ({"helm.toolkit.fluxcd.io/name": "fluentd"}, {"meta.helm.sh/release-name": "fluentd",
                                                      "meta.helm.sh/release-namespace": "logging"},
         [("Flux HelmRelease", "fluentd"), ("Helm", "logging/fluentd")]),
        ({"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "fluentd"}, {}, [("Helm", "fluentd")]),
    ],
)  # fmt: skip
def test_gitops_and_helm_marks(labels, annotations, expected) -> None:
    ds = daemonset(labels, annotations)
    assert kinds(_owners.foreign_owners(ds, FIELD_MANAGER, kubectl_apply=False)) == expected


def test_server_side_apply_managers_other_than_ours() -> None:
    ds = daemonset(managers=[("argocd-controller", "Apply"), ("platform-bot", "Apply"), (FIELD_MANAGER, "Apply"),
                             ("kubectl-set", "Update")])  # fmt: skip
    found = _owners.foreign_owners(ds, FIELD_MANAGER, kubectl_apply=False)
    assert kinds(found) == [("Argo CD", "argocd-controller"), ("server-side apply", "platform-bot")]
    assert found[0]["reverted_by"] == "its next sync"


def test_the_policy_warns_refuses_or_proceeds() -> None:
    owners = _owners.foreign_owners(daemonset({"argocd.argoproj.io/instance": "logging"}), FIELD_MANAGER, False)
    warning = _owners.owner_policy(owners, "warn", "a rollback", "DaemonSet ns/fluentd")
    assert warning.startswith("DaemonSet ns/fluentd is managed by Argo CD logging (label argocd.argoproj.io/instance;")
    assert "its next sync reverts it): what a rollback changes here does not last; going ahead" in warning
    with pytest.raises(RequestError, match=r"not done: .* set on_foreign_owner=proceed"):
        _owners.owner_policy(owners, "refuse", "a rollback", "DaemonSet ns/fluentd")
    assert _owners.owner_policy(owners, "proceed", "a rollback", "x") is None
    assert _owners.owner_policy([], "refuse", "a rollback", "x") is None
