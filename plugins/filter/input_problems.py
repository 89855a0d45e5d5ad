# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: input_problems
short_description: What is wrong with a role's variables, before anything is read or written
version_added: 0.2.0
description:
  - The checks of the collection's roles (and C(lifecycle.yml)) that an argument spec cannot express - ranges, and
    rules across variables such as "exactly one source of the DaemonSet" - in Python, with the same rules the modules
    apply to the same values. Each problem names the variable and what it must be.
  - Each role runs it in its first task; an empty list means nothing is wrong.
author:
  - kubeops.daemonset contributors (@kubeops)
positional: _input, role
options:
  _input:
    description: The role's variables by name (only those checked are needed).
    type: dict
    required: true
  role:
    description: Whose rules.
    type: str
    choices: [deploy, update, rollback, troubleshoot, lifecycle, fleet]
    required: true
"""

EXAMPLES = r"""
---
- name: Check the deploy_* variables
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "{{ __problems | join(' ') }}"
    quiet: true
  vars:
    __problems: "{{ {'deploy_timeout': deploy_timeout} | kubeops.daemonset.input_problems('deploy') }}"
"""

RETURN = r"""
_value:
  description:
    - "One message per problem, each starting with the role's name, such as
      C(deploy: deploy_timeout must not be negative (got -5).); empty when there is none."
  type: list
  elements: str
"""

from ansible_collections.kubeops.daemonset.plugins.module_utils._inputs import problems


class FilterModule:
    def filters(self) -> dict:
        return {"input_problems": problems}
