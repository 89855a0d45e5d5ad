# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""DaemonSet revisions (ControllerRevisions): which a DaemonSet owns (as kubectl finds them), which one is live,
which one an undo targets (kubectl's selection rules and messages, plus the list of what exists), the template
stored in a revision, and the undo itself.

Floor 1 (pure): API objects in, plain data out.
"""

from __future__ import annotations

import copy
import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    CHANGE_CAUSE,
    HASH_LABEL,
    Obj,
    RequestError,
    annotations,
    labels,
    owned_by,
    pod_hash,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._template import (
    template_changes,
    template_diff,
    templates_equal,
)


class HistoryError(RequestError):
    """A revision request that cannot be satisfied; the message lists what exists."""


def owned_revisions(daemonset: Obj, revisions: t.Iterable[Obj]) -> list[Obj]:
    """The DaemonSet's ControllerRevisions sorted ascending by ``.revision``."""
    return sorted(owned_by(daemonset, revisions), key=lambda rev: int(rev["revision"]))


def revision_template(revision: Obj) -> Obj:
    """The pod template stored in a ControllerRevision (its patch without ``$patch``)."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revision_hash(revision: Obj) -> str:
    """The controller-revision-hash of a revision: its label, else the suffix of its name."""
    return labels(revision).get(HASH_LABEL) or revision["metadata"]["name"].rsplit("-", 1)[-1]


def current_revision(daemonset: Obj, revisions: list[Obj]) -> Obj | None:
    """The newest revision whose template equals the live template (None before the controller records it)."""
    live = daemonset["spec"]["template"]
    matching = [rev for rev in revisions if templates_equal(revision_template(rev), live)]
    return matching[-1] if matching else None


def current_hash(daemonset: Obj, revisions: t.Iterable[Obj] | None) -> str | None:
    """The controller-revision-hash of the live template (None when the revisions are unknown or it has none)."""
    if revisions is None:
        return None
    live = current_revision(daemonset, owned_revisions(daemonset, revisions))
    return revision_hash(live) if live else None


def revision_ref(revision: Obj | None) -> Obj | None:
    """``{number, name, hash}`` of a revision, as results report it."""
    if revision is None:
        return None
    return {"number": int(revision["revision"]), "name": revision["metadata"]["name"], "hash": revision_hash(revision)}


def _images(template: Obj) -> list[str]:
    return [c.get("image") for c in (template.get("spec") or {}).get("containers") or []]


def summarize(daemonset: Obj, revisions: t.Iterable[Obj], pods: t.Iterable[Obj] | None = None) -> list[Obj]:
    """One plain entry per owned revision, ascending, with how many of the DaemonSet's pods run it
    (``pods: None`` when the pods are unknown)."""
    owned = owned_revisions(daemonset, revisions)
    live = current_revision(daemonset, owned)
    counts: dict[str | None, int] = {}
    for pod in owned_by(daemonset, pods or ()):
        counts[pod_hash(pod)] = counts.get(pod_hash(pod), 0) + 1
    return [
        {
            "revision": int(rev["revision"]),
            "name": rev["metadata"]["name"],
            "hash": revision_hash(rev),
            "change_cause": annotations(rev).get(CHANGE_CAUSE) or None,
            "created": rev["metadata"].get("creationTimestamp"),
            "images": _images(revision_template(rev)),
            "pods": None if pods is None else counts.get(revision_hash(rev), 0),
            "current": live is not None and rev["metadata"]["name"] == live["metadata"]["name"],
        }
        for rev in owned
    ]


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


def compare_revisions(revisions: list[Obj], first: int, second: int) -> Obj:
    """Two revisions' templates side by side: a unified diff and the leaf-level changes."""
    before = revision_template(find_revision(revisions, first))
    after = revision_template(find_revision(revisions, second))
    return {
        "from_revision": first,
        "to_revision": second,
        "diff": template_diff(before, after, f"revision {first}", f"revision {second}"),
        "changes": template_changes(before, after),
    }


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


def replan_undo(daemonset: Obj, revisions: t.Iterable[Obj], plan: Obj) -> Obj:
    """The plan again after a 409 Conflict, on what was re-read: the same target ControllerRevision (its number
    may have moved meanwhile); HistoryError when it is gone."""
    owned = owned_revisions(daemonset, revisions)
    target_name = plan["target"]["metadata"]["name"]
    numbers = [int(rev["revision"]) for rev in owned if rev["metadata"]["name"] == target_name]
    if not numbers:
        raise HistoryError(
            f"revision {plan['to_revision']} ({target_name}) disappeared while rolling back; "
            f"{describe_available(owned)}"
        )
    return plan_undo(daemonset, owned, numbers[0])
