# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure logic for node-batch (canary) rollouts of vanilla DaemonSets: API objects in, plain data out.

The rollout pattern (openshift-ansible, Kruise Rollouts), with no controller to install: the DaemonSet is
switched to ``OnDelete`` in the same write that applies the new template, so the controller stops replacing
pods; then the old pods of one node batch after another are deleted, the controller recreates them from the
new template, and every batch must pass a health gate before the next one starts.

Batches are cumulative targets like Kruise partitions: ``[1, "10%", "50%", "100%"]`` means "1 node updated,
then 10% of the eligible nodes (rounded up), then half, then all". A batch can also be a node label selector
(``{"selector": {"pool": "canary"}}``: every eligible node of that pool), for a canary pool first. Nodes
already running the target revision (``controller-revision-hash``) count as done, so a resumed run continues
where the last one stopped and a finished rollout plans nothing.

Which nodes are eligible (nodeSelector, required node affinity, taints against tolerations) is decided by
``_placement.eligible_nodes``, the controller's rule shared with the diagnosis. The canary rules (restart budget,
OOM kills, bake time, topology spread, pods in flight) are ``_canary``'s; the gate applies them.

The rollout's own state (the original update strategy and the revision to roll back to) is kept in one
annotation on the DaemonSet while the rollout runs, so any later run, from any machine, can resume or roll
back; it is removed in the write that restores the strategy.

Floor 1 (pure): API objects in, plain data out. The I/O sequence is ``_ops/batch.py``.
"""

from __future__ import annotations

import datetime
import json
import math
import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._canary import Rules, rule_breach, spread_text
from ansible_collections.kubeops.daemonset.plugins.module_utils._history import revision_hash
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    CHANGE_CAUSE,
    Obj,
    RequestError,
    owned_by,
    pod_condition,
    pod_hash,
    pod_is_ready,
    pod_target_node,
    pod_terminated,
    pod_terminating,
    selector_matches,
    selector_query,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._rollout import pod_failure
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import (
    natural_key,
    parse_time,
    plural,
)

STATE_ANNOTATION = "daemonset.kubeops.io/batch-rollout"
DEFAULT_STRATEGY = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}

# Waiting reasons that do not heal by waiting a few seconds: the gate fails at once (with fail_fast).
FATAL_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)

PASSED, WAITING, FAILED = "passed", "waiting", "failed"
NO_RESTARTS = Rules()  # the gate's rules unless told: no restart, no OOM kill


class BatchError(RequestError):
    """A batch specification that cannot be planned."""


# --- batch specifications ------------------------------------------------------------------


def parse_batches(batches: t.Iterable[t.Any]) -> list[Obj]:
    """Normalize the user's batch list: ``{"kind": "count"|"percent"|"selector", "value", "label"}``.

    Counts are positive integers (or digit strings), percentages ``"N%"`` with 0 < N <= 100, selectors a dict
    ``{"selector": LABELS}`` where LABELS is a map of labels or a LabelSelector (matchLabels/matchExpressions).
    """
    specs = [_parse_one(item, position) for position, item in enumerate(batches, start=1)]
    if not specs:
        raise BatchError("batches is empty; give at least one batch, for example [1, '50%', '100%']")
    for kind in ("count", "percent"):
        values = [spec for spec in specs if spec["kind"] == kind]
        for before, after in zip(values, values[1:]):
            if after["value"] < before["value"]:
                raise BatchError(
                    f"batch {after['label']} comes after batch {before['label']}: batches are cumulative targets "
                    "(nodes updated so far), so each must be at least the one before, for example [1, '10%', '100%']"
                )
    return specs


def _parse_one(item: t.Any, position: int) -> Obj:
    where = f"batch {position} ({item!r})"
    if isinstance(item, bool):
        raise BatchError(f"{where}: a batch is a node count, a percentage or {{'selector': labels}}")
    if isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit()):
        count = int(item)
        if count < 1:
            raise BatchError(f"{where}: a node count must be at least 1")
        return {"kind": "count", "value": count, "label": str(count)}
    if isinstance(item, str) and item.strip().endswith("%"):
        number = item.strip()[:-1].strip()
        if not number.isdigit() or not 0 < int(number) <= 100:
            raise BatchError(f"{where}: a percentage must be a whole number from 1% to 100%")
        return {"kind": "percent", "value": int(number), "label": f"{int(number)}%"}
    if isinstance(item, dict) and set(item) == {"selector"} and isinstance(item["selector"], dict):
        selector = item["selector"]
        if not ({"matchLabels", "matchExpressions"} & set(selector)):
            selector = {"matchLabels": selector}  # the short form: a plain map of labels
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            raise BatchError(f"{where}: an empty selector would match every node; use '100%' for that")
        return {"kind": "selector", "value": selector, "label": f"selector {selector_query(selector)}"}
    raise BatchError(f"{where}: a batch is a node count (1), a percentage ('10%') or {{'selector': {{label: value}}}}")


# --- nodes and pods ------------------------------------------------------------------------


def pods_by_node(daemonset: Obj, pods: t.Iterable[Obj]) -> dict[str, Obj]:
    """The DaemonSet's pod on each node (not being deleted), keyed by node name; pending pods count too."""
    by_node: dict[str, Obj] = {}
    for pod in owned_by(daemonset, pods):
        node = pod_target_node(pod)
        if not node or pod_terminating(pod) or pod_terminated(pod):
            continue
        known = by_node.get(node)
        if known is None or pod["metadata"].get("creationTimestamp", "") > known["metadata"].get(
            "creationTimestamp", ""
        ):
            by_node[node] = pod
    return by_node


