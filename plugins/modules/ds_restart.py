#!/usr/bin/python
# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ds_restart
short_description: Restart a DaemonSet's pods like kubectl rollout restart, or when its ConfigMaps or Secrets change
version_added: 0.2.0
author:
  - kubeops.daemonset contributors (@kubeops)
description:
  - Restarts the pods of a DaemonSet the way C(kubectl rollout restart ds/NAME) does - by setting the pod template's
    C(kubectl.kubernetes.io/restartedAt) annotation to the current time - so the controller rolls out one new
    revision with the DaemonSet's own update strategy.
  - With O(when_changed), only when the data of those ConfigMaps and Secrets has changed since the last such restart.
    The module keeps a hash of their data in the pod template's C(daemonset.kubeops.io/config-hash) annotation and
    restarts only when it differs, so a second run changes nothing. The hash shows no value of a Secret.
  - The write is conditioned on the C(resourceVersion) that was read (read again on a conflict).
  - "RBAC: C(get) and C(patch) on C(apps/daemonsets) and C(list) on C(apps/controllerrevisions) in O(namespace);
    C(get) on the C(configmaps) and C(secrets) of O(when_changed)."
options:
  when_changed:
    description:
      - ConfigMaps and Secrets of O(namespace) the pods use, written as kubectl writes them (V(configmap/NAME),
        V(secret/NAME)). Restart only when the hash of their data differs from the one of the last such restart.
      - Unset, the pods are restarted every time, like C(kubectl rollout restart).
    type: list
    elements: str
  wait:
    description:
      - Wait for the restart's rollout with the semantics of M(kubeops.daemonset.ds_rollout_wait), printing its progress
        lines; the result is in RV(rollout).
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
    details: Nothing is written; the patch goes to the API server as a dry run.
  diff_mode:
    support: full
    details: The pod template before and after (its annotations change).
  idempotent:
    support: partial
    details:
      - With O(when_changed), a second run with the same ConfigMaps and Secrets changes nothing.
      - Without it, every run restarts the pods, as C(kubectl rollout restart) does.
seealso:
  - module: kubeops.daemonset.ds_update
  - name: kubectl rollout restart
    description: The kubectl command this module mirrors.
    link: https://kubernetes.io/docs/reference/kubectl/generated/kubectl_rollout/kubectl_rollout_restart/
"""

EXAMPLES = r"""
---
- name: Restart fluentd like kubectl rollout restart and wait for it
  kubeops.daemonset.ds_restart:
    name: fluentd-elasticsearch
    namespace: kube-system
    wait: true

- name: Restart fluentd only when its configuration changed
  kubeops.daemonset.ds_restart:
    name: fluentd-elasticsearch
    namespace: kube-system
    when_changed:
      - configmap/fluentd-config
      - secret/fluentd-credentials
    wait: true
"""

RETURN = r"""
msg:
  description: What happened.
  returned: success
  type: str
  sample: daemonset.apps/fluentd-elasticsearch restarted
config_hash:
  description: The hash of the data of O(when_changed), as the pod template carries it now; null without it.
  returned: success
  type: str
  sample: 3b1f0c6f2d9a4e5b8c7d6e5f4a3b2c1d
revision_before:
  description: The revision live before the restart.
  returned: success
  type: int
  sample: 2
template_generation:
  description: The template generation after the restart (see M(kubeops.daemonset.ds_update)).
  returned: success
  type: int
  sample: 3
changes:
  description: The changed fields of the pod template (its annotations).
  returned: success
  type: list
  elements: dict
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
  description: The pod template before and after, as YAML.
  returned: in diff mode
  type: dict
"""

import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.update import restart
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import (
    DAEMONSET_ARG_SPEC,
    OWNER_ARG_SPEC,
    WAIT_ARG_SPEC,
    check_wait,
    run_module,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._template import parse_config_reference

ARGUMENT_SPEC = {
    **DAEMONSET_ARG_SPEC,
    **OWNER_ARG_SPEC,
    "when_changed": {"type": "list", "elements": "str"},
    **WAIT_ARG_SPEC,
}


def check(params: dict[str, t.Any]) -> None:
    check_wait(params)
    for reference in params["when_changed"] or []:
        parse_config_reference(reference)


run = restart  # what main() and the action (plugins/action/ds_restart.py) call


def main() -> None:
    run_module(ARGUMENT_SPEC, "ds_restart", run, check)


if __name__ == "__main__":
    main()
