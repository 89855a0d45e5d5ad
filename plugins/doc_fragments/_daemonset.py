# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The options naming the DaemonSet, which every module has (argument spec: _runner.DAEMONSET_ARG_SPEC)."""

    DOCUMENTATION = r"""
options:
  name:
    description: Name of the DaemonSet.
    type: str
    required: true
  namespace:
    description: Namespace of the DaemonSet.
    type: str
    default: default
"""