# --- the plan ------------------------------------------------------------------------------


def plan_batches(specs: list[Obj], nodes: list[Obj], by_node: dict[str, Obj], target_hash: str | None) -> Obj:
    """Which eligible NODES go in which batch, skipping nodes whose pod already runs TARGET_HASH.

    Counts and percentages are cumulative targets over all eligible nodes (percentages rounded up, as the
    controller rounds maxUnavailable) and at least the spec's ``at_least`` (``_canary.spread``: one node per
    topology group); done nodes count towards them, so a batch whose target is already reached is empty. NODES
    are taken in the order given (natural name order, or spread over a topology key). A selector batch takes
    every pending node it matches. When the list does not reach every node, a final ``100%`` batch is added
    (spec ``100%, added``), so a plan always ends with all nodes updated.

    Returns ``{"total", "done": [names], "batches": [{"batch", "spec", "target", "nodes"}], "pending"}``;
    ``batches`` keeps empty batches (``nodes: []``) so numbering follows the user's list.
    """
    total = len(nodes)
    done = [
        node["metadata"]["name"] for node in nodes if target_hash and pod_hash(by_node.get(_name(node))) == target_hash
    ]
    pending = [node for node in nodes if node["metadata"]["name"] not in set(done)]
    covered = len(done)
    batches = []
    for number, spec in enumerate(specs, start=1):
        if spec["kind"] == "selector":
            chosen = [node for node in pending if selector_matches(spec["value"], node["metadata"].get("labels"))]
        else:
            target = spec["value"] if spec["kind"] == "count" else math.ceil(spec["value"] * total / 100)
            target = max(target, spec.get("at_least", 0))
            chosen = pending[: max(0, min(target, total) - covered)]
        pending = [node for node in pending if node not in chosen]
        covered += len(chosen)
        batches.append(_batch(number, spec["label"], covered, chosen))
    if pending:
        batches.append(_batch(len(specs) + 1, "100%, added", total, pending))
    return {
        "total": total,
        "done": done,
        "batches": batches,
        "pending": sum(len(batch["nodes"]) for batch in batches),
    }


def _name(node: Obj) -> str:
    return node["metadata"]["name"]


def _batch(number: int, label: str, target: int, nodes: list[Obj]) -> Obj:
    return {"batch": number, "spec": label, "target": target, "nodes": [_name(node) for node in nodes]}


def plan_lines(plan: Obj, limit: int = 8) -> list[str]:
    """The plan as lines for people: ``batch 2/4 (10%): 4 nodes -> 5 of 50 updated: a, b, c, d``."""
    count = len(plan["batches"])
    lines = [f"{len(plan['done'])} of {plan['total']} eligible nodes already run the target revision"]
    if plan.get("topology"):
        topology = plan["topology"]
        lines.append(f"spread over {topology['key']} ({spread_text(topology['groups'])}): batch 1 takes at least "
                     f"one node of each of the {plural(len(topology['groups']), 'group')}")  # fmt: skip
    for batch in plan["batches"]:
        head = f"batch {batch['batch']}/{count} ({batch['spec']}): "
        if not batch["nodes"]:
            lines.append(head + f"nothing to do ({batch['target']} of {plan['total']} already updated)")
            continue
        names = ", ".join(batch["nodes"][:limit]) + (", ..." if len(batch["nodes"]) > limit else "")
        spread = f" [{spread_text(batch['spread'])}]" if batch.get("spread") else ""
        lines.append(
            head + f"{plural(len(batch['nodes']), 'node')} -> {batch['target']} of {plan['total']}: {names}{spread}"
        )
    return lines


