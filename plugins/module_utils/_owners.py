# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Who else manages a DaemonSet: a GitOps reconciler (Argo CD, Flux), a Helm release, ``kubectl apply``, or another
server-side apply manager. Their next sync reverts an undo or an update made past them, so the writers of this
collection say so (warn), stop (refuse) or go ahead, as asked.

Floor 1 (pure).
"""

from __future__ import annotations

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    LAST_APPLIED,
    Obj,
    RequestError,
    annotations,
    labels,
)

POLICIES = ("warn", "refuse", "proceed")
# field managers of the reconcilers' own server-side applies
_RECONCILER_MANAGERS = {"argocd-controller": "Argo CD", "argocd-application-controller": "Argo CD",
                        "kustomize-controller": "Flux", "helm-controller": "Flux"}  # fmt: skip


# What brings the owner's configuration back, per kind of owner.
_REVERTED_BY = {"Argo CD": "its next sync", "Flux Kustomization": "its next reconciliation",
                "Flux HelmRelease": "its next reconciliation", "Flux": "its next reconciliation",
                "Helm": "the next helm upgrade", "kubectl apply": "the next kubectl apply of its manifest",
                "server-side apply": "that manager's next apply"}  # fmt: skip


def _owner(kind: str, name: str, evidence: str) -> Obj:
    return {"kind": kind, "name": name, "evidence": evidence, "reverted_by": _REVERTED_BY[kind]}


def _gitops(meta_labels: dict[str, str], meta_annotations: dict[str, str]) -> list[Obj]:
    found = []
    if "argocd.argoproj.io/tracking-id" in meta_annotations:
        application = meta_annotations["argocd.argoproj.io/tracking-id"].split(":", 1)[0]
        found.append(_owner("Argo CD", application, "annotation argocd.argoproj.io/tracking-id"))
    elif "argocd.argoproj.io/instance" in meta_labels:
        found.append(_owner("Argo CD", meta_labels["argocd.argoproj.io/instance"], "label argocd.argoproj.io/instance"))
    for controller, label in (("Flux Kustomization", "kustomize.toolkit.fluxcd.io"),
                              ("Flux HelmRelease", "helm.toolkit.fluxcd.io")):  # fmt: skip
        if f"{label}/name" in meta_labels:
            where = meta_labels.get(f"{label}/namespace")
            name = f"{where}/{meta_labels[f'{label}/name']}" if where else meta_labels[f"{label}/name"]
            found.append(_owner(controller, name, f"label {label}/name"))
    return found


def foreign_owners(daemonset: Obj, field_manager: str, kubectl_apply: bool = True) -> list[Obj]:
    """Every other manager of DAEMONSET that would put its own configuration back:
    ``[{kind, name, evidence, reverted_by}]``.

    Imperative writers (``kubectl set image``, ``kubectl edit``, a controller's status) are not owners; FIELD_MANAGER
    (this collection's server-side apply manager) is not a foreign one. KUBECTL_APPLY: count ``kubectl apply``'s
    annotation (kubectl warns of it on undo, not on ``set image``)."""
    meta_labels, meta_annotations = labels(daemonset), annotations(daemonset)
    found = _gitops(meta_labels, meta_annotations)
    if "meta.helm.sh/release-name" in meta_annotations:
        release = meta_annotations["meta.helm.sh/release-name"]
        where = meta_annotations.get("meta.helm.sh/release-namespace")
        found.append(_owner("Helm", f"{where}/{release}" if where else release, "annotation meta.helm.sh/release-name"))
    elif meta_labels.get("app.kubernetes.io/managed-by") == "Helm":
        found.append(
            _owner("Helm", meta_labels.get("app.kubernetes.io/instance", "?"), "label app.kubernetes.io/managed-by")
        )
    if kubectl_apply and LAST_APPLIED in meta_annotations:
        found.append(_owner("kubectl apply", "last-applied-configuration", f"annotation {LAST_APPLIED}"))
    kinds = {owner["kind"] for owner in found}
    for entry in daemonset["metadata"].get("managedFields") or []:
        manager = entry.get("manager") or ""
        if entry.get("operation") != "Apply" or manager == field_manager:
            continue
        kind = _RECONCILER_MANAGERS.get(manager, "server-side apply")
        if kind not in kinds:
            found.append(_owner(kind, manager, f"server-side apply field manager {manager}"))
            kinds.add(kind)
    return found


def describe(owners: list[Obj]) -> str:
    """``Argo CD fluentd (annotation argocd.argoproj.io/tracking-id; its next sync reverts it)``, joined."""
    return "; ".join(f"{o['kind']} {o['name']} ({o['evidence']}; {o['reverted_by']} reverts it)" for o in owners)


def owner_policy(owners: list[Obj], policy: str, action: str, what: str) -> str | None:
    """What POLICY makes of OWNERS before ACTION (``roll back``, ``update``...): RequestError for ``refuse``, the
    warning for ``warn``, None when there is no owner or with ``proceed``."""
    if not owners or policy == "proceed":
        return None
    text = f"{what} is managed by {describe(owners)}: what {action} changes here does not last"
    if policy == "refuse":
        raise RequestError(f"not done: {text}. Change its source instead (Git, the chart, the manifest), or set "
                           "on_foreign_owner=proceed")  # fmt: skip
    return f"{text}; going ahead (on_foreign_owner=warn)"
