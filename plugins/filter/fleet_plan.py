# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_plan
short_description: The waves of a fleet update, from inventory groups or sizes
version_added: 0.3.0
description:
  - The clusters (inventory hosts) a host pattern names, split into waves. Each item of O(waves) is a size - V(1), or
    a percentage of all the clusters such as V(25%) (rounded down, at least 1, as Ansible's C(serial)) - or the name
    of a group (its clusters not in an earlier wave). The last item repeats until every cluster has a wave.
  - C(kubeops.daemonset.fleet_update) gives its rollout play the clusters in wave order as host pattern and the
    waves' sizes as C(serial), so Ansible runs exactly these waves.
author:
  - kubeops.daemonset contributors (@kubeops)
positional: _input, waves, groups
options:
  _input:
    description: The clusters - group and host names, as a list or a pattern such as C(eu,us) (no wildcards).
    type: raw
    required: true
  waves:
    description: Wave sizes and group names, in order.
    type: list
    elements: raw
    required: true
  groups:
    description: The inventory's groups (the C(groups) variable).
    type: dict
    required: true
"""

EXAMPLES = r"""
---
- name: One canary cluster, then a quarter of the fleet, then the rest
  ansible.builtin.debug:
    msg: "{{ 'production' | kubeops.daemonset.fleet_plan([1, '25%', '100%'], groups) }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    waves:
      description: The clusters of each wave.
      type: list
      elements: list
    clusters:
      description: Every cluster, in wave order.
      type: list
      elements: str
    serial:
      description: The size of each wave (a play's C(serial)).
      type: list
      elements: int
    wave:
      description: Each cluster's wave, numbered from 1.
      type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.kubeops.daemonset.plugins.module_utils._fleet import targets, waves
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import RequestError


def fleet_plan(pattern: str | list[str], spec: list, groups: dict[str, list[str]]) -> dict:
    try:
        planned = waves(spec, targets(pattern, groups), groups)
    except RequestError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    return {
        "waves": planned,
        "clusters": [cluster for wave in planned for cluster in wave],
        "serial": [len(wave) for wave in planned],
        "wave": {cluster: number for number, wave in enumerate(planned, 1) for cluster in wave},
    }


class FilterModule:
    def filters(self) -> dict:
        return {"fleet_plan": fleet_plan}
