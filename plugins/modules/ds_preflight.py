#!/usr/bin/python
# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ds_preflight
short_description: Check a DaemonSet change on every node before anything changes, and optionally pre-pull its images
version_added: 0.2.0
author:
  - kubeops.daemonset contributors (@kubeops)
description:
  - Runs against the DaemonSet as a change would leave it - the live one changed by O(template), O(images) or
    O(resources) (the options of M(kubeops.daemonset.ds_update)), the live one as it is, or a whole O(definition)
    (what M(kubeops.daemonset.ds_apply) applies, also for a DaemonSet not deployed yet) - computed with a server dry
    run, so the server's defaults and validation apply. Nothing is changed.
  - "For every node that would run it (the node selector, the required node affinity and the taints, against the
    template's tolerations plus the ones the controller adds), it says whether the pod fits: its requests against
    the node's allocatable minus what the node's unfinished pods request. With C(maxSurge) > 0 the new pod must fit
    beside the old one; without surge (and with OnDelete) the old pod of this DaemonSet goes first, so its requests
    count as free."
  - Nodes the node selector and affinity do not pick are not targets (the controller ignores them too) and are only
    counted. A node they pick whose C(NoSchedule) or C(NoExecute) taint is not tolerated is a finding naming the node
    and the taint - an error when the live DaemonSet runs there (the change would take the node's pod away), else a
    warning. An image reference the kubelet cannot parse is an error on every node (C(InvalidImageName)).
  - "With O(prepull=true), the images the live template does not use are pulled before the change: a throw-away
    DaemonSet C(NAME-prepull) with the same node placement (node selector, node affinity, tolerations, host network),
    imagePullSecrets and service account runs one init container per image (O(prepull_command)) and a pause
    container. Its progress is printed while it runs; each node is then C(pulled), C(failed) (C(ErrImagePull),
    C(ImagePullBackOff), C(InvalidImageName) ... an error), C(blocked) (the image is there but the command could not
    run in it, so the images after it were not tried - a warning), C(pending) when O(prepull_timeout) passed (an
    error) or C(skipped) (a NotReady node - a warning)."
  - The pre-pull DaemonSet is deleted (with its pods) however the run ends, also on SIGINT, SIGTERM or SIGHUP of the
    process running it and when ansible-playbook is killed. If the process running it is killed (SIGKILL), its
    owner - a Job that runs no pod and fails after O(prepull_timeout) plus 30 seconds - is then deleted by the TTL
    controller and the garbage collector deletes the DaemonSet; the next run in the namespace also deletes any
    pre-pull DaemonSet past its expiry. See C(docs/ds_preflight.md).
  - The module fails when a finding is an error (the rollout would fail there), with the findings in the result;
    C(failed_when) or C(ignore_errors) keep the report without failing.
  - "RBAC: C(get) on C(apps/daemonsets) in the namespace, C(list) on C(nodes) and on C(pods) of all namespaces (a
    ClusterRole), C(patch) (O(template), O(images), O(resources)) or C(create) and C(update) (O(definition)) on
    C(apps/daemonsets) for the dry run; with O(prepull) C(create), C(list) and C(delete) on C(apps/daemonsets),
    C(list) and C(watch) on C(pods) in the namespace, and C(create), C(get) and C(delete) on C(batch/jobs) (without
    them there is no owner Job, with a warning)."
