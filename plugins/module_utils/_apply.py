# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``kubectl apply`` (client-side) for a DaemonSet: the three-way merge of the configuration applied last time
(the ``kubectl.kubernetes.io/last-applied-configuration`` annotation), the new one and the live object.

What the new configuration sets wins; what the last one set and the new one drops is removed; everything else
on the live object (server defaults, other writers' fields) stays. Lists of named things (containers, volumes,
env ...) merge item by item on their key, as strategic merge patch does; every other list is replaced whole.
kubectl sends the result as a patch; here it is the whole object, written conditioned on its resourceVersion.
The annotation is kubectl's, so ``kubectl apply`` and this module can take turns on the same object.

Floor 1 (pure).
"""

from __future__ import annotations

import copy
import json
import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import LAST_APPLIED, Obj, annotations
from ansible_collections.kubeops.daemonset.plugins.module_utils._template import normalized

_POD = "spec.template.spec"
_CONTAINER_LISTS = {"ports": "containerPort", "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath"}
# The merge keys of the lists in a DaemonSet (the patchMergeKey tags of k8s.io/api).
MERGE_KEYS: dict[str, str] = {
    "metadata.ownerReferences": "uid",
    f"{_POD}.volumes": "name",
    f"{_POD}.imagePullSecrets": "name",
    f"{_POD}.hostAliases": "ip",
    f"{_POD}.topologySpreadConstraints": "topologyKey",
    f"{_POD}.resourceClaims": "name",
    f"{_POD}.schedulingGates": "name",
    **{f"{_POD}.{kind}": "name" for kind in ("containers", "initContainers", "ephemeralContainers")},
    **{
        f"{_POD}.{kind}.{field}": key
        for kind in ("containers", "initContainers", "ephemeralContainers")
        for field, key in _CONTAINER_LISTS.items()
    },
}
# Fields the server owns: never part of what is compared.
_SERVER_FIELDS = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp", "selfLink")


def applied_configuration(definition: Obj) -> str:
    """The annotation kubectl writes: the configuration's JSON (keys sorted) without the annotation itself."""
    config = copy.deepcopy(definition)
    config.setdefault("metadata", {}).setdefault("annotations", {}).pop(LAST_APPLIED, None)
    return json.dumps(config, sort_keys=True, separators=(",", ":")) + "\n"


def last_applied(live: Obj) -> Obj | None:
    """The configuration applied last time, or None (created otherwise, or an unreadable annotation)."""
    try:
        config = json.loads(annotations(live).get(LAST_APPLIED) or "null")
    except ValueError:
        return None
    return config if isinstance(config, dict) else None


def with_annotation(definition: Obj) -> Obj:
    """DEFINITION carrying its own last-applied-configuration annotation, as kubectl sends it."""
    config = copy.deepcopy(definition)
    config.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = applied_configuration(definition)
    return config


def _merge(current: t.Any, original: t.Any, modified: t.Any, path: str) -> t.Any:
    if isinstance(modified, dict) and isinstance(current, dict):
        merged = dict(current)
        for key in original if isinstance(original, dict) else ():
            if key not in modified:
                merged.pop(key, None)  # set last time, dropped now
        for key, value in modified.items():
            if value is None:
                merged.pop(key, None)  # an explicit null removes the field
                continue
            before = original.get(key) if isinstance(original, dict) else None
            merged[key] = _merge(current.get(key), before, value, f"{path}.{key}" if path else key)
        return merged
    key = MERGE_KEYS.get(path)
    keyed = key and isinstance(modified, list) and all(isinstance(item, dict) and key in item for item in modified)
    if keyed and isinstance(current, list):
        return _merge_list(current, original if isinstance(original, list) else [], modified, path, key)
    return copy.deepcopy(modified)


def _merge_list(current: list[t.Any], original: list[t.Any], modified: list[Obj], path: str, key: str) -> list[t.Any]:
    """Items by KEY, in the new configuration's order; items only another writer added stay, after them."""
    live = {item.get(key): item for item in current if isinstance(item, dict)}
    before = {item.get(key): item for item in original if isinstance(item, dict)}
    wanted = [item[key] for item in modified]
    merged = [_merge(live.get(item[key]), before.get(item[key]), item, path) for item in modified]
    others = [item for item in current if isinstance(item, dict) and item.get(key) not in wanted + list(before)]
    return merged + others


def planned(live: Obj | None, definition: Obj) -> Obj:
    """The object ``kubectl apply`` of DEFINITION leaves: DEFINITION itself when nothing is live."""
    modified = with_annotation(definition)
    if live is None:
        return modified
    return _merge(live, last_applied(live), modified, "")


def same_object(first: Obj, second: Obj) -> bool:
    """Equal labels, annotations and spec (what an apply can change), ignoring the fields the server owns."""

    def view(obj: Obj) -> Obj:
        metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
        return normalized({"metadata": metadata, "spec": obj.get("spec")})

    return view(first) == view(second)
