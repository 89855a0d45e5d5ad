# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The reads every operation starts from: a DaemonSet with its revisions, and its pods; the nodes a rollout leaves
behind.

Floor 2 (I/O).
"""

from __future__ import annotations

from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api
from ansible_collections.kubeops.daemonset.plugins.module_utils._history import current_hash, owned_revisions
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    Obj,
    owned_by,
    selector_query,
    troubled_node_names,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._unhealthy import left_behind
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import http_date_time, utcnow


def revisions_of(api: Api, daemonset: Obj) -> list[Obj]:
    """The DaemonSet's ControllerRevisions as kubectl finds them (its selector, then its owner UID), ascending."""
    selector, namespace = selector_query(daemonset["spec"]["selector"]), daemonset["metadata"]["namespace"]
    return owned_revisions(daemonset, api.list_items("controllerrevisions", namespace, selector))


def daemonset_and_revisions(api: Api, namespace: str, name: str) -> tuple[Obj, list[Obj]]:
    """The DaemonSet (K8sError 404 naming what exists when it is missing) and its revisions."""
    daemonset = api.require_daemonset(namespace, name)
    return daemonset, revisions_of(api, daemonset)


def pods_of(api: Api, daemonset: Obj) -> list[Obj]:
    """The DaemonSet's pods (its selector, then its owner UID)."""
    selector = selector_query(daemonset["spec"]["selector"])
    return owned_by(daemonset, api.list_items("pods", daemonset["metadata"]["namespace"], selector))


def nodes_left_behind(api: Api, daemonset: Obj) -> Obj | None:
    """``_unhealthy.left_behind`` for DAEMONSET, or None when every node is Ready and schedulable - what one compact
    table of the nodes says, so a healthy cluster costs one small request whatever its size."""
    if not troubled_node_names(api.list_table("nodes", None)):
        return None
    nodes = api.list_items("nodes", None)
    pods = api.list_items("pods", daemonset["metadata"]["namespace"], selector_query(daemonset["spec"]["selector"]))
    now = http_date_time(api.server_date) or utcnow()  # the server's clock, as minReadySeconds is counted there
    return left_behind(daemonset, nodes, pods, current_hash(daemonset, revisions_of(api, daemonset)), now)
