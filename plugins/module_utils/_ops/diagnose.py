# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Diagnosing a DaemonSet: read what the diagnosis needs in a constant number of requests, name the causes, and
carry out the remediation asked for.

Floor 2 (I/O sequence).
"""

from __future__ import annotations

from ansible_collections.kubeops.daemonset.plugins.module_utils import _diagnose
from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import Obj, selector_query
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops import remediate
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.read import revisions_of
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import Request
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import http_date_time, rfc3339, utcnow

# Up to this many blocked nodes, one spec.nodeName-filtered pod list each; beyond, one list of all pods.
NODE_SCOPED_LISTS = 3


def _pods_on(api: Api, nodes: list[str]) -> list[Obj]:
    """Pods of every namespace on NODES (bound pods only; finished ones do not hold resources)."""
    if not nodes:
        return []
    if len(nodes) <= NODE_SCOPED_LISTS:
        return [pod for node in nodes for pod in api.list_items("pods", None, field_selector=f"spec.nodeName={node}")]
    wanted = set(nodes)
    return [pod for pod in api.list_items("pods", None) if (pod.get("spec") or {}).get("nodeName") in wanted]


def read_cluster(request: Request, api: Api) -> Obj:
    """The objects of the diagnosis, in a constant number of list calls; optional ones (events, revisions, leases)
    are skipped with a warning when the credentials may not read them."""
    namespace, name = request.params["namespace"], request.params["name"]
    daemonset = api.require_daemonset(namespace, name)
    server_time = http_date_time(api.server_date) or utcnow()
    selector = selector_query(daemonset["spec"]["selector"])
    notes = request.warnings
    cluster = {
        "daemonset": daemonset,
        "nodes": api.list_items("nodes", None),
        "pods": api.list_items("pods", namespace, selector),
        "events": api.optional(lambda: api.list_items("events", namespace, field_selector="type=Warning"), notes,
                               "events not checked") or [],
        "revisions": api.optional(lambda: revisions_of(api, daemonset), notes, "revisions not checked"),
        "leases": api.optional(lambda: api.list_items("leases", "kube-node-lease"), notes,
                               "node leases (clock skew) not checked") or [],
        "server_time": rfc3339(server_time),
    }  # fmt: skip
    blocked = _diagnose.blocked_nodes(daemonset, cluster["nodes"], cluster["pods"], cluster["events"])
    short = sorted(node for node, info in blocked.items() if any(map(_diagnose.is_resource_reason, info["reasons"])))
    known = {pod["metadata"]["uid"] for pod in cluster["pods"]}
    cluster["all_pods"] = cluster["pods"] + [p for p in _pods_on(api, short) if p["metadata"]["uid"] not in known]
    return cluster


def diagnose(request: Request, api: Api) -> Obj:
    """What ds_diagnose returns (see its RETURN)."""
    cluster = read_cluster(request, api)
    daemonset = cluster["daemonset"]
    findings = _diagnose.diagnose(
        daemonset, cluster["nodes"], cluster["all_pods"], cluster["events"], cluster["revisions"], cluster["leases"],
        cluster["server_time"], request.params["clock_skew_tolerance"],
    )  # fmt: skip
    counters = _diagnose.counters(
        daemonset, cluster["nodes"], cluster["pods"], cluster["revisions"], cluster["server_time"]
    )
    result: Obj = {
        "changed": False,
        "healthy": _diagnose.is_healthy(findings),
        "findings": findings,
        "report": _diagnose.render_report(daemonset, findings, counters),
        "counters": counters,
        "server_time": cluster["server_time"],
    }
    action = request.params["remediate"]
    if action != "none":
        if action == "evict_blockers":
            remediation, diff = remediate.evict_blockers(request, api, cluster, findings)
            result["changed"] = bool(remediation["evicted"])
        elif action == "rollback":
            remediation, diff = remediate.rollback(request, api, cluster, findings)
            result["changed"] = remediation["patched"]
        else:
            remediation, diff = remediate.fixed_template(request, api, cluster)
            result["changed"] = remediation["patched"]
        result["remediation"] = remediation
        if diff and request.diff:
            result["diff"] = diff
    result["api_calls"] = api.calls
    return result
