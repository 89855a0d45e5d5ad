#!/usr/bin/python
# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ds_apply
short_description: Apply a DaemonSet like kubectl apply and wait for its rollout, or delete it
version_added: 0.2.0
author:
  - kubeops.daemonset contributors (@kubeops)
description:
  - "O(state=present): applies the one DaemonSet of O(definition) like C(kubectl apply): client-side by default
    (the three-way merge with the C(kubectl.kubernetes.io/last-applied-configuration) annotation, which this module
    keeps as kubectl does, so both can take turns), or server-side (O(server_side_apply))."
  - The definition is checked before anything is sent (one DaemonSet, apps/v1, a selector that matches the pod
    template's labels, containers), then given O(name), O(namespace), the change-cause and, unless
    O(enforce_strategy=false), the update strategy of O(strategy).
  - It reports the update strategy of the live DaemonSet and of the definition before it is applied, with
    Kubernetes' defaults filled in (the C(kubectl apply --dry-run=client -o go-template='{{.spec.updateStrategy.type}}')
    check), then waits for the rollout with the semantics of M(kubeops.daemonset.ds_rollout_wait), printing kubectl's
    progress lines.
  - The write is the whole object, conditioned on the C(resourceVersion) that was read; on a conflict the module
    reads again and merges again.
  - O(state=absent) deletes the DaemonSet (C(kubectl delete), pods removed in the background) and, with O(wait),
    waits until its pods are gone.
  - "RBAC: C(get), C(create), C(update) and C(patch) on C(apps/daemonsets) (C(delete) for O(state=absent), C(list)
    and C(watch) to wait, C(list) on C(pods) to wait for the deletion), C(list) on C(apps/controllerrevisions) for
    the revision."
options:
  state:
    description: V(present) applies the DaemonSet, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  definition:
    description:
      - The DaemonSet, as a dict or as the YAML text of a manifest (what C(kubectl apply -f) reads). Other documents
        of the text are ignored; exactly one must be a DaemonSet.
      - Required with O(state=present); with O(state=absent) it may name the DaemonSet.
    type: raw
  name:
    description: Name of the DaemonSet; overrides the definition's C(metadata.name).
    type: str
  namespace:
    description: Namespace of the DaemonSet; overrides the definition's. Without either, V(default).
    type: str
  change_cause:
    description: The C(kubernetes.io/change-cause) annotation, set in the same write.
    type: str
  strategy:
    description:
      - The update strategy to give the DaemonSet (or, with O(enforce_strategy=false), to compare it with).
    type: dict
    suboptions:
      type:
        description: C(spec.updateStrategy.type).
        type: str
        choices: [RollingUpdate, OnDelete]
        default: RollingUpdate
      max_unavailable:
        description: C(spec.updateStrategy.rollingUpdate.maxUnavailable), a number or a percentage such as V(10%).
        type: raw
        default: 1
      max_surge:
        description: C(spec.updateStrategy.rollingUpdate.maxSurge), a number or a percentage; not 0 together with
          O(strategy.max_unavailable=0).
        type: raw
        default: 0
      min_ready_seconds:
        description: C(spec.minReadySeconds).
        type: int
        default: 0
  enforce_strategy:
    description:
      - V(true) sets O(strategy) on the definition, overriding the manifest's.
      - V(false) keeps the manifest's and warns where it differs from O(strategy).
    type: bool
    default: true
  server_side_apply:
    description: Server-side apply with field manager O(field_manager), instead of client-side apply.
    type: bool
    default: false
  field_manager:
    description: Field manager of the server-side apply.
    type: str
    default: kubeops.daemonset
  force_conflicts:
    description: With O(server_side_apply), take over fields another manager owns instead of failing.
    type: bool
    default: false
  wait:
    description:
      - Wait for the rollout (O(state=present)), with the semantics of M(kubeops.daemonset.ds_rollout_wait) and its
        progress lines, or until the pods are gone (O(state=absent)).
      - In check mode the rollout's status is read once.
    type: bool
    default: false
  delete_timeout:
    description: Seconds to wait for the pods to be gone with O(state=absent).
    type: int
    default: 120
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - kubeops.daemonset._attributes
  - kubeops.daemonset._attributes.actiongroup
attributes:
  check_mode:
    support: full
    details: The write is sent with C(dryRun=All), so the API server validates it; the wait only reads the status.
  diff_mode:
    support: full
    details: The DaemonSet's metadata and spec before and after, as YAML.
  idempotent:
    support: full
    details: Applying what is live writes nothing (V(changed=false)); deleting what is gone does nothing.
