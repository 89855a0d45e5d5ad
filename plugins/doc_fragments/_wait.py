# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """How the writers wait for what they wrote (argument spec: _runner.WAIT_ARG_SPEC; each module documents its
    own O(wait), which says what it waits for)."""

    DOCUMENTATION = r"""
options:
  wait_timeout:
    description: Seconds to wait with O(wait=true) before failing with what blocks the rollout.
    type: int
    default: 300
  wait_progress_deadline:
    description: With O(wait=true), fail the wait early when the rollout has not moved for this many seconds.
    type: int
"""

    # The budget of dead nodes: ds_rollout_wait, the writers' wait and ds_batch_rollout's gates.
    NODE_BUDGET = r"""
options:
  unhealthy_node_budget:
    description:
      - How many nodes the DaemonSet targets may be left without the new pod because they are NotReady, unreachable
        (their kubelet stopped reporting) or cordoned - a count such as V(2) or a percentage of the target nodes such
        as V(5%), rounded down so that it never allows more than it says.
      - Such nodes block a rollout for good - their old pod stays Terminating until the node returns - or the
        controller drops them and C(kubectl rollout status) reports success while they run no pod. Within the budget
        they are set apart, named in the progress lines, in RV(skipped_nodes) and in a warning, and the rollout counts
        as done once every healthy target node runs an updated, available pod.
      - Over the budget the rollout is not done; when the wait runs out, the failure names those nodes first.
      - V(0) (the default) leaves no node behind, not even one the controller dropped. Only a compact table of the
        nodes is read while they are all healthy (RBAC C(list) on C(nodes)); without it the nodes are not checked,
        with a warning.
    type: raw
    default: 0
"""
