# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The action of every module of this collection: with a local connection it runs the module's code here, in the
controller's worker process, instead of starting a module process.

The result is the module's own: the same argument validation (its ARGUMENT_SPEC and SPEC_RULES), the same
``run``, the same secrets kept out of the result. Here it costs no process start and no import of a module
payload, and progress lines reach the user the moment they happen (a module can only print when it ends).

Anything else runs the module as Ansible would: another connection (``delegate_to`` a remote host), become, async,
or a configuration that needs the kubernetes client when this Python has none. Its progress lines are printed when
it returns.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import typing as t

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.kubeops.daemonset.plugins.module_utils._client import ClientMissing
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import Request, execute, full_spec

display = Display()
Obj = dict[str, t.Any]


def host_prefix(task_vars: Obj | None) -> str:
    """``host: `` when the play runs on several hosts (clusters), so interleaved lines stay attributable."""
    task_vars = task_vars or {}
    hosts = task_vars.get("ansible_play_hosts") or []
    return f"{task_vars.get('inventory_hostname')}: " if len(hosts) > 1 else ""


def run_command(args: list[str], cwd: str | None, env: dict[str, str]) -> tuple[int, str, str]:
    """What AnsibleModule.run_command does for a module: exec credential plugins run with it."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    return done.returncode, done.stdout, done.stderr


def _inject_invocation(task_vars: Obj | None) -> bool:
    try:
        return bool(C.config.get_config_value("INJECT_INVOCATION", variables=task_vars or {}))
    except Exception:  # before ansible-core 2.21 there is no such setting: modules always returned it
        return True


class ControllerAction(ActionBase):
    """Runs ``plugins/modules/<name>.run`` in this process for a local connection (see the module docstring)."""

    _supports_async = True
    _supports_check_mode = True

    def run(self, tmp: str | None = None, task_vars: Obj | None = None) -> Obj:
        result = super().run(tmp, task_vars)
        self._find_src()
        module = importlib.import_module(f"ansible_collections.kubeops.daemonset.plugins.modules.{self._name()}")
        if self._in_controller():
            try:
                return {**result, **self._run_here(module, task_vars)}
            except ClientMissing:
                pass  # the module's Python may have the kubernetes client this one lacks
        return {**result, **self._run_as_module(task_vars)}

    def _find_src(self) -> None:
        """A relative ``src`` (a manifest file) is found where the file lookup finds files: the role's and the
        play's ``files/`` directories first. One found nowhere stays as it is, for the module to name."""
        src = self._task.args.get("src")
        if isinstance(src, str) and src and not os.path.isabs(os.path.expanduser(src)):
            with contextlib.suppress(AnsibleError):
                self._task.args["src"] = self._find_needle("files", src)

    def _name(self) -> str:
        return self._task.resolved_action.rsplit(".", 1)[-1]

    def _in_controller(self) -> bool:
        return (
            getattr(self._connection, "transport", None) == "local"
            and not self._play_context.become
            and not self._task.async_val
        )

    def _say(self, task_vars: Obj | None) -> t.Callable[[str], None]:
        """Progress lines go to standard error, so machine-readable standard output (the json callback) stays."""
        prefix = host_prefix(task_vars)
        return lambda line: display.display(f"{prefix}{line}", stderr=True)

    def _run_here(self, module: t.Any, task_vars: Obj | None) -> Obj:
        validator = ArgumentSpecValidator(full_spec(module.ARGUMENT_SPEC), **getattr(module, "SPEC_RULES", {}))
        validation = validator.validate(dict(self._task.args))
        secrets = validation._no_log_values
        if validation.error_messages:
            msg = validation.errors.msg
            if isinstance(validation.errors[0], UnsupportedError):
                msg = f"Unsupported parameters for ({self._task.resolved_action}) module: {msg}"
            return {"failed": True, "msg": msg}
        environment: Obj = {}
        self._compute_environment_string(environment)
        parent = os.getppid()
        request = Request(
            validation.validated_parameters,
            check_mode=bool(self._task.check_mode),
            diff=bool(self._task.diff),
            say=self._say(task_vars),
            environ={**os.environ, **{k: str(v) for k, v in environment.items()}},
            run_command=run_command,
            stop=lambda: "the ansible process that ran this task is gone" if os.getppid() != parent else None,
            elsewhere=True,
        )
        result = execute(request, self._name(), module.run, getattr(module, "check", None))
        if _inject_invocation(task_vars):
            result["invocation"] = {"module_args": validation.validated_parameters}
        return remove_values(result, secrets)

    def _run_as_module(self, task_vars: Obj | None) -> Obj:
        """As the ``normal`` action runs a module (async included); then the lines it would have printed."""
        wrap_async = self._task.async_val
        result = self._execute_module(task_vars=task_vars, wrap_async=wrap_async)
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        say = self._say(task_vars)
        for line in result.pop("progress", None) or []:
            say(line)
        return result