options:
  name:
    description: Name of the DaemonSet; overrides the O(definition)'s C(metadata.name). Required without O(definition).
    type: str
  namespace:
    description: Namespace of the DaemonSet; overrides the O(definition)'s. Without either, V(default).
    type: str
  definition:
    description:
      - The whole DaemonSet, as a dict or the YAML text of a manifest (what M(kubeops.daemonset.ds_apply) takes),
        checked as ds_apply checks it. For a DaemonSet that is not deployed yet, or a change of more than the template.
      - Exclusive with O(template), O(src), O(images) and O(resources).
    type: raw
  template:
    description:
      - The new pod template, or a DaemonSet manifest whose C(spec.template) is used (as in
        M(kubeops.daemonset.ds_update)).
      - Exclusive with O(src), O(images) and O(resources). Without any of them, the live template is checked.
    type: raw
  src:
    description:
      - A file on the controller holding what O(template) takes, as O(kubeops.daemonset.ds_update#module:src) of
        M(kubeops.daemonset.ds_update) (the update role passes its C(update_manifest_file) here). A relative path is
        looked for in the C(files/) directories of the role and the play first, as the C(file) lookup does.
      - Exclusive with O(template), O(images) and O(resources).
    type: path
  images:
    description: New images by container name (containers and init containers), like C(kubectl set image).
    type: dict
  resources:
    description: New C(resources) by container name; each replaces that container's C(resources) as a whole.
    type: dict
  prepull:
    description:
      - Pull the new images on every target node with a throw-away DaemonSet before anything changes.
      - Skipped in check mode (it would create a DaemonSet), which the result says.
    type: bool
    default: false
  prepull_timeout:
    description: Seconds the pre-pull may take; nodes still pending then are errors.
    type: int
    default: 300
  prepull_images:
    description:
      - V(new) pulls the images the live template does not use (the nodes that run it have the others); V(all) every
        image of the template. Without a live DaemonSet, every image.
    type: str
    choices: [new, all]
    default: new
  prepull_command:
    description:
      - What each init container runs in its image; it must exit 0. The default needs a shell in the image; for images
        without one give a command they have (a node whose image lacks it is reported C(blocked)).
    type: list
    elements: str
    default: [sh, -c, "true"]
  prepull_pause_image:
    description:
      - The image of the pre-pull pods' main container, which only waits. The pause image is on every node already (the
        container runtime starts each pod's sandbox from it); give your registry's copy in air-gapped clusters.
    type: str
    default: registry.k8s.io/pause:3.10
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - kubeops.daemonset._attributes
  - kubeops.daemonset._attributes.actiongroup
attributes:
  check_mode:
    support: full
    details:
      - The checks are reads and a server dry run, so they run in check mode too; the pre-pull does not (it would create
        a DaemonSet), and the result says so.
  diff_mode:
    support: none
    details: Nothing is changed; the pre-pull DaemonSet is created and deleted within the run.
  idempotent:
    support: full
    details: It changes nothing (always V(changed=false)); the live DaemonSet's resourceVersion stays as it was.
seealso:
  - module: kubeops.daemonset.ds_update
  - module: kubeops.daemonset.ds_apply
  - module: kubeops.daemonset.ds_diagnose
  - name: Cilium's upgrade guide (pre-flight check)
    description: The pre-pull DaemonSet the Cilium upgrade guide makes a required step.
    link: https://docs.cilium.io/en/stable/operations/upgrade/
"""

EXAMPLES = r"""
---
- name: Check a new fluentd image on every node and pull it there before the update
  kubeops.daemonset.ds_preflight:
    name: fluentd-elasticsearch
    namespace: kube-system
    images:
      fluentd-elasticsearch: quay.io/fluentd_elasticsearch/fluentd:v2.6.0
    prepull: true
    prepull_timeout: 600

- name: Check a manifest before it is deployed (fit and taints only), keeping the report without failing
  kubeops.daemonset.ds_preflight:
    definition: "{{ lookup('ansible.builtin.file', 'fluentd-daemonset.yaml') }}"
  register: preflight
  failed_when: false

- name: Show the nodes where it would not fit
  ansible.builtin.debug:
    msg: "{{ preflight.findings | selectattr('check', 'eq', 'fit') | map(attribute='message') }}"
"""

RETURN = r"""
ok:
  description: No finding is an error (the module fails otherwise).
  returned: always
  type: bool
msg:
  description: The verdict, with the findings grouped by check and reason.
  returned: always
  type: str
  sample: "pre-flight of DaemonSet kube-system/fluentd: 1 problem that would fail the rollout; error: pod does not fit
    on 1 node (worker-7): node worker-7 has no room for the pod: Insufficient cpu (needs 500m, 100m free of 4
    allocatable)"
findings:
  description:
    - "Per-node findings C({node, check, severity, reason, message}): C(check) is V(fit) (with C(short): how much of
      each resource is missing), V(taint) (with C(taints)), V(image) (C(node) null, with C(image)) or V(pull) (with
      C(image)); C(severity) V(error) or V(warning)."
  returned: always
  type: list
  elements: dict
  sample:
    - node: worker-7
      check: fit
      severity: error
      reason: Insufficient cpu
      message: "node worker-7 has no room for the pod: Insufficient cpu (needs 500m, 100m free of 4 allocatable)"
      short: {cpu: 400m}