# --- the health gate -----------------------------------------------------------------------


def evaluate_gate(
    by_node: dict[str, Obj],
    node_names: t.Iterable[str],
    target_hash: str,
    min_available_seconds: int,
    now: datetime.datetime,
    baseline: dict[str, int],
    fail_fast: bool = True,
    rules: Rules = NO_RESTARTS,
) -> Obj:
    """Health of the updated pods on NODE_NAMES: ``{"state": passed|waiting|failed, "reasons", "waiting",
    "healthy": nodes that pass, "wait"}``.

    A node passes when its pod runs TARGET_HASH, is Ready and has been for MIN_AVAILABLE_SECONDS (the Ready
    condition's lastTransitionTime, the controller's availability rule), has no waiting container, and keeps the
    canary RULES: no more restarts than the budget (counted from BASELINE, pod UID -> restarts that are older than
    the rollout, see ``_canary.restart_baseline``; 0 for the rest) and no OOM kill. A breach of the rules, or with
    FAIL_FAST a waiting reason that does not heal by itself (FATAL_REASONS: ErrImagePull, CrashLoopBackOff while
    the budget allows no restart ...), fails the gate at once; anything else keeps it waiting (the caller's timeout
    then fails it with the reasons). ``wait`` is the number of seconds until the gate could pass at the earliest.
    """
    failed, waiting, healthy, wait = [], [], [], 0.0
    for node in sorted(node_names, key=natural_key):
        pod = by_node.get(node)
        verdict, reason, remaining = _node_health(pod, target_hash, min_available_seconds, now, baseline, rules)
        if verdict == FAILED or (verdict == "fatal" and fail_fast):
            failed.append(f"{node}: {reason}")
        elif verdict != PASSED:
            waiting.append(f"{node}: {reason}")
        else:
            healthy.append(node)
        wait = max(wait, remaining)
    if failed:
        return {"state": FAILED, "reasons": failed, "waiting": waiting, "healthy": healthy, "wait": 0.0}
    state = WAITING if waiting else PASSED
    return {"state": state, "reasons": [], "waiting": waiting, "healthy": healthy, "wait": wait}


