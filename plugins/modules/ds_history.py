#!/usr/bin/python
# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ds_history
short_description: List the revisions of a DaemonSet, show one, or diff two
version_added: 0.1.0
author:
  - kubeops.daemonset contributors (@kubeops)
description:
  - Lists the revisions (ControllerRevisions) of a DaemonSet exactly as C(kubectl rollout history) finds them
    - listed with the DaemonSet's label selector and kept only when their controller ownerReference is the
    DaemonSet - sorted ascending by revision number.
  - For each revision it returns the change-cause, the images, the number of the DaemonSet's pods running it now,
    and which revision is live. RV(table) is the C(kubectl rollout history) table.
  - O(revision) returns the pod template stored in one revision (C(kubectl rollout history --revision=N)).
  - O(compare) returns a unified diff and a list of field changes between the templates of two revisions,
    which kubectl cannot do.
  - "RBAC: C(get) on C(apps/daemonsets) and C(list) on C(apps/controllerrevisions) are required; C(list) on
    C(pods) is optional (without it the pod counts are null and the module warns)."
options:
  revision:
    description:
      - Also return the pod template stored in this revision as RV(template).
      - Fails, listing the available revisions, when the DaemonSet has no such revision.
    type: int
  compare:
    description:
      - Two revision numbers V([A, B]); returns RV(compare) with the changes from revision A to revision B.
      - Fails, listing the available revisions, when either does not exist.
    type: list
    elements: int
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - kubeops.daemonset._daemonset
  - kubeops.daemonset._attributes
  - kubeops.daemonset._attributes.actiongroup
attributes:
  check_mode:
    support: full
    details: The module only reads; it behaves the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: The module never changes anything.
notes:
  - Revision numbers only roll forward; an undo reuses the target revision and gives it the next number, so after
    rolling back from 2 to 1 the history shows revisions 2 and 3. See M(kubeops.daemonset.ds_undo).
  - The change-cause of a revision is the C(kubernetes.io/change-cause) annotation the DaemonSet had when the
    controller created that revision; an annotation on the pod template does not count.
  - Which revision is live is decided like the controller does it, by comparing the live pod template with each
    stored template (parsed JSON, null values ignored); no revision is live in the moment between a template
    change and the controller recording it.
seealso:
  - module: kubeops.daemonset.ds_undo
  - name: kubectl rollout history
    description: The kubectl command this module mirrors.
    link: https://kubernetes.io/docs/reference/kubectl/generated/kubectl_rollout/kubectl_rollout_history/
"""

EXAMPLES = r"""
---
- name: List the revisions of the fluentd DaemonSet
  kubeops.daemonset.ds_history:
    name: fluentd-elasticsearch
    namespace: kube-system
  register: history

- name: Print them as kubectl does
  ansible.builtin.debug:
    msg: "{{ history.table }}"

- name: Show what changed between revision 2 and 3
  kubeops.daemonset.ds_history:
    name: fluentd-elasticsearch
    namespace: kube-system
    compare: [2, 3]
  register: changes

- name: Print the diff
  ansible.builtin.debug:
    msg: "{{ changes.compare.diff }}"

- name: Get the pod template of revision 1
  kubeops.daemonset.ds_history:
    name: fluentd-elasticsearch
    namespace: kube-system
    revision: 1
  register: rev1
"""

RETURN = r"""
revisions:
  description: The DaemonSet's revisions, ascending by revision number.
  returned: success
  type: list
  elements: dict
  contains:
    revision:
      description: The revision number (C(.revision) of the ControllerRevision).
      type: int
      sample: 3
    name:
      description: Name of the ControllerRevision.
      type: str
      sample: fluentd-elasticsearch-84fc888bb7
    hash:
      description: The C(controller-revision-hash) its pods carry.
      type: str
      sample: 84fc888bb7
    change_cause:
      description: Its C(kubernetes.io/change-cause) annotation, null when it has none.
      type: str
      sample: update to v2.6.0
    created:
      description: Creation time of the ControllerRevision (RFC 3339).
      type: str
      sample: "2026-11-27T07:32:04Z"
    images:
      description: Images of the template's containers, in order.
      type: list
      elements: str
      sample: [quay.io/fluentd_elasticsearch/fluentd:v2.5.2]
    pods:
      description: Number of the DaemonSet's pods running this revision now; null without C(list) on pods.
      type: int
      sample: 3
    current:
      description: Whether this revision's template is the live template.
      type: bool
      sample: true
current_revision:
  description: Number of the live revision; null when the controller has not recorded the live template yet.
  returned: success
  type: int
  sample: 3
table:
  description: The C(kubectl rollout history) table (C(REVISION  CHANGE-CAUSE)), or C(No rollout history found.).
  returned: success
  type: str
  sample: "REVISION  CHANGE-CAUSE\n1         <none>\n2         update to v2.6.0\n"
template:
  description: The pod template stored in O(revision), as the API server stored it.
  returned: when O(revision) is set
  type: dict
compare:
  description: The changes between the two revisions of O(compare).
  returned: when O(compare) is set
  type: dict
  contains:
    from_revision:
      description: The first revision of O(compare).
      type: int
      sample: 2
    to_revision:
      description: The second revision of O(compare).
      type: int
      sample: 3
    diff:
      description: Unified diff of the two templates rendered as YAML with sorted keys; empty when equal.
      type: str
    changes:
      description: Changed leaf fields; lists of named items are keyed by name.
      type: list
      elements: dict
      sample:
        - path: spec.containers[name=fluentd-elasticsearch].image
          before: quay.io/fluentd_elasticsearch/fluentd:v2.5.2
          after: quay.io/fluentd_elasticsearch/fluentd:v2.6.0
"""

import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api
from ansible_collections.kubeops.daemonset.plugins.module_utils._history import (
    compare_revisions,
    find_revision,
    history_table,
    revision_template,
    summarize,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import RequestError
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.read import daemonset_and_revisions, pods_of
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import DAEMONSET_ARG_SPEC, Request, run_module

ARGUMENT_SPEC = {
    **DAEMONSET_ARG_SPEC,
    "revision": {"type": "int"},
    "compare": {"type": "list", "elements": "int"},
}


def check(params: dict[str, t.Any]) -> None:
    if params["compare"] is not None and len(params["compare"]) != 2:
        raise RequestError(f"compare needs exactly two revision numbers, got {params['compare']}")


def run(request: Request, api: Api) -> dict[str, t.Any]:
    params = request.params
    daemonset, revisions = daemonset_and_revisions(api, params["namespace"], params["name"])
    pods = api.optional(lambda: pods_of(api, daemonset), request.warnings, "pod counts are unknown")
    entries = summarize(daemonset, revisions, pods)
    current = [entry["revision"] for entry in entries if entry["current"]]
    result: dict[str, t.Any] = {
        "revisions": entries,
        "current_revision": current[0] if current else None,
        "table": history_table(entries),
    }
    if params["revision"] is not None:
        result["template"] = revision_template(find_revision(revisions, params["revision"]))
    if params["compare"] is not None:
        result["compare"] = compare_revisions(revisions, *params["compare"])
    return result


def main() -> None:
    run_module(ARGUMENT_SPEC, "ds_history", run, check)


if __name__ == "__main__":
    main()