summary:
  description:
    - Counts - C(nodes), C(targets), C(not_selected) (nodes the selector and affinity do not pick), C(untolerated),
      C(fit), C(no_fit), C(not_ready), C(surge) (whether the new pod must fit beside the old one), and with a pre-pull
      C(pull) (C(pulled), C(failed), C(blocked), C(pending), C(skipped)).
  returned: always
  type: dict
nodes:
  description: Each target node - C(fits), C(ready), C(pull) (its pre-pull state, null without one).
  returned: always
  type: dict
  sample: {worker-1: {fits: true, ready: true, pull: pulled}}
images:
  description: The images the pre-pull pulls (or would pull) - see O(prepull_images).
  returned: always
  type: list
  elements: str
prepull:
  description:
    - The pre-pull - C(state) (V(done), V(timeout) or V(skipped) with a C(reason)), C(name), C(images), C(elapsed),
      C(counts), C(left_behind) (what could not be deleted, normally empty). Null without O(prepull).
  returned: always
  type: dict
api_calls:
  description: API requests made (constant in the number of nodes; the pre-pull's watch adds one per 5 seconds).
  returned: always
  type: int
elapsed:
  description: Seconds the pre-flight took, the pre-pull included.
  returned: always
  type: float
"""

import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import RequestError
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.preflight import preflight
from ansible_collections.kubeops.daemonset.plugins.module_utils._preflight import (
    PAUSE_IMAGE,
    PREPULL_COMMAND,
    image_problem,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import at_least, run_module
from ansible_collections.kubeops.daemonset.plugins.module_utils._template import check_container_changes

ARGUMENT_SPEC = {
    "name": {"type": "str"},
    "namespace": {"type": "str"},
    "definition": {"type": "raw"},
    "template": {"type": "raw"},
    "src": {"type": "path"},
    "images": {"type": "dict"},
    "resources": {"type": "dict"},
    "prepull": {"type": "bool", "default": False},
    "prepull_timeout": {"type": "int", "default": 300},
    "prepull_images": {"type": "str", "choices": ["new", "all"], "default": "new"},
    "prepull_command": {"type": "list", "elements": "str", "default": PREPULL_COMMAND},
    "prepull_pause_image": {"type": "str", "default": PAUSE_IMAGE},
}
SPEC_RULES = {
    "mutually_exclusive": [("definition", "template", "src", "images"), ("definition", "template", "src", "resources")],
    "required_one_of": [("name", "definition")],
}


def check(params: dict[str, t.Any]) -> None:
    at_least(params, 1, "prepull_timeout")
    check_container_changes(params["images"], params["resources"])
    if not params["prepull_command"]:
        raise RequestError(
            "prepull_command must not be empty (it is what each init container runs, e.g. [sh, -c, 'true'])"
        )
    problem = image_problem(params["prepull_pause_image"])
    if problem:
        raise RequestError(
            f"prepull_pause_image {params['prepull_pause_image']!r} is not an image reference ({problem})"
        )


run = preflight  # what main() and the action (plugins/action/ds_preflight.py) call


def main() -> None:
    run_module(ARGUMENT_SPEC, "ds_preflight", run, check, **SPEC_RULES)


if __name__ == "__main__":
    main()
