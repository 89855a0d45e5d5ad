# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Canary rules for node-batch rollouts, after Datadog's ExtendedDaemonSet: a restart budget and an OOMKilled check
for the new pods, a bake time (no restart for N seconds after a batch is available), canary nodes spread over a
topology key, and a cap on the pods replaced at once (slow start).

Restarts are counted from the pod's creation for the pods the rollout creates, and from the rollout's start for
pods already on the target revision then (``restart_baseline``, kept in the state annotation), so any later run,
from any machine, counts them the same way. The bake clock and a batch's verdict are kept there too (``progress``).

Floor 1 (pure): API objects in, plain data out. ``_batch`` applies the rules in its gate; ``_ops/batch.py`` runs them.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t
from datetime import datetime

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    Obj,
    RequestError,
    container_statuses,
    labels,
    pod_hash,
    restarts,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import (
    natural_key,
    parse_time,
    plural,
    preview,
    rfc3339,
    seconds_between,
)

OOM_KILLED = "OOMKilled"
# The topology group of nodes without the label: a label value cannot hold parentheses, so no zone is called this.
NO_LABEL = "(none)"
# Where a run continues the batch an earlier run was in (see resume_phase).
CHECK, BAKE, PAUSE = "check", "bake", "pause"


@dataclasses.dataclass(frozen=True)
class Rules:
    """What a new pod may do: RESTART_BUDGET restarts (all its containers together, as ExtendedDaemonSet's
    maxRestarts counts a pod) and, with FAIL_ON_OOM, no OOMKilled termination at all."""

    restart_budget: int = 0
    fail_on_oom: bool = True


# --- restarts and OOM kills ------------------------------------------------------------------


def restart_baseline(by_node: dict[str, Obj], target_hash: str | None) -> dict[str, int]:
    """Pod UID -> restarts of the pods already on TARGET_HASH when the rollout starts (counts above 0 only): those
    restarts are older than the rollout. Every other pod counts from 0, so the map stays small."""
    return {
        pod["metadata"]["uid"]: restarts(pod)
        for pod in by_node.values()
        if target_hash and pod_hash(pod) == target_hash and restarts(pod) > 0
    }


def new_restarts(pod: Obj, baseline: dict[str, int]) -> int:
    return max(0, restarts(pod) - baseline.get(pod["metadata"]["uid"], 0))


def oom_killed(pod: Obj, baseline: dict[str, int]) -> list[str]:
    """The containers of POD terminated OOMKilled now, or last time when the pod restarted since BASELINE (an OOM
    kill of a pod that is older than the rollout, before it started, does not count)."""
    restarted = new_restarts(pod, baseline) > 0
    killed = []
    for container in container_statuses(pod):
        now = ((container.get("state") or {}).get("terminated") or {}).get("reason")
        last = ((container.get("lastState") or {}).get("terminated") or {}).get("reason")
        if now == OOM_KILLED or (restarted and last == OOM_KILLED):
            killed.append(container.get("name") or "?")
    return killed


def rule_breach(pod: Obj, rules: Rules, baseline: dict[str, int]) -> str | None:
    """Why POD breaks the canary RULES (named), or None: an OOM kill, or more restarts than the budget."""
    name = pod["metadata"]["name"]
    killed = oom_killed(pod, baseline) if rules.fail_on_oom else []
    if killed:
        return f"pod {name}: container {', '.join(killed)} OOMKilled"
    grown = new_restarts(pod, baseline)
    if grown > rules.restart_budget:
        return f"pod {name} restarted {plural(grown, 'time')} (restart_budget {rules.restart_budget})"
    return None


def restart_sum(by_node: dict[str, Obj], nodes: t.Iterable[str]) -> int:
    """All restarts of the pods on NODES: a change means a restart (or a replaced pod) since the last look."""
    return sum(restarts(by_node[node]) for node in nodes if node in by_node)


# --- the bake clock --------------------------------------------------------------------------


def start_bake(batch: Obj, updated: int, now: datetime) -> Obj:
    """The bake of BATCH as kept in the state annotation: when it began (its deadline counts from there), when its
    clock last started (``since``), and the restarts seen then (None: not looked yet)."""
    stamp = rfc3339(now)
    return {"phase": BAKE, "batch": batch["batch"], "spec": batch["spec"], "updated": updated, "started": stamp,
            "since": stamp, "restarts": None}  # fmt: skip


def bake_step(bake: Obj, failed: list[str], unavailable: list[str], restarts_now: int, now: datetime, seconds: int,
              timeout: int) -> Obj:  # fmt: skip
    """One look at a baking batch: ``{"done", "failed": reasons, "reset": why or None, "bake", "left"}``.

    The batch must stay available with no restart for SECONDS (ExtendedDaemonSet's noRestartsDuration): a pod
    not Ready (UNAVAILABLE) or a restart within the budget (RESTARTS_NOW differs from the count when the clock
    started) starts the clock again; FAILED (a breach of the rules, a fatal reason) fails the bake at once; a
    bake that cannot end within TIMEOUT seconds after its due time fails with what restarted its clock last."""
    if failed:
        return {"done": False, "failed": failed, "reset": None, "bake": bake, "left": 0.0}
    reset = unavailable[0] if unavailable else None
    if reset is None and bake["restarts"] is not None and restarts_now != bake["restarts"]:
        reset = f"{plural(abs(restarts_now - bake['restarts']), 'restart')} within the restart budget"
    if reset is not None:
        late = (seconds_between(now, parse_time(bake["started"])) or 0.0) > timeout
        if late:
            why = f"not {seconds}s without a restart or an unready pod within batch_timeout={timeout}s: {reset}"
            return {"done": False, "failed": [why], "reset": None, "bake": bake, "left": 0.0}
        bake = dict(bake, since=rfc3339(now), restarts=restarts_now)
    elif bake["restarts"] is None:
        bake = dict(bake, restarts=restarts_now)
    left = seconds - (seconds_between(now, parse_time(bake["since"])) or 0.0)
    return {"done": left <= 0, "failed": [], "reset": reset, "bake": bake, "left": max(0.0, left)}


