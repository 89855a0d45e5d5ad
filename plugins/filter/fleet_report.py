# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_report
short_description: The state of a fleet update, from each cluster's record
version_added: 0.3.0
description:
  - Reads the C(kubeops_fleet) fact of each cluster (its wave, revision before and after, outcome and seconds, as
    C(kubeops.daemonset.fleet_update) records them) and says whether a wave failed beyond O(budget), which revision
    each cluster goes back to, and the fleet's summary.
  - A wave halts the fleet when more of its clusters failed than O(budget) allows. Then every cluster the change
    reached (updated or failed, also in an earlier run that recorded its revision) goes back to the revision it
    recorded before the change; clusters not reached are left alone.
author:
  - kubeops.daemonset contributors (@kubeops)
positional: _input, clusters, budget
options:
  _input:
    description: The C(hostvars) variable.
    type: raw
    required: true
  clusters:
    description: The clusters of the update, in wave order.
    type: list
    elements: str
    required: true
  budget:
    description: How many clusters of one wave may fail - a count, or a percentage of the wave (rounded down).
    type: raw
    default: 0
"""

EXAMPLES = r"""
---
- name: Show the fleet's summary
  ansible.builtin.debug:
    msg: "{{ (hostvars | kubeops.daemonset.fleet_report(ansible_play_hosts_all, 0)).table }}"
"""

RETURN = r"""
_value:
  description: The fleet's state.
  type: dict
  contains:
    halted:
      description: A wave failed beyond its budget.
      type: bool
    verdict:
      description: The wave that halted the fleet (C(wave), C(failed) clusters, C(allowed) failures), if one did.
      type: dict
    rollback_to:
      description: Per cluster, the revision it goes back to (null - left as it is).
      type: dict
    rows:
      description: Per cluster - C(cluster), C(wave), C(revision_before), C(revision_after), C(outcome), C(seconds).
      type: list
      elements: dict
    table:
      description: The rows as aligned text lines, then a line per cluster with a message (why it failed).
      type: list
      elements: str
    plan:
      description: The wave plan, one line per wave, each cluster with what it gets.
      type: list
      elements: str
"""

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.kubeops.daemonset.plugins.module_utils._fleet import (
    plan_lines,
    rollback_to,
    summary,
    table,
    verdict,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import RequestError


def fleet_report(hostvars: t.Mapping[str, t.Any], clusters: list[str], budget: t.Any = 0) -> dict:
    records = {c: dict(hostvars[c]["kubeops_fleet"]) for c in clusters if "kubeops_fleet" in hostvars[c]}
    try:
        found = verdict(records, budget)
    except RequestError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    rows = summary(records, clusters)
    return {
        "halted": found["halted"],
        "verdict": found,
        "rollback_to": {c: rollback_to(r, found["halted"]) for c, r in records.items()},
        "rows": rows,
        "table": table(rows) + [f"{row['cluster']}: {row['message']}" for row in rows if row["message"]],
        "plan": plan_lines(clusters, records),
    }


class FilterModule:
    def filters(self) -> dict:
        return {"fleet_report": fleet_report}
