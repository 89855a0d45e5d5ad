# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure logic for DaemonSet revisions (ControllerRevisions).

Plain dicts in (API objects as the server returns them, camelCase JSON), plain data out:
which revisions a DaemonSet owns (as kubectl finds them), which one is live, which one an
undo targets (kubectl's selection rules and messages, plus the list of what exists), the pod
template stored in a revision, diffs between templates, and the undo patch.

Template equality rule: a ControllerRevision's ``data`` is the DaemonSet's ``spec.template``
exactly as the API server stored it (already defaulted) wrapped in a strategic-merge patch
``{"spec": {"template": {"$patch": "replace", ...}}}``.  Two templates are equal when their
parsed JSON is equal after dropping ``$patch`` and null values (``creationTimestamp: null`` and
an absent key mean the same).  kubectl compares the serialized bytes instead; parsed equality
is the same answer without depending on key order or serializer details.
"""

from __future__ import annotations

import copy
import difflib
import json
import typing as t

try:
    import yaml
except ImportError:  # without PyYAML the diffs fall back to (YAML-compatible) JSON
    yaml = None

CHANGE_CAUSE = "kubernetes.io/change-cause"
HASH_LABEL = "controller-revision-hash"

Obj = dict[str, t.Any]


class HistoryError(Exception):
    """A revision request that cannot be satisfied; the message lists what exists."""


# --- ownership -----------------------------------------------------------------------------


def _requirement_matches(expr: Obj, labels: dict[str, str]) -> bool:
    key, operator, values = expr["key"], expr["operator"], expr.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"unknown label selector operator {operator!r}")


def selector_matches(selector: Obj | None, labels: dict[str, str] | None) -> bool:
    """Label selector semantics of the API: a missing selector matches nothing, an empty one everything."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(_requirement_matches(expr, labels) for expr in selector.get("matchExpressions") or [])


def controller_uid(obj: Obj) -> str | None:
    """UID of the object's controller ownerReference (the one with ``controller: true``)."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def owned_by(daemonset: Obj, objects: t.Iterable[Obj]) -> list[Obj]:
    """Objects matching the DaemonSet's selector AND controlled by it (kubectl's filter)."""
    uid = daemonset["metadata"]["uid"]
    selector = daemonset["spec"].get("selector")
    return [
        obj
        for obj in objects
        if controller_uid(obj) == uid and selector_matches(selector, obj["metadata"].get("labels"))
    ]


def owned_revisions(daemonset: Obj, revisions: t.Iterable[Obj]) -> list[Obj]:
    """The DaemonSet's ControllerRevisions sorted ascending by ``.revision``."""
    return sorted(owned_by(daemonset, revisions), key=lambda rev: int(rev["revision"]))


# --- templates -----------------------------------------------------------------------------


def revision_template(revision: Obj) -> Obj:
    """The pod template stored in a ControllerRevision (its patch without ``$patch``)."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def _normalized(value: t.Any) -> t.Any:
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items() if v is not None and k != "$patch"}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def templates_equal(first: Obj, second: Obj) -> bool:
    """Semantic equality of two pod templates (see the module docstring for the rule)."""
    return _normalized(first) == _normalized(second)


def revision_hash(revision: Obj) -> str:
    """The controller-revision-hash of a revision: its label, else the suffix of its name."""
    labels = revision["metadata"].get("labels") or {}
    return labels.get(HASH_LABEL) or revision["metadata"]["name"].rsplit("-", 1)[-1]


def current_revision(daemonset: Obj, revisions: list[Obj]) -> Obj | None:
    """The newest revision whose template equals the live template (None before the controller records it)."""
    live = daemonset["spec"]["template"]
    matching = [rev for rev in revisions if templates_equal(revision_template(rev), live)]
    return matching[-1] if matching else None


def _images(template: Obj) -> list[str]:
    return [c.get("image") for c in (template.get("spec") or {}).get("containers") or []]


def summarize(daemonset: Obj, revisions: t.Iterable[Obj], pods: t.Iterable[Obj] | None = None) -> list[Obj]:
    """One plain entry per owned revision, ascending, with how many of the DaemonSet's pods run it
    (``pods: None`` when the pods are unknown)."""
    owned = owned_revisions(daemonset, revisions)
    live = current_revision(daemonset, owned)
    counts: dict[str, int] = {}
    for pod in owned_by(daemonset, pods or ()):
        pod_hash = (pod["metadata"].get("labels") or {}).get(HASH_LABEL)
        counts[pod_hash] = counts.get(pod_hash, 0) + 1
    entries = []
    for rev in owned:
        rev_hash = revision_hash(rev)
        entries.append(
            {
                "revision": int(rev["revision"]),
                "name": rev["metadata"]["name"],
                "hash": rev_hash,
                "change_cause": (rev["metadata"].get("annotations") or {}).get(CHANGE_CAUSE) or None,
                "created": rev["metadata"].get("creationTimestamp"),
                "images": _images(revision_template(rev)),
                "pods": None if pods is None else counts.get(rev_hash, 0),
                "current": live is not None and rev["metadata"]["name"] == live["metadata"]["name"],
            }
        )
    return entries


def history_table(entries: list[Obj]) -> str:
    """``kubectl rollout history`` output below its first line (Go tabwriter, padding 2)."""
    if not entries:
        return "No rollout history found.\n"
    width = max(len("REVISION"), *(len(str(e["revision"])) for e in entries)) + 2
    lines = ["REVISION".ljust(width) + "CHANGE-CAUSE"]
    lines += [str(e["revision"]).ljust(width) + (e["change_cause"] or "<none>") for e in entries]
    return "\n".join(lines) + "\n"


# --- selection -----------------------------------------------------------------------------


def describe_available(revisions: list[Obj]) -> str:
    """``available revisions: 1, 2, 3`` (or that there are none), for error messages."""
    if not revisions:
        return "the DaemonSet has no revisions"
    return "available revisions: " + ", ".join(str(rev["revision"]) for rev in revisions)


def find_revision(revisions: list[Obj], number: int) -> Obj:
    """The revision with exactly this ``.revision`` number."""
    for rev in revisions:
        if int(rev["revision"]) == number:
            return rev
    raise HistoryError(f"unable to find specified revision {number} in history; {describe_available(revisions)}")


def select_revision(revisions: list[Obj], to_revision: int | None) -> Obj:
    """The undo target with kubectl's rules: 0/None = second-highest ``.revision`` (live or not)."""
    to_revision = to_revision or 0
    if to_revision < 0:
        raise HistoryError(
            f"unable to find specified revision {to_revision} in history; {describe_available(revisions)}"
        )
    if to_revision == 0:
        if len(revisions) < 2:
            raise HistoryError(f"no last revision to roll back to; {describe_available(revisions)}")
        return sorted(revisions, key=lambda rev: int(rev["revision"]))[-2]
    return find_revision(revisions, to_revision)


