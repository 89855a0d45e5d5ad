# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A DaemonSet change across a fleet of clusters (one inventory host per cluster): the waves, each wave's failure
budget, the verdict that halts the fleet, what to roll back, and the fleet's summary.

The waves are computed here, once, from the inventory's groups: playbooks/fleet_update.yml gives the rollout play
their order as its host pattern and their sizes as its ``serial``, so Ansible runs exactly these waves. Each
cluster's record (``kubeops_fleet``, a host fact) says what happened to it; the verdict and the summary are read
from the records of every cluster, so no state lives outside the hosts' facts and the clusters themselves.

Floor 1 (pure).
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import RequestError

Obj = dict[str, t.Any]
SIZE = re.compile(r"^(\d+)(%?)$")

# a cluster's outcome as fleet_update.yml records it (also "would update": planned, not reached) and the summary shows
AT_TARGET, UPDATED, FAILED, UNTOUCHED = "already at target", "updated", "failed", "untouched"


def names(pattern: str | list[str]) -> list[str]:
    """The names of a host pattern made of group and host names (``fleet``, ``eu,us``, ``eu:us`` or a list)."""
    items = pattern if isinstance(pattern, list) else re.split(r"[,:]", str(pattern))
    return [str(item).strip() for item in items if str(item).strip()]


def targets(pattern: str | list[str], groups: dict[str, list[str]]) -> list[str]:
    """The clusters a pattern names, in inventory order, each once (RequestError: a name that is neither)."""
    found: list[str] = []
    hosts = set(groups.get("all", []))
    for name in names(pattern):
        if name not in groups and name not in hosts:
            raise RequestError(f"fleet_clusters: {name!r} is neither a group nor a host of the inventory")
        found.extend(host for host in groups.get(name, [name]) if host not in found)
    return found


def share(size: str, total: int) -> int:
    """A wave size, ``N`` or ``N%`` of TOTAL clusters: as Ansible's ``serial`` counts it (rounded down, at least 1)."""
    number, percent = SIZE.match(size).groups()  # type: ignore[union-attr]
    return max(1, int(int(number) * total / 100)) if percent else int(number)


def waves(spec: list[t.Any], clusters: list[str], groups: dict[str, list[str]]) -> list[list[str]]:
    """The waves of CLUSTERS: each item of SPEC is a size (``1``, ``"25%"``, of all the clusters) or a group name
    (its clusters not in an earlier wave); the last item repeats until every cluster has a wave, as the last value of
    ``serial`` does (a last group: the clusters left form one wave). RequestError for a bad item."""
    if not isinstance(spec, list) or not spec:
        raise RequestError(f"fleet_waves must be a non-empty list of sizes or group names (got {spec!r})")
    left, planned = list(clusters), []
    for position, item in enumerate(spec):
        last = position == len(spec) - 1
        while left:
            wave = _wave(str(item).strip(), left, len(clusters), groups)
            if wave:
                planned.append(wave)
                left = [cluster for cluster in left if cluster not in wave]
            if not last or not wave:
                break
    if left:
        planned.append(left)
    return planned


def _wave(item: str, left: list[str], total: int, groups: dict[str, list[str]]) -> list[str]:
    if SIZE.match(item):
        size = share(item, total)
        if size < 1:
            raise RequestError(f"fleet_waves: a wave of {item} clusters is empty; use sizes of at least 1")
        return left[:size]
    if item not in groups:
        raise RequestError(f"fleet_waves: {item!r} is neither a size (N or N%) nor a group of the inventory")
    return [cluster for cluster in left if cluster in groups[item]]


def allowed_failures(budget: t.Any, wave_size: int) -> int:
    """How many clusters of a wave may fail while the fleet goes on: a count, or a percentage of the wave rounded
    down (so 10% of a 5-cluster wave allows none)."""
    text = str(budget).strip()
    matched = SIZE.match(text)
    if not matched:
        raise RequestError(f"fleet_failure_budget must be a count or a percentage such as 10% (got {budget!r})")
    number, percent = matched.groups()
    return int(int(number) * wave_size / 100) if percent else int(number)


def verdict(records: dict[str, Obj], budget: t.Any) -> Obj:
    """Has a wave failed beyond its budget? RECORDS: each cluster's ``kubeops_fleet`` fact (clusters without one are
    left out). ``{"halted": bool, "wave": its number or None, "failed": its failed clusters, "allowed": n}``."""
    by_wave: dict[int, list[str]] = {}
    for cluster, record in records.items():
        by_wave.setdefault(record["wave"], []).append(cluster)
    for wave in sorted(by_wave):
        failed = [cluster for cluster in by_wave[wave] if records[cluster]["outcome"] == FAILED]
        allowed = allowed_failures(budget, len(by_wave[wave]))
        if len(failed) > allowed:
            return {"halted": True, "wave": wave, "failed": failed, "allowed": allowed}
    return {"halted": False, "wave": None, "failed": [], "allowed": None}


def rollback_to(record: Obj, halted: bool) -> int | None:
    """The revision a cluster goes back to: a failed one always; on a halt, also every cluster this change reached,
    in this run or (already at target, with the revision recorded then) an earlier one. None: leave it as it is,
    also once it has been rolled back."""
    if record.get("rolled_back_to") is not None:
        return None
    outcome = record["outcome"]
    if outcome == FAILED or (halted and outcome == UPDATED):
        before = record.get("before")
    elif halted and outcome == AT_TARGET:
        before = record.get("recorded_before")
    else:
        return None
    return int(before) if before else None


def summary(records: dict[str, Obj], clusters: list[str]) -> list[Obj]:
    """One row per cluster, in wave order: its wave, revisions before and after, outcome and seconds."""
    rows = []
    for cluster in clusters:
        record = records.get(cluster) or {"wave": None, "outcome": UNTOUCHED}
        rows.append({
            "cluster": cluster, "wave": record.get("wave"), "revision_before": record.get("before"),
            "revision_after": record.get("after", record.get("before")), "outcome": _outcome(record),
            "seconds": record.get("seconds"), "message": record.get("message") or "",
        })  # fmt: skip
    return rows


def _outcome(record: Obj) -> str:
    back = record.get("rolled_back_to")
    return record["outcome"] + (f", rolled back to revision {back}" if back is not None else "")


def table(rows: list[Obj]) -> list[str]:
    """The summary as aligned text lines (a header, then one line per cluster)."""
    columns = ("cluster", "wave", "revision_before", "revision_after", "outcome", "seconds")
    headers = ("CLUSTER", "WAVE", "BEFORE", "AFTER", "OUTCOME", "SECONDS")
    cells = [headers] + [tuple("-" if row[c] is None else str(row[c]) for c in columns) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]


def plan_lines(clusters: list[str], records: dict[str, Obj]) -> list[str]:
    """The wave plan as text: one line per wave, each cluster with what it gets."""
    by_wave: dict[int, list[str]] = {}
    for cluster in clusters:
        if cluster in records:
            by_wave.setdefault(int(records[cluster]["wave"]), []).append(cluster)
    return [
        f"wave {number}: " + ", ".join(f"{cluster} ({_plan_note(records[cluster])})" for cluster in by_wave[number])
        for number in sorted(by_wave)
    ]


def _plan_note(record: Obj) -> str:
    if record.get("outcome") == AT_TARGET:
        return f"already at target, revision {record.get('before')}"
    return f"revision {record.get('before')} -> the new template"
