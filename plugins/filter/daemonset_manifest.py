# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: daemonset_manifest
short_description: A DaemonSet manifest with one container, built from a few values
version_added: 0.2.0
description:
  - Builds an C(apps/v1) DaemonSet running one container of the input image, for M(kubeops.daemonset.ds_apply) (the
    deploy role's C(deploy_image) and friends).
  - The selector (default C(app.kubernetes.io/name=NAME)) is also put on the pods, with O(labels).
author:
  - kubeops.daemonset contributors (@kubeops)
positional: _input
options:
  _input:
    description: The container image.
    type: str
    required: true
  name:
    description: Name of the DaemonSet.
    type: str
    required: true
  container_name:
    description: Name of the container; empty means O(name).
    type: str
    default: ""
  resources:
    description: The container's C(resources).
    type: dict
  env:
    description: The container's C(env).
    type: list
    elements: dict
  volume_mounts:
    description: The container's C(volumeMounts).
    type: list
    elements: dict
  tolerations:
    description: The pods' C(tolerations).
    type: list
    elements: dict
  volumes:
    description: The pods' C(volumes).
    type: list
    elements: dict
  node_selector:
    description: The pods' C(nodeSelector).
    type: dict
  labels:
    description: Labels of the DaemonSet and its pods.
    type: dict
  selector:
    description: C(spec.selector.matchLabels), also put on the pods; empty means C(app.kubernetes.io/name=NAME).
    type: dict
"""

EXAMPLES = r"""
---
- name: Deploy a node agent built from its image
  kubeops.daemonset.ds_apply:
    definition: "{{ 'registry.example/agent:1.0' | kubeops.daemonset.daemonset_manifest(name='node-agent') }}"
    namespace: monitoring
"""

RETURN = r"""
_value:
  description: The DaemonSet manifest.
  type: dict
"""

from ansible_collections.kubeops.daemonset.plugins.module_utils._manifest import build_daemonset


class FilterModule:
    def filters(self) -> dict:
        return {"daemonset_manifest": lambda image, **values: build_daemonset(image=image, **values)}
