# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Running one of the collection's operations for a task, the same way whether it runs as an Ansible module (in
its own process, where the connection puts it) or in the controller process (``plugin_utils/_controller``).

A module gives its ``ARGUMENT_SPEC`` (the auth options of kubernetes.core are added here), its ``SPEC_RULES``
(mutually_exclusive, required_if ...) and ``run(request, api) -> result``. ``execute`` connects, runs it and
turns every error the collection knows into a failed result with a message a person can act on.

Floor 2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import typing as t
from pathlib import Path

from ansible_collections.kubeops.daemonset.plugins.module_utils._client import (
    Api,
    ClientMissing,
    Interrupted,
    K8sError,
    connect,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._manifest import int_or_percent
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    RequestError,
    check_names,
    is_daemonset_name,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._transport import RunCommand
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

Obj = dict[str, t.Any]

# The options naming the DaemonSet, which every module has (documented by the kubeops.daemonset._daemonset fragment).
DAEMONSET_ARG_SPEC: Obj = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str", "default": "default"},
}


# What a writer does when someone else (GitOps, Helm, kubectl apply) manages the DaemonSet (the _owner fragment).
OWNER_ARG_SPEC: Obj = {"on_foreign_owner": {"type": "str", "choices": ["warn", "refuse", "proceed"], "default": "warn"}}


# How the writers wait for what they wrote (the _wait fragment); NODE_BUDGET_ARG_SPEC: also ds_rollout_wait's and
# ds_batch_rollout's (the _wait.NODE_BUDGET fragment).
NODE_BUDGET_ARG_SPEC: Obj = {"unhealthy_node_budget": {"type": "raw", "default": 0}}
WAIT_ARG_SPEC: Obj = {
    "wait": {"type": "bool", "default": False},
    "wait_timeout": {"type": "int", "default": 300},
    "wait_progress_deadline": {"type": "int"},
    **NODE_BUDGET_ARG_SPEC,
}


def full_spec(argument_spec: Obj) -> Obj:
    """The module's options plus kubernetes.core's connection options."""
    return {**AUTH_ARG_SPEC, **argument_spec}


@dataclasses.dataclass
class Request:
    """One task's request: its validated options, check and diff mode, and where its notes go."""

    params: Obj
    check_mode: bool = False
    diff: bool = False
    say: t.Callable[[str], None] = lambda line: None  # progress lines, printed as they come in the controller
    environ: t.Mapping[str, str] = dataclasses.field(default_factory=lambda: os.environ)
    run_command: RunCommand | None = None  # runs exec credential plugins (a module: AnsibleModule.run_command)
    stop: t.Callable[[], str | None] | None = None  # a reason to stop now (the controller is gone), or None
    elsewhere: bool = False  # it can run as a module instead: ClientMissing is raised, not reported
    warnings: list[str] = dataclasses.field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def pid_alive(pid: int) -> bool:
    """Whether process PID of this host runs (another user's counts as running). A killed process nobody has reaped
    yet - a zombie, as a killed job's workers are until init collects them - does not run."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # the state is the field after the command name, which may hold spaces and parentheses
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc to tell: the signal said it exists
    return state not in ("Z", "X")


class SignalGuard:
    """While inside, SIGINT, SIGTERM and SIGHUP raise Interrupted where the run is, so its ``finally`` blocks clean up
    what it created; inside ``shielded()`` (the clean-up itself) they are only recorded. On leaving, the previous
    handlers are back and the first signal is delivered again, so the process then ends the way it would have.

    Ansible's worker processes end at once on these signals (``os._exit``, no ``finally``): ansible-playbook sends
    them to its workers when it is interrupted (Ctrl-C) or terminated, a worker to its module processes when it
    ends. Only the main thread can receive signals: elsewhere the guard does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: list[int] = []
        self._shielded = False
        self._previous: dict[int, t.Any] = {}

    def _handle(self, signum: int, _frame: t.Any) -> None:
        self.received.append(signum)
        if not self._shielded and len(self.received) == 1:
            raise Interrupted(f"stopped by {signal.Signals(signum).name}")

    @contextlib.contextmanager
    def shielded(self) -> t.Iterator[None]:
        self._shielded = True
        try:
            yield
        finally:
            self._shielded = False

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *_exc: t.Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if self.received:
            os.kill(os.getpid(), self.received[0])


class OperationFailed(K8sError):
    """An operation that failed part way: ``details`` say how far it got (for the failed result)."""

    def __init__(self, msg: str, details: Obj, status: int | None = None) -> None:
        super().__init__(msg, status)
        self.details = details


def _named(message: str, params: Obj) -> str:
    """The request's errors get the DaemonSet in front (API errors name their object already)."""
    name = params.get("name")
    return f"DaemonSet {params.get('namespace')}/{name}: {message}" if name and is_daemonset_name(name) else message


def at_least(params: Obj, minimum: float, *names: str) -> None:
    """RequestError unless each of the options NAMES is unset or at least MINIMUM."""
    for name in names:
        if params.get(name) is not None and params[name] < minimum:
            raise RequestError(f"{name} must be at least {minimum:g} (got {params[name]:g})")


def check_node_budget(params: Obj) -> None:
    """``unhealthy_node_budget`` as a count or a percentage (AWX surveys send numbers as text)."""
    params["unhealthy_node_budget"] = int_or_percent(params["unhealthy_node_budget"], "unhealthy_node_budget")


def check_wait(params: Obj) -> None:
    """The options of WAIT_ARG_SPEC."""
    at_least(params, 0, "wait_timeout")
    at_least(params, 1, "wait_progress_deadline")
    check_node_budget(params)


def execute(request: Request, module_name: str, run: t.Callable[[Request, Api], Obj],
            check: t.Callable[[Obj], None] | None = None) -> Obj:  # fmt: skip
    """CHECK the options (before anything is read or written), connect, RUN, and return its result (``failed``
    on any error of the API or the request)."""
    try:
        check_names(request.params.get("name"), request.params.get("namespace"))
        if check is not None:
            check(request.params)
        api = connect(request.params, module_name, request.environ, request.run_command, request.stop)
        try:
            result = run(request, api)
        finally:
            api.close()
    except K8sError as exc:
        if isinstance(exc, ClientMissing) and request.elsewhere:
            raise  # the caller runs it as a module, where the kubernetes client may be installed
        result = {"failed": True, "msg": str(exc), "status_code": exc.status, **getattr(exc, "details", {})}
    except RequestError as exc:
        result = {"failed": True, "msg": _named(str(exc), request.params)}
    result.setdefault("changed", False)
    warnings = request.warnings + result.pop("warnings", [])
    if warnings:
        result["warnings"] = warnings
    return result


def run_module(argument_spec: Obj, module_name: str, run: t.Callable[[Request, Api], Obj],
               check: t.Callable[[Obj], None] | None = None, **rules: t.Any) -> None:  # fmt: skip
    """The ``main()`` of a module: validate the options, execute, exit (failing when the result has failed)."""
    from ansible.module_utils.basic import AnsibleModule  # imported here: the controller-side path needs none

    module = AnsibleModule(argument_spec=full_spec(argument_spec), supports_check_mode=True, **rules)
    said: list[str] = []
    request = Request(
        module.params,
        module.check_mode,
        module._diff,
        say=said.append,
        run_command=lambda args, cwd, env: module.run_command(args, cwd=cwd, environ_update=env),
    )
    result = execute(request, module_name, run, check)
    if said:  # a module cannot print while it runs: the action prints these when it returns
        result["progress"] = said
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
