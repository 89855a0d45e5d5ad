# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller-side helpers shared by the action plugins that print progress while their module runs."""

from __future__ import annotations

import typing as t
from collections.abc import Iterable

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


def host_prefix(task_vars: dict[str, t.Any] | None) -> str:
    """``host: `` when the play runs on several hosts (clusters), so interleaved lines stay attributable."""
    task_vars = task_vars or {}
    hosts = task_vars.get("ansible_play_hosts") or []
    return f"{task_vars.get('inventory_hostname')}: " if len(hosts) > 1 else ""


class ProgressAction(ActionBase):
    """An action that runs its own module in steps and prints the progress lines each step returns."""

    def _run_step(self, args: dict[str, t.Any], task_vars: dict[str, t.Any] | None) -> dict[str, t.Any]:
        return self._execute_module(module_name=self._task.resolved_action, module_args=args, task_vars=task_vars)

    def _print(self, lines: Iterable[str], task_vars: dict[str, t.Any] | None) -> None:
        """To standard error, so machine-readable standard output (the ``json`` callback) stays intact."""
        prefix = host_prefix(task_vars)
        for line in lines:
            display.display(f"{prefix}{line}", stderr=True)
