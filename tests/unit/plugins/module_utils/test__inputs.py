# SPDX-License-Identifier: GPL-3.0-or-later
"""The roles' checks of their variables (what their argument specs cannot say), each problem naming the variable."""

from __future__ import annotations

import pytest
from ansible_collections.kubeops.daemonset.plugins.module_utils._inputs import problems

DEPLOY = {"deploy_state": "present", "deploy_name": "", "deploy_manifest_file": "ds.yaml", "deploy_definition": None,
          "deploy_image": None, "deploy_strategy_type": "RollingUpdate", "deploy_max_unavailable": 1,
          "deploy_max_surge": 0, "deploy_min_ready_seconds": 0, "deploy_timeout": 300, "deploy_progress_deadline": 0,
          "deploy_delete_timeout": 120}  # fmt: skip
UPDATE = {"update_template": {}, "update_manifest_file": "", "update_images": {"agent": "x:2"}, "update_resources": {},
          "update_restart": False, "update_timeout": 300, "update_progress_deadline": 0}  # fmt: skip


def test_the_defaults_have_no_problem() -> None:
    assert problems(DEPLOY, "deploy") == [] and problems(UPDATE, "update") == []


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"deploy_timeout": -5}, "deploy: deploy_timeout must not be negative (got -5)."),
        ({"deploy_timeout": "-5"}, "deploy: deploy_timeout must not be negative (got -5)."),  # AWX surveys send text
        ({"deploy_max_unavailable": "ten"}, "deploy: deploy_max_unavailable must be a number or a percentage"),
        ({"deploy_max_surge": "150%"}, "deploy: deploy_max_surge must be a number or a percentage"),
        ({"deploy_max_unavailable": 0, "deploy_max_surge": "0%"},
         "deploy: deploy_max_unavailable and deploy_max_surge cannot both be 0 (nothing could roll)."),
        ({"deploy_min_ready_seconds": -1}, "deploy: deploy_min_ready_seconds must not be negative (got -1)."),
        ({"deploy_image": "x:1"}, "deploy: give exactly one of deploy_manifest_file, deploy_definition or"),
        ({"deploy_manifest_file": ""}, "deploy: give exactly one of"),
        ({"deploy_manifest_file": "", "deploy_image": "x:1"}, "deploy_image also needs deploy_name"),
    ],
)  # fmt: skip
def test_deploy(changes: dict, says: str) -> None:
    found = problems({**DEPLOY, **changes}, "deploy")
    assert len(found) == 1 and says in found[0], found


def test_deploy_absent_needs_a_name_or_a_manifest() -> None:
    absent = {**DEPLOY, "deploy_state": "absent", "deploy_manifest_file": ""}
    assert problems(absent, "deploy") and problems({**absent, "deploy_name": "agent"}, "deploy") == []


def test_on_delete_ignores_the_rolling_budgets() -> None:
    assert problems({**DEPLOY, "deploy_strategy_type": "OnDelete", "deploy_max_unavailable": 0}, "deploy") == []


@pytest.mark.parametrize(
    "changes",
    [{"update_images": {}}, {"update_restart": "yes"}, {"update_manifest_file": "ds.yaml"},
     {"update_template": {"spec": {}}}],
)  # fmt: skip
def test_update_wants_exactly_one_kind_of_change(changes: dict) -> None:
    assert problems({**UPDATE, **changes}, "update")[0].startswith("update: set exactly one of update_template")


def test_update_images_and_resources_are_one_change() -> None:
    assert problems({**UPDATE, "update_resources": {"agent": {"limits": {"cpu": "1"}}}}, "update") == []


def test_every_problem_is_reported() -> None:
    found = problems({"rollback_to_revision": -1, "rollback_show_revision": 0, "rollback_timeout": -5,
                      "rollback_progress_deadline": 0}, "rollback")  # fmt: skip
    assert found == ["rollback: rollback_to_revision must not be negative (got -1).",
                     "rollback: rollback_timeout must not be negative (got -5)."]  # fmt: skip


def test_troubleshoot_and_lifecycle() -> None:
    fix = {"troubleshoot_remediate": "fixed_template", "troubleshoot_images": {}, "troubleshoot_template": {},
           "troubleshoot_clock_skew_tolerance": 5}  # fmt: skip
    assert problems(fix, "troubleshoot")[0].startswith("troubleshoot: troubleshoot_remediate=fixed_template needs")
    skewed = {**fix, "troubleshoot_images": {"a": "x:1"}, "troubleshoot_clock_skew_tolerance": -1}
    assert problems(skewed, "troubleshoot") == [
        "troubleshoot: troubleshoot_clock_skew_tolerance must not be negative (got -1)."
    ]
    numbers = {"lifecycle_timeout": -5, "lifecycle_show_revision": 1, "lifecycle_rollback_to_revision": "2"}
    assert problems(numbers, "lifecycle") == [
        "lifecycle: lifecycle_timeout must be a whole number, not negative (got -5)."
    ]


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"fleet_failure_budget": 0, "fleet_bake_seconds": 30}, None),
        ({"fleet_failure_budget": "10%", "fleet_bake_seconds": "0"}, None),  # AWX surveys send text
        ({"fleet_failure_budget": "a few", "fleet_bake_seconds": 30},
         "fleet: fleet_failure_budget must be a count or a percentage such as 10% (got 'a few')."),
        ({"fleet_failure_budget": 1, "fleet_bake_seconds": -3},
         "fleet: fleet_bake_seconds must be a whole number, not negative (got -3)."),
    ],
)  # fmt: skip
def test_fleet(values: dict, says: str | None) -> None:
    assert problems(values, "fleet") == ([says] if says else [])
