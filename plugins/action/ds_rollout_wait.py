# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of ds_rollout_wait: prints kubectl's progress lines while the task runs.

A module cannot print while it runs, so this action runs it in steps: each step waits (watch-driven) until
the status changes (``return_on_change_from``: the status the previous step returned) or the rollout ends.
Every new kubectl message is printed as it arrives; the timeline, the overall ``timeout`` and the
``progress_deadline`` are carried across steps, and one final result is returned, as if the module had run
once.  Lines go to standard error, so machine-readable standard output (the ``json`` callback) stays intact.
"""

from __future__ import annotations

import math
import time
import typing as t

from ansible.module_utils.common.validation import check_type_bool, check_type_int
from ansible_collections.kubeops.daemonset.plugins.module_utils._rollout import failure_message
from ansible_collections.kubeops.daemonset.plugins.plugin_utils._progress import ProgressAction


class ActionModule(ProgressAction):
    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        try:
            print_progress = check_type_bool(args.get("print_progress", True))
            timeout = check_type_int(args.get("timeout", 300))
            deadline = args.get("progress_deadline")
            progress_deadline = None if deadline is None else check_type_int(deadline)
        except TypeError:  # not a bool or an integer: one module run reports the error
            print_progress, timeout, progress_deadline = False, 0, None
        # status only, one silent wait, or a caller driving the steps itself: one module run
        if not print_progress or timeout <= 0 or "return_on_change_from" in args:
            return {**result, **self._run_step(args, task_vars)}
        return {**result, **self._wait(args, timeout, progress_deadline, task_vars)}

    def _wait(
        self, args: dict[str, t.Any], timeout: int, progress_deadline: int | None, task_vars: dict[str, t.Any] | None
    ) -> dict[str, t.Any]:
        start = progress_at = time.monotonic()
        timeline: list[dict[str, t.Any]] = []
        previous: dict[str, t.Any] = {}  # the first step returns at its first observation
        while True:
            now = time.monotonic()
            step = dict(args, timeout=max(1, math.ceil(start + timeout - now)), return_on_change_from=previous)
            if progress_deadline:
                step["progress_deadline"] = max(1, math.ceil(progress_at + progress_deadline - now))
            step_result = self._run_step(step, task_vars)
            for entry in step_result.get("timeline") or []:
                if not timeline or entry["message"] != timeline[-1]["message"]:
                    timeline.append(entry)
                    self._print([entry["message"]], task_vars)
            if step_result.get("failed") or step_result.get("outcome") != "changed":
                break
            previous, progress_at = step_result["status"], time.monotonic()
        step_result.update(timeline=timeline, elapsed=round(time.monotonic() - start, 3))
        if step_result.get("outcome") in ("timeout", "progress_deadline"):
            # The last step saw only what was left of the limits; say them as the user set them.
            step_result["msg"] = failure_message(
                args.get("namespace") or "default",  # the module's default namespace
                args["name"],
                step_result["outcome"],
                timeout,
                progress_deadline,
                step_result["message"],
                step_result["blockers"]["summary"],
            )
        return step_result
