# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of ds_batch_rollout: prints the plan and each batch's gate while the task runs.

A module cannot print while it runs, so this action runs it batch by batch (``return_after_batch``). The rollout
keeps its state on the DaemonSet, so each step continues where the previous one stopped. The first step's plan
lines and every step's progress lines are printed as the step returns (to standard error, so the ``json``
callback's output stays intact; with several hosts each line starts with the host name), and one result is
returned as if the module had run once: the first step's plan and diff, every batch, every touched node.
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.common.validation import check_type_int
from ansible_collections.kubeops.daemonset.plugins.plugin_utils._progress import ProgressAction


class ActionModule(ProgressAction):
    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        try:
            limit = None if args.get("max_batches") is None else check_type_int(args["max_batches"])
        except TypeError:  # not an integer: one module run reports the error
            return {**result, **self._step(args, task_vars, first=True)}
        if self._task.check_mode or args.get("return_after_batch") or (limit is not None and limit < 1):
            return {**result, **self._step(args, task_vars, first=True)}
        return {**result, **self._steps(args, limit, task_vars)}

    def _step(self, args: dict[str, t.Any], task_vars: dict[str, t.Any] | None, first: bool) -> dict[str, t.Any]:
        step = self._run_step(args, task_vars)
        self._print(((step.get("plan_lines") or []) if first else []) + (step.get("log") or []), task_vars)
        return step

    def _steps(self, args: dict[str, t.Any], limit: int | None, task_vars: dict[str, t.Any] | None) -> dict[str, t.Any]:
        steps: list[dict[str, t.Any]] = []
        batches: list[dict[str, t.Any]] = []
        while True:
            step_args = dict(args, return_after_batch=True)
            if limit is not None:
                step_args["max_batches"] = limit - len(batches)
            step = self._step(step_args, task_vars, first=not steps)
            steps.append(step)
            batches += step.get("batches") or []
            if step.get("failed") or step.get("outcome") != "in_progress" or (limit and len(batches) >= limit):
                break
        touched: list[str] = []
        for node in (node for each in steps for node in each.get("touched_nodes") or []):
            if node not in touched:
                touched.append(node)
        step.update(
            plan=steps[0].get("plan", step.get("plan")),
            plan_lines=steps[0].get("plan_lines", []),
            batches=batches,
            touched_nodes=touched,
            log=[line for each in steps for line in each.get("log") or []],
            changed=any(each.get("changed") for each in steps),
            elapsed=round(sum(each.get("elapsed") or 0 for each in steps), 3),
        )
        if "diff" in steps[0]:  # only the first step changes the template
            step["diff"] = steps[0]["diff"]
        params = step.get("invocation", {}).get("module_args", {})
        params.update(return_after_batch=bool(args.get("return_after_batch")), max_batches=limit)
        return step
