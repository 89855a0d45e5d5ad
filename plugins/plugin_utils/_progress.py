# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller-side helpers shared by the action plugins that print progress while their module runs."""

from __future__ import annotations

import typing as t


def host_prefix(task_vars: dict[str, t.Any] | None) -> str:
    """``host: `` when the play runs on several hosts (clusters), so interleaved lines stay attributable."""
    task_vars = task_vars or {}
    hosts = task_vars.get("ansible_play_hosts") or []
    return f"{task_vars.get('inventory_hostname')}: " if len(hosts) > 1 else ""
