# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Descriptions of the module attributes; modules state only C(support) and C(details)."""

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the cluster.
  diff_mode:
    description: Will return details on what has changed (or would change in check mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row with the same arguments, the second run reports no change
        (read-only modules never change anything).
"""

    ACTIONGROUP = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/kubeops.daemonset.all) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - kubeops.daemonset.all
"""