# --- diffs ---------------------------------------------------------------------------------


def to_yaml(obj: t.Any) -> str:
    """Block YAML with sorted keys (JSON without PyYAML), stable for diffs."""
    if yaml is None:
        return json.dumps(obj, indent=2, sort_keys=True) + "\n"
    return yaml.safe_dump(obj, default_flow_style=False, sort_keys=True)


def template_diff(before: Obj, after: Obj, before_label: str, after_label: str) -> str:
    """Unified diff of two templates rendered as YAML; empty when they are equal."""
    return "".join(
        difflib.unified_diff(
            to_yaml(_normalized(before)).splitlines(keepends=True),
            to_yaml(_normalized(after)).splitlines(keepends=True),
            fromfile=before_label,
            tofile=after_label,
        )
    )


def _keyed(items: list[t.Any]) -> dict[str, t.Any] | None:
    """Lists of named objects (containers, volumes, env...) keyed by name, as strategic merge does."""
    if items and all(isinstance(i, dict) and "name" in i for i in items):
        names = [i["name"] for i in items]
        if len(set(names)) == len(names):
            return {f"[name={i['name']}]": i for i in items}
    return None


def _flatten(value: t.Any, path: str, out: dict[str, t.Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list) and value:
        keyed = _keyed(value)
        if keyed is not None:
            for key, item in keyed.items():
                _flatten(item, path + key, out)
        else:
            for index, item in enumerate(value):
                _flatten(item, f"{path}[{index}]", out)
    else:
        out[path] = value


def template_changes(before: Obj, after: Obj) -> list[Obj]:
    """Leaf-level changes ``{path, before, after}`` (None = absent), paths like
    ``spec.containers[name=app].image``, sorted by path."""
    flat_before: dict[str, t.Any] = {}
    flat_after: dict[str, t.Any] = {}
    _flatten(_normalized(before), "", flat_before)
    _flatten(_normalized(after), "", flat_after)
    return [
        {"path": path, "before": flat_before.get(path), "after": flat_after.get(path)}
        for path in sorted(set(flat_before) | set(flat_after))
        if flat_before.get(path) != flat_after.get(path)
    ]


# --- undo ----------------------------------------------------------------------------------


def undo_patch(revision: Obj, resource_version: str | None = None, change_cause: str | None = None) -> Obj:
    """Strategic-merge patch restoring a revision: its stored data as-is, plus optionally
    ``metadata.resourceVersion`` (the API server then answers 409 Conflict if the DaemonSet
    changed since it was read) and the change-cause annotation, in the same write."""
    patch = copy.deepcopy(revision["data"])
    metadata: Obj = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if change_cause is not None:
        metadata["annotations"] = {CHANGE_CAUSE: change_cause}
    if metadata:
        patch["metadata"] = metadata
    return patch


def predicted_new_revision(revisions: list[Obj], target: Obj) -> int:
    """The number the controller gives the target: it reuses the target's ControllerRevision and renumbers
    it max(other revisions) + 1 unless it is already above them."""
    name = target["metadata"]["name"]
    others = [int(rev["revision"]) for rev in revisions if rev["metadata"]["name"] != name]
    return max(max(others, default=0) + 1, int(target["revision"]))


def plan_undo(daemonset: Obj, revisions: t.Iterable[Obj], to_revision: int | None) -> Obj:
    """What an undo would do, without I/O; raises HistoryError like kubectl (with what exists).

    Returns ``target`` (the ControllerRevision), ``rolled_back_from`` (the live revision number or
    None), ``to_revision``, ``changed`` (False = kubectl's "skipped rollback"), ``predicted_revision``,
    ``before``/``after`` templates and ``message``.
    """
    owned = owned_revisions(daemonset, revisions)
    target = select_revision(owned, to_revision)
    live = current_revision(daemonset, owned)
    before = daemonset["spec"]["template"]
    after = revision_template(target)
    number = int(target["revision"])
    changed = not templates_equal(before, after)
    name = daemonset["metadata"]["name"]
    return {
        "target": target,
        "rolled_back_from": int(live["revision"]) if live else None,
        "to_revision": number,
        "changed": changed,
        "predicted_revision": predicted_new_revision(owned, target) if changed else number,
        "before": before,
        "after": after,
        "message": (
            f"daemonset.apps/{name} rolled back to revision {number}"
            if changed
            else f"skipped rollback (current template already matches revision {number})"
        ),
    }
