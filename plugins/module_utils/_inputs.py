# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the roles (and lifecycle.yml) check of their variables that an argument spec cannot express - ranges, and
rules across variables - before they read or write anything. Each problem names the variable and what it must be;
the rules the modules apply to the same values are the same functions, named after the role's variables.

Floor 1 (pure).
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.kubeops.daemonset.plugins.module_utils._fleet import allowed_failures
from ansible_collections.kubeops.daemonset.plugins.module_utils._manifest import strategy_spec
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import RequestError

Obj = dict[str, t.Any]
Rule = t.Callable[[Obj], t.Iterator[str]]


def _number(value: t.Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _not_negative(*names: str) -> Rule:
    def rule(values: Obj) -> t.Iterator[str]:
        for name in names:
            number = _number(values.get(name))
            if number is not None and number < 0:
                yield f"{name} must not be negative (got {values[name]})."
            elif number is None and values.get(name) is not None:
                yield f"{name} must be a number (got {values[name]!r})."

    return rule


def _whole_numbers(*names: str) -> Rule:
    def rule(values: Obj) -> t.Iterator[str]:
        for name in names:
            if not str(values.get(name)).isdigit():
                yield f"{name} must be a whole number, not negative (got {values.get(name)})."

    return rule


def _deploy_source(values: Obj) -> t.Iterator[str]:
    sources = sum(bool(values.get(f"deploy_{name}")) for name in ("manifest_file", "definition", "image"))
    present = values.get("deploy_state", "present") == "present"
    named = bool(values.get("deploy_name"))
    if (
        sources > 1
        or (present and sources == 0)
        or (not present and not (sources or named))
        or (values.get("deploy_image") and not named)
    ):
        yield (
            "give exactly one of deploy_manifest_file, deploy_definition or deploy_image (deploy_image also needs "
            "deploy_name; deploy_state=absent needs deploy_name or a manifest)."
        )


def _deploy_strategy(values: Obj) -> t.Iterator[str]:
    strategy = {name: values.get(f"deploy_{name}") for name in ("max_unavailable", "max_surge", "min_ready_seconds")}
    try:
        strategy_spec({"type": values.get("deploy_strategy_type"), **strategy}, prefix="deploy_")
    except RequestError as exc:
        yield f"{exc}."


def _update_change(values: Obj) -> t.Iterator[str]:
    kinds = [
        bool(values.get("update_template")),
        bool(values.get("update_manifest_file")),
        bool(values.get("update_images") or values.get("update_resources")),
        boolean(values.get("update_restart") or False, strict=False),
    ]
    if sum(kinds) != 1:
        yield (
            "set exactly one of update_template (a pod template or a DaemonSet manifest), update_manifest_file (a "
            "file holding one), update_images and/or update_resources (by container name), or update_restart."
        )


def _troubleshoot_fix(values: Obj) -> t.Iterator[str]:
    given = bool(values.get("troubleshoot_images")) + bool(values.get("troubleshoot_template"))
    if values.get("troubleshoot_remediate") == "fixed_template" and given != 1:
        yield (
            "troubleshoot_remediate=fixed_template needs exactly one of troubleshoot_images (container -> image) or "
            "troubleshoot_template (a pod template or a DaemonSet manifest)."
        )


def _fleet_budget(values: Obj) -> t.Iterator[str]:
    try:
        allowed_failures(values.get("fleet_failure_budget", 0), 1)
    except RequestError as exc:
        yield f"{exc}."


RULES: dict[str, tuple[Rule, ...]] = {
    "deploy": (
        _deploy_source,
        _deploy_strategy,
        _not_negative("deploy_timeout", "deploy_progress_deadline", "deploy_delete_timeout"),
    ),
    "update": (_update_change, _not_negative("update_timeout", "update_progress_deadline")),
    "rollback": (
        _not_negative(
            "rollback_to_revision", "rollback_show_revision", "rollback_timeout", "rollback_progress_deadline"
        ),
    ),
    "troubleshoot": (_troubleshoot_fix, _not_negative("troubleshoot_clock_skew_tolerance")),
    "fleet": (_fleet_budget, _whole_numbers("fleet_bake_seconds")),
    "lifecycle": (_whole_numbers("lifecycle_timeout", "lifecycle_show_revision", "lifecycle_rollback_to_revision"),),
}


def problems(values: Obj, role: str) -> list[str]:
    """Every problem of VALUES (the variables of ROLE by name), each starting with ``ROLE:``; empty when none."""
    return [f"{role}: {problem}" for rule in RULES[role] for problem in rule(values)]
