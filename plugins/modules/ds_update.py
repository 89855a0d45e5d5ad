#!/usr/bin/python
# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ds_update
short_description: Change a DaemonSet's pod template - a new template, or images and resources by container
version_added: 0.2.0
author:
  - kubeops.daemonset contributors (@kubeops)
description:
  - Changes the pod template of an existing DaemonSet in one of three ways - a whole new template (O(template)), only
    container images (O(images), like C(kubectl set image)) or only container resources (O(resources), like
    C(kubectl set resources)) - with the C(kubernetes.io/change-cause) annotation in the same write, so
    C(kubectl rollout history) shows it for the new revision.
  - A server-side dry run tells whether the template really changes once the API server has filled in its defaults;
    only then is the patch written. Asking for what is live writes nothing (V(changed=false)).
  - The write is conditioned on the C(resourceVersion) that was read. On a conflict (during a rollout the
    controller's status writes cause them) the module reads the DaemonSet again and decides again, so it works
    while a rollout runs and never overwrites a change it has not seen.
  - It returns the revision live before and the template generation it wrote, for
    M(kubeops.daemonset.ds_rollout_wait) (O(kubeops.daemonset.ds_rollout_wait#module:template_generation)) and
    M(kubeops.daemonset.ds_undo) (O(kubeops.daemonset.ds_undo#module:from_template_generation)).
  - "RBAC: C(get) and C(patch) on C(apps/daemonsets) and C(list) on C(apps/controllerrevisions) in O(namespace);
    C(list) and C(watch) on C(apps/daemonsets) with O(wait=true). C(docs/rbac/update.yaml) has them all."
options:
  template:
    description:
      - The new pod template (C(metadata) and C(spec)), or a whole DaemonSet manifest whose C(spec.template) is
        used; also as YAML text. It replaces the live template as a whole, so fields it leaves out are removed
        (server defaults are filled in again).
      - A manifest of another kind is refused.
    type: raw
  src:
    description:
      - A file on the controller holding what O(template) takes (one YAML document - a DaemonSet manifest or a pod
        template). A relative path is looked for in the C(files/) directories of the role and the play first, as the
        C(file) lookup does. Errors name the file.
    type: path
  images:
    description:
      - New images by container name (containers and init containers). Other fields are not touched.
      - An unknown container name fails before anything is written, listing the containers there are.
    type: dict
  resources:
    description:
      - New C(resources) by container name; each replaces that container's C(resources) as a whole.
    type: dict
  change_cause:
    description:
      - The C(kubernetes.io/change-cause) annotation, set in the same write as the template. Unset, the annotation
        stays as it is.
    type: str
  record_revision_before:
    description:
      - Also write the revision live before into the DaemonSet's C(daemonset.kubeops.io/revision-before) annotation,
        in the same write as the template (the new ControllerRevision keeps it too). A later run reads it back in
        RV(recorded_revision_before), also when the template asked for is already live - how
        C(kubeops.daemonset.fleet_update) rolls back a cluster an interrupted run had updated.
    type: bool
    default: false
    version_added: 0.3.0
  wait:
    description:
      - Wait for the rollout of the new template with the semantics of M(kubeops.daemonset.ds_rollout_wait), printing
        its progress lines; the result is in RV(rollout). A change another writer makes meanwhile fails the wait as
        V(superseded). When nothing changed, the rollout's status is read once.
      - In check mode the status is read once.
    type: bool
    default: false
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
    details: Nothing is written; the server-side dry run gives the template that would result.
  diff_mode:
    support: full
    details: The live pod template and the one asked for, as YAML.
  idempotent:
    support: full
    details: Asking for the live template (after the server's defaults) writes nothing.
seealso:
  - module: kubeops.daemonset.ds_rollout_wait
  - module: kubeops.daemonset.ds_undo
  - name: kubectl set image
    description: The kubectl command O(images) mirrors.
    link: https://kubernetes.io/docs/reference/kubectl/generated/kubectl_set/kubectl_set_image/
"""

EXAMPLES = r"""
---
- name: Set the fluentd image, with a change-cause
  kubeops.daemonset.ds_update:
    name: fluentd-elasticsearch
    namespace: kube-system
    images:
      fluentd-elasticsearch: quay.io/fluentd_elasticsearch/fluentd:v2.6.0
    change_cause: fluentd v2.6.0
  register: update

- name: Wait for exactly that rollout later (fails as superseded if someone else changes the template meanwhile)
  kubeops.daemonset.ds_rollout_wait:
    name: fluentd-elasticsearch
    namespace: kube-system
    template_generation: "{{ update.template_generation }}"
  when: update is changed

- name: Or change the resources and wait in the same task, failing early when the rollout stops moving
  kubeops.daemonset.ds_update:
    name: fluentd-elasticsearch
    namespace: kube-system
    resources:
      fluentd-elasticsearch: {requests: {cpu: 100m, memory: 200Mi}, limits: {memory: 200Mi}}
    wait: true
    wait_progress_deadline: 120
"""

RETURN = r"""
msg:
  description: What happened.
  returned: success
  type: str
  sample: daemonset.apps/fluentd-elasticsearch updated
revision_before:
  description: The revision live before the change (null when the controller had not recorded the live template).
  returned: success
  type: int
  sample: 1
recorded_revision_before:
  description:
    - The revision an update with O(record_revision_before=true) recorded as live before it (after this write, the
      one it recorded); null when none is recorded.
  returned: success
  type: int
  sample: 3
template_generation:
  description:
    - The template generation after the write (the live one when nothing changed or in check mode) - the API server's
      count of template changes, in the DaemonSet's C(deprecated.daemonset.template.generation) annotation.
  returned: success
  type: int
  sample: 2
changes:
  description: Changed leaf fields of the pod template, from the live one to the one asked for.
  returned: success
  type: list
  elements: dict
  sample:
    - path: spec.containers[name=fluentd-elasticsearch].image
      before: quay.io/fluentd_elasticsearch/fluentd:v2.5.2
      after: quay.io/fluentd_elasticsearch/fluentd:v2.6.0
rollout:
  description: The result of the wait, as M(kubeops.daemonset.ds_rollout_wait) returns it.
  returned: with O(wait=true)
  type: dict
owners:
  description: Who else manages the DaemonSet and would revert the change (see O(on_foreign_owner)).
  returned: success
  type: list
  elements: dict
diff:
  description: The live pod template and the one asked for, as YAML.
  returned: in diff mode
  type: dict
"""

import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.update import update
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import (
    DAEMONSET_ARG_SPEC,
    OWNER_ARG_SPEC,
    WAIT_ARG_SPEC,
    check_wait,
    run_module,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._template import check_container_changes

ARGUMENT_SPEC = {
    **DAEMONSET_ARG_SPEC,
    **OWNER_ARG_SPEC,
    "template": {"type": "raw"},
    "src": {"type": "path"},
    "images": {"type": "dict"},
    "resources": {"type": "dict"},
    "change_cause": {"type": "str"},
    "record_revision_before": {"type": "bool", "default": False},
    **WAIT_ARG_SPEC,
}
SPEC_RULES = {
    "mutually_exclusive": [("template", "src", "images"), ("template", "src", "resources")],
    "required_one_of": [("template", "src", "images", "resources")],
}


def check(params: dict[str, t.Any]) -> None:
    check_wait(params)
    check_container_changes(params["images"], params["resources"])


run = update  # what main() and the action (plugins/action/ds_update.py) call


def main() -> None:
    run_module(ARGUMENT_SPEC, "ds_update", run, check, **SPEC_RULES)


if __name__ == "__main__":
    main()