seealso:
  - module: kubeops.daemonset.ds_rollout_wait
  - module: kubernetes.core.k8s
  - name: kubectl apply
    description: The kubectl command this module mirrors.
    link: https://kubernetes.io/docs/reference/kubectl/generated/kubectl_apply/
"""

EXAMPLES = r"""
---
- name: Apply the seed's fluentd DaemonSet with a RollingUpdate strategy and wait for it
  kubeops.daemonset.ds_apply:
    definition: "{{ lookup('ansible.builtin.file', 'fluentd-daemonset.yaml') }}"
    namespace: kube-system
    change_cause: apply fluentd-daemonset.yaml
    wait: true
    strategy:
      type: RollingUpdate
      max_unavailable: 1
  register: deployed

- name: Show what it checked and did
  ansible.builtin.debug:
    msg: "{{ deployed.report }}"

- name: Delete it and wait until its pods are gone
  kubeops.daemonset.ds_apply:
    state: absent
    name: fluentd-elasticsearch
    namespace: kube-system
    wait: true
"""

RETURN = r"""
action:
  description: V(created), V(configured), V(unchanged), V(deleted) or V(absent) (nothing to delete).
  returned: success
  type: str
  sample: created
name:
  description: Name of the DaemonSet.
  returned: success
  type: str
namespace:
  description: Namespace of the DaemonSet.
  returned: success
  type: str
report:
  description:
    - Lines for people - the live update strategy, the definition's, what was done and the rollout's last message.
  returned: success
  type: list
  elements: str
  sample:
    - "live DaemonSet kube-system/fluentd-elasticsearch: not deployed yet"
    - "definition to apply: RollingUpdate (maxUnavailable=1, maxSurge=0, minReadySeconds=0)"
    - daemonset.apps/fluentd-elasticsearch created
    - daemon set "fluentd-elasticsearch" successfully rolled out
strategy:
  description: The update strategy of the live DaemonSet (null when not deployed yet) and of the definition, with
    Kubernetes' defaults (C(type), C(maxUnavailable), C(maxSurge), C(minReadySeconds)).
  returned: with O(state=present)
  type: dict
template_generation:
  description: The template generation after the apply (see M(kubeops.daemonset.ds_update)).
  returned: with O(state=present)
  type: int
result:
  description: The DaemonSet as the API server returned it after the write (in check mode, its dry run).
  returned: with O(state=present)
  type: dict
rollout:
  description: The result of the wait, as M(kubeops.daemonset.ds_rollout_wait) returns it.
  returned: with O(wait=true) and O(state=present)
  type: dict
diff:
  description: The DaemonSet's metadata and spec before and after, as YAML.
  returned: in diff mode
  type: dict
"""

import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._manifest import strategy_spec
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.apply import run
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import (
    WAIT_ARG_SPEC,
    at_least,
    check_wait,
    run_module,
)

ARGUMENT_SPEC = {
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "definition": {"type": "raw"},
    "name": {"type": "str"},
    "namespace": {"type": "str"},
    "change_cause": {"type": "str"},
    "strategy": {
        "type": "dict",
        "options": {
            "type": {"type": "str", "choices": ["RollingUpdate", "OnDelete"], "default": "RollingUpdate"},
            "max_unavailable": {"type": "raw", "default": 1},
            "max_surge": {"type": "raw", "default": 0},
            "min_ready_seconds": {"type": "int", "default": 0},
        },
    },
    "enforce_strategy": {"type": "bool", "default": True},
    "server_side_apply": {"type": "bool", "default": False},
    "field_manager": {"type": "str", "default": "kubeops.daemonset"},
    "force_conflicts": {"type": "bool", "default": False},
    **WAIT_ARG_SPEC,
    "delete_timeout": {"type": "int", "default": 120},
}
SPEC_RULES = {"required_if": [("state", "present", ("definition",))]}


def check(params: dict[str, t.Any]) -> None:
    check_wait(params)
    at_least(params, 0, "delete_timeout")
    if params["strategy"]:
        strategy_spec(params["strategy"])  # RequestError naming the option


def main() -> None:
    run_module(ARGUMENT_SPEC, "ds_apply", run, check, **SPEC_RULES)


if __name__ == "__main__":
    main()
