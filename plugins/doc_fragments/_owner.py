# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The option of the writers that meet a DaemonSet someone else manages (argument spec: _runner.OWNER_ARG_SPEC)."""

    DOCUMENTATION = r"""
options:
  on_foreign_owner:
    description:
      - What to do when someone else manages the DaemonSet and would put their configuration back - an Argo CD
        application or a Flux Kustomization or HelmRelease (their labels and annotations), a Helm release (its
        annotations), C(kubectl apply) (its last-applied annotation; counted for rollbacks, as kubectl warns of it),
        or another server-side apply field manager.
      - V(warn) goes ahead with a warning naming the owner; V(refuse) fails before anything is written, naming it;
        V(proceed) goes ahead silently. RV(owners) names them either way, so an AWX workflow can route to a change at
        the source (Git, the chart) instead.
    type: str
    choices: [warn, refuse, proceed]
    default: warn
"""