def passed_record(batch: Obj, updated: int, now: datetime) -> Obj:
    """BATCH passed (gate and bake) with UPDATED nodes on the new revision; the next pause counts from NOW."""
    return {"phase": PAUSE, "batch": batch["batch"], "spec": batch["spec"], "updated": updated, "at": rfc3339(now)}


def resume_phase(progress: Obj | None, updated: int) -> str:
    """Where a run continues from the PROGRESS an earlier run left, with UPDATED nodes on the new revision now:
    BAKE (the bake goes on with its clock), PAUSE (the batch passed: the rest of the pause), or CHECK (gate and
    bake for every updated node again: the run stopped before the batch's verdict, or nodes were updated since)."""
    progress = progress or {}
    if progress.get("phase") == BAKE and progress.get("updated") == updated and progress.get("since"):
        return BAKE
    if progress.get("phase") == PAUSE and int(progress.get("updated") or 0) >= updated and progress.get("at"):
        return PAUSE
    return CHECK


def pause_left(progress: Obj, seconds: int, now: datetime) -> float:
    """Seconds of the pause after the batch PROGRESS recorded as passed that are still due at NOW."""
    waited = seconds_between(now, parse_time(progress.get("at"))) or 0.0
    return max(0.0, seconds - waited)


# --- slow start within a batch ---------------------------------------------------------------


def next_wave(queue: list[str], replaced: t.Iterable[str], healthy: t.Iterable[str], cap: int | None) -> list[str]:
    """The nodes of QUEUE whose old pods go next: all of them without CAP, else as many as keep at most CAP
    replaced nodes (REPLACED) whose new pod is not yet HEALTHY (passing the gate's pod check)."""
    if cap is None:
        return list(queue)
    in_flight = len(set(replaced) - set(healthy))
    return queue[: max(0, cap - in_flight)]


# --- canary nodes spread over a topology key -------------------------------------------------

_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_topology(key: str, specs: list[Obj]) -> None:
    """RequestError unless KEY is a label key the API accepts (``[prefix/]name``) and the first batch of SPECS
    can be spread (a count or a percentage: a selector batch takes its pool as it is)."""
    prefix, _slash, name = key.rpartition("/")
    if not _LABEL_NAME.match(name) or (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))):
        raise RequestError(f"topology_key {key!r} is not a label key: an optional DNS prefix and '/', then at most "
                           "63 letters, digits, '-', '_' or '.', for example topology.kubernetes.io/zone")  # fmt: skip
    if specs[0]["kind"] == "selector":
        raise RequestError(f"topology_key {key!r} spreads the first batch over every value of the label, but "
                           f"batch 1 is a {specs[0]['label']}: give a count or a percentage first, or drop "
                           "topology_key")  # fmt: skip


def topology_groups(nodes: t.Iterable[Obj], key: str) -> dict[str, list[Obj]]:
    """NODES by their value of the label KEY, values in natural order, nodes without it last (as NO_LABEL)."""
    groups: dict[str, list[Obj]] = {}
    for node in nodes:
        groups.setdefault(labels(node).get(key, NO_LABEL), []).append(node)
    order = sorted(groups, key=lambda value: (value == NO_LABEL, natural_key(value)))
    return {value: groups[value] for value in order}


def spread(specs: list[Obj], nodes: list[Obj], key: str | None) -> tuple[list[Obj], list[Obj]]:
    """The batch SPECS and the eligible NODES in the order the batches take them, spread over the label KEY.

    Nodes are interleaved over their groups: first one node of each group, then each group in proportion to its
    size (node I of a group of N comes at I/N), so every count or percentage batch is spread; the first batch
    takes at least one node of each group (``at_least``). Nodes without the label form one group of their own.
    RequestError when no eligible node has the label (a misspelt key), or as ``check_topology``."""
    if key is None or not nodes:
        return specs, nodes
    check_topology(key, specs)
    groups = topology_groups(nodes, key)
    if list(groups) == [NO_LABEL]:
        present = sorted({name for node in nodes for name in labels(node)})
        raise RequestError(f"topology_key {key!r}: none of the {plural(len(nodes), 'eligible node')} has this label "
                           f"(their labels: {preview(present, 12)})")  # fmt: skip
    ranked = [
        (position / len(members), group, position, node)
        for group, members in enumerate(groups.values())
        for position, node in enumerate(members)
    ]
    ordered = [node for *_rank, node in sorted(ranked, key=lambda rank: rank[:3])]
    return [dict(specs[0], at_least=len(groups)), *specs[1:]], ordered


def annotate_spread(plan: Obj, nodes: list[Obj], key: str) -> Obj:
    """PLAN with its ``topology`` (key, eligible nodes per value) and each batch's ``spread`` (nodes per value)."""
    value_of = {node["metadata"]["name"]: labels(node).get(key, NO_LABEL) for node in nodes}
    groups = {value: len(members) for value, members in topology_groups(nodes, key).items()}
    batches = [dict(batch, spread=_count(value_of[name] for name in batch["nodes"])) for batch in plan["batches"]]
    return dict(plan, batches=batches, topology={"key": key, "groups": groups})


def _count(values: t.Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return {value: counts[value] for value in sorted(counts, key=lambda v: (v == NO_LABEL, natural_key(v)))}


def spread_text(spread: dict[str, int]) -> str:
    """``zone-a 1, zone-b 1, (none) 1``."""
    return ", ".join(f"{value} {count}" for value, count in spread.items())