def _node_health(
    pod: Obj | None, target_hash: str, min_available: int, now: datetime.datetime, baseline: dict[str, int],
    rules: Rules,
) -> tuple[str, str, float]:  # fmt: skip
    """(verdict, reason, seconds left) for one node: passed, waiting, fatal (fails with fail_fast) or failed."""
    if pod is None:
        return WAITING, "no pod yet (the controller creates it once the old one is gone)", 0.0
    name = pod["metadata"]["name"]
    if pod_hash(pod) != target_hash:
        return WAITING, f"pod {name} still runs revision {pod_hash(pod)}", 0.0
    breach = rule_breach(pod, rules, baseline)
    if breach is not None:
        return FAILED, breach, 0.0
    failure = pod_failure(pod, now)
    if failure is not None:
        detail = f"pod {name} is not Ready: {failure['reason']}" + (
            f" ({failure['message']})" if failure["message"] else ""
        )
        # within a restart budget a crash loop may still heal: the budget decides, not the back-off
        tolerated = failure["reason"] == "CrashLoopBackOff" and rules.restart_budget > 0
        return ("fatal" if failure["reason"] in FATAL_REASONS and not tolerated else WAITING), detail, 0.0
    waiting = [
        c for c in (pod.get("status") or {}).get("containerStatuses") or [] if "waiting" in (c.get("state") or {})
    ]
    if waiting:
        reason = waiting[0]["state"]["waiting"].get("reason") or "Waiting"
        return WAITING, f"pod {name} has a waiting container ({reason})", 0.0
    since = parse_time((pod_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    ready_for = (now - since).total_seconds() if since else float(min_available)
    if min_available > 0 and ready_for < min_available:  # 0: Ready is enough, whatever the clocks say
        left = min_available - ready_for
        return WAITING, f"pod {name} Ready for {ready_for:.0f}s of {min_available}s", left
    return PASSED, "", 0.0


def touched_nodes(by_node: dict[str, Obj], target_hash: str, batch_nodes: t.Iterable[str]) -> list[str]:
    """The nodes a rollback must restore: those running TARGET_HASH, plus BATCH_NODES (the failed batch, whose
    pods may not exist yet); no other node is touched."""
    chosen = {node for node, pod in by_node.items() if pod_hash(pod) == target_hash} | set(batch_nodes)
    return sorted(chosen, key=natural_key)


def rollback_ready(by_node: dict[str, Obj], node_names: t.Iterable[str], previous_hash: str) -> list[str]:
    """The nodes of NODE_NAMES NOT yet back on PREVIOUS_HASH with a Ready pod (empty: rollback complete)."""
    return [
        node for node in node_names if pod_hash(by_node.get(node)) != previous_hash or not pod_is_ready(by_node[node])
    ]


# --- the rollout's state on the DaemonSet ---------------------------------------------------


def read_state(daemonset: Obj) -> Obj | None:
    """The in-progress state this rollout left on the DaemonSet (None: no batch rollout in progress)."""
    raw = (daemonset["metadata"].get("annotations") or {}).get(STATE_ANNOTATION)
    if not raw:
        return None
    try:
        state = json.loads(raw)
    except ValueError:
        return None
    return state if isinstance(state, dict) and "strategy" in state else None


def new_state(daemonset: Obj, previous: Obj | None, started: str, baseline: dict[str, int] | None = None) -> Obj:
    """The state to keep while the rollout runs: the strategy to restore, the revision to roll back to and the
    restart BASELINE (``_canary.restart_baseline``); ``progress`` (the bake clock, the last verdict) joins later."""
    strategy = daemonset["spec"].get("updateStrategy") or DEFAULT_STRATEGY
    previous_ref = None
    if previous is not None:
        previous_ref = {
            "name": previous["metadata"]["name"],
            "hash": revision_hash(previous),
            "revision": int(previous["revision"]),
        }
    return {"strategy": strategy, "previous": previous_ref, "started": started, "baseline": baseline or {}}


def start_patch(template: Obj | None, state: Obj, resource_version: str, change_cause: str | None) -> Obj:
    """One write: the new template (TEMPLATE is a ``spec.template`` patch or None), OnDelete, and the state."""
    annotations = {STATE_ANNOTATION: json.dumps(state, sort_keys=True)}
    if change_cause is not None:
        annotations[CHANGE_CAUSE] = change_cause
    spec: Obj = {"updateStrategy": {"type": "OnDelete", "rollingUpdate": None}}
    if template is not None:
        spec["template"] = template
    return {"metadata": {"resourceVersion": resource_version, "annotations": annotations}, "spec": spec}


def finish_patch(state: Obj, resource_version: str) -> Obj:
    """One write: the original update strategy back, the state annotation gone."""
    strategy = dict(state["strategy"])
    if strategy.get("type") != "RollingUpdate":
        strategy["rollingUpdate"] = None
    return {
        "metadata": {"resourceVersion": resource_version, "annotations": {STATE_ANNOTATION: None}},
        "spec": {"updateStrategy": strategy},
    }


# --- the lease: one run at a time ----------------------------------------------------------

# A run renews its claim on the rollout every RENEW_SECONDS; a claim not renewed for LEASE_SECONDS is free.
LEASE_SECONDS = 30
RENEW_SECONDS = 10


def owner_record(owner_id: str, host: str, pid: int, now: datetime.datetime) -> Obj:
    """Who runs the rollout now: kept in the state annotation and renewed while the run lives."""
    return {"id": owner_id, "host": host, "pid": pid, "renewed": now.isoformat(timespec="seconds")}


def active_owner(
    state: Obj, me: str, host: str, now: datetime.datetime, pid_alive: t.Callable[[int], bool]
) -> Obj | None:
    """The owner record of ANOTHER run whose claim on the rollout is still live, else None.

    A claim is live until LEASE_SECONDS after its last renewal; on this host a claim whose process has exited is
    free at once (a killed run, rerun on the same machine, resumes without waiting for the lease)."""
    owner = state.get("owner")
    if not isinstance(owner, dict) or owner.get("id") == me:
        return None
    renewed = parse_time(owner.get("renewed"))
    if renewed is None or (now - renewed).total_seconds() >= LEASE_SECONDS:
        return None
    if owner.get("host") == host and isinstance(owner.get("pid"), int) and not pid_alive(owner["pid"]):
        return None
    return owner


def state_patch(state: Obj, resource_version: str) -> Obj:
    """One write of the state annotation alone (claiming or renewing the rollout)."""
    return {
        "metadata": {
            "resourceVersion": resource_version,
            "annotations": {STATE_ANNOTATION: json.dumps(state, sort_keys=True)},
        }
    }
