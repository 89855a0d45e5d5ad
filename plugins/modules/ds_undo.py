#!/usr/bin/python
# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ds_undo
short_description: Roll a DaemonSet back to a previous revision
version_added: 0.1.0
author:
  - kubeops.daemonset contributors (@kubeops)
description:
  - Rolls a DaemonSet's pod template back to the one stored in one of its revisions (ControllerRevisions), like
    C(kubectl rollout undo). The revision's stored strategic-merge patch is sent to the DaemonSet; revisions are
    selected with kubectl's rules and the same error messages, which here also list the available revisions.
  - Unlike kubectl, the write is conditioned on the C(resourceVersion) that was read, so a concurrent change is
    never overwritten unnoticed. On a conflict (during a rollout the controller's status writes cause them) the
    module reads the DaemonSet again and decides again, a few times, then fails clearly.
  - Unlike kubectl and C(kubernetes.core.k8s_rollback), it returns the revision rolled back from, the target and
    the NEW revision number the controller gives the target, read back from the cluster after the write.
    Revisions only roll forward; rolling back from 2 to 1 turns revision 1 into 3.
  - "RBAC: C(get) and C(patch) on C(apps/daemonsets) and C(list) on C(apps/controllerrevisions) are required;
    O(wait=true) also needs C(list) and C(watch) on C(apps/daemonsets) (and C(list) on C(pods) and C(events) to
    explain a stuck rollout)."
options:
  to_revision:
    description:
      - The revision number to roll back to.
      - V(0) (the default) is the previous revision as kubectl picks it, the second-highest revision number,
        whichever revision is live.
      - A negative number, a number the DaemonSet has no revision for, or V(0) with fewer than two revisions is an
        error that lists the available revisions; nothing is changed.
    type: int
    default: 0
  change_cause:
    description:
      - Set the C(kubernetes.io/change-cause) annotation of the DaemonSet to this text, in the same patch that
        restores the template.
      - The controller copies the DaemonSet's annotations into a revision only when it creates it. An undo reuses
        the target's existing revision, whose change-cause stays the one it was created with, so
        C(kubectl rollout history) does not show this text; it stays on the DaemonSet (and is copied into the next
        revision a later template change creates, unless that change sets its own).
      - Not applied when the rollback is skipped because the template already matches.
    type: str
  wait:
    description:
      - Wait until the rollback has rolled out, with the semantics of M(kubeops.daemonset.ds_rollout_wait)
        (C(kubectl rollout status)); the result is in RV(rollout).
    type: bool
    default: false
  from_template_generation:
    description:
      - Roll back only when the live pod template is still this one (the DaemonSet's
        C(deprecated.daemonset.template.generation), as RV(kubeops.daemonset.ds_update#module:template_generation)
        returns it); otherwise fail and change nothing.
      - For an automatic rollback after a failed update, so that the rollback never undoes a change another writer
        made meanwhile.
    type: int
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - kubeops.daemonset._daemonset
  - kubeops.daemonset._wait
  - kubeops.daemonset._wait.node_budget
  - kubeops.daemonset._owner
  - kubeops.daemonset._attributes
  - kubeops.daemonset._attributes.actiongroup
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written. The patch is sent with C(dryRun=All), so the API server validates it and checks the
        permissions; RV(predicted_revision) says which number the controller would assign.
  diff_mode:
    support: full
    details: The live pod template before and the target template after, as YAML.
  idempotent:
    support: full
    details:
      - When the live template already equals the target revision's template (compared as parsed JSON, not bytes)
        the module reports V(changed=false), like kubectl's C(skipped rollback).
      - With the default O(to_revision=0) a second run targets the new previous revision, as kubectl does; pin
        O(to_revision) for a repeatable task.
notes:
  - Rolling back does not update the C(kubectl.kubernetes.io/last-applied-configuration) annotation; the module
    warns like kubectl when the DaemonSet has one, because a later C(kubectl apply) would compute its patch against
    the old configuration.
seealso:
  - module: kubeops.daemonset.ds_history
  - module: kubeops.daemonset.ds_rollout_wait
  - name: kubectl rollout undo
    description: The kubectl command this module mirrors.
    link: https://kubernetes.io/docs/reference/kubectl/generated/kubectl_rollout/kubectl_rollout_undo/
"""

EXAMPLES = r"""
---
- name: Roll fluentd back to the previous revision and wait for it
  kubeops.daemonset.ds_undo:
    name: fluentd-elasticsearch
    namespace: kube-system
    wait: true
  register: undo

- name: Say which revision is live now
  ansible.builtin.debug:
    msg: "rolled back from {{ undo.rolled_back_from }} to {{ undo.to_revision }}, now revision {{ undo.new_revision }}"

- name: Roll back to revision 2 with a change-cause
  kubeops.daemonset.ds_undo:
    name: fluentd-elasticsearch
    namespace: kube-system
    to_revision: 2
    change_cause: rollback to v2.5.2 after the memory regression
"""

RETURN = r"""
msg:
  description: What happened, in kubectl's words.
  returned: always
  type: str
  sample: daemonset.apps/fluentd-elasticsearch rolled back to revision 1
rolled_back_from:
  description: The revision that was live before; null when the controller had not recorded the live template.
  returned: success
  type: int
  sample: 2
to_revision:
  description: Number of the target revision before the rollback.
  returned: success
  type: int
  sample: 1
predicted_revision:
  description: The number the controller is expected to give the target (max of the others + 1).
  returned: success
  type: int
  sample: 3
new_revision:
  description:
    - The number the controller gave the target revision, read back after the write. Equals RV(to_revision) when
      nothing changed.
    - Null in check mode when a rollback would happen (see RV(predicted_revision)), and when the controller did
      not renumber the revision within a few seconds (the module warns).
  returned: success
  type: int
  sample: 3
changes:
  description: Changed leaf fields of the pod template, from the live one to the target.
  returned: success
  type: list
  elements: dict
  sample:
    - path: spec.containers[name=fluentd-elasticsearch].image
      before: quay.io/fluentd_elasticsearch/fluentd:v2.6.0
      after: quay.io/fluentd_elasticsearch/fluentd:v2.5.2
owners:
  description: Who else manages the DaemonSet and would revert the change (see O(on_foreign_owner)).
  returned: success
  type: list
  elements: dict
diff:
  description: The live and the target pod template as YAML.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The live pod template.
      type: str
    after:
      description: The target revision's pod template.
      type: str
rollout:
  description: The result of waiting for the rollout, as M(kubeops.daemonset.ds_rollout_wait) returns it.
  returned: when O(wait=true) and the rollback changed the template outside check mode
  type: dict
template_generation:
  description:
    - The template generation after the rollback (the live one when nothing changed), for
      O(kubeops.daemonset.ds_rollout_wait#module:template_generation).
  returned: success
  type: int
  sample: 4
revisions:
  description: The revision history after the rollback (before it in check mode), as M(kubeops.daemonset.ds_history)
    returns it in its RV(kubeops.daemonset.ds_history#module:revisions) (pod counts are not read).
  returned: success
  type: list
  elements: dict
table:
  description: The C(kubectl rollout history) table after the rollback (before it in check mode).
  returned: success
  type: str
  sample: "REVISION  CHANGE-CAUSE\n2         v2\n3         v1\n"
"""

import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.undo import undo
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import (
    DAEMONSET_ARG_SPEC,
    OWNER_ARG_SPEC,
    WAIT_ARG_SPEC,
    check_wait,
    run_module,
)

ARGUMENT_SPEC = {
    **DAEMONSET_ARG_SPEC,
    **OWNER_ARG_SPEC,
    "to_revision": {"type": "int", "default": 0},
    "change_cause": {"type": "str"},
    **WAIT_ARG_SPEC,
    "from_template_generation": {"type": "int"},
}


def check(params: dict[str, t.Any]) -> None:
    check_wait(params)


run = undo  # what main() and the action (plugins/action/ds_undo.py) call


def main() -> None:
    run_module(ARGUMENT_SPEC, "ds_undo", run, check)


if __name__ == "__main__":
    main()
