# SPDX-License-Identifier: GPL-3.0-or-later
"""Every int-or-percent option of every module takes a number that arrives as text (ansible-core before 2.19
renders ``"{{ 1 }}"`` as ``"1"``; AWX surveys send text) and gives the API an int, keeping ``"10%"`` as it is.

Options are validated as the controller-side action does it (ArgumentSpecValidator over the module's full spec),
then go through the module's own ``check``.
"""

from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.kubeops.daemonset.plugins.module_utils._batch import parse_batches
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops import apply
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import full_spec
from ansible_collections.kubeops.daemonset.plugins.modules import (
    ds_apply,
    ds_batch_rollout,
    ds_restart,
    ds_rollout_wait,
    ds_undo,
    ds_update,
)

DEFINITION = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "agent"},
    "spec": {
        "selector": {"matchLabels": {"app": "agent"}},
        "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "a"}]}},
    },
}
REQUIRED = {
    ds_apply: {"definition": DEFINITION},
    ds_batch_rollout: {"name": "agent", "images": {"a": "a:2"}},
    ds_restart: {"name": "agent"},
    ds_rollout_wait: {"name": "agent"},
    ds_undo: {"name": "agent"},
    ds_update: {"name": "agent", "images": {"a": "a:2"}},
}


def checked(module, **args) -> dict:
    """The options as the module's run gets them."""
    validation = ArgumentSpecValidator(full_spec(module.ARGUMENT_SPEC), **getattr(module, "SPEC_RULES", {})).validate(
        {**REQUIRED[module], **args}
    )
    assert not validation.error_messages
    params = validation.validated_parameters
    module.check(params)
    return params


@pytest.mark.parametrize("module", list(REQUIRED), ids=lambda module: module.__name__.rsplit(".", 1)[-1])
@pytest.mark.parametrize(("budget", "expected"), [("2", 2), (" 3 ", 3), (2, 2), ("10%", "10%")])
def test_unhealthy_node_budget(module, budget, expected) -> None:
    assert checked(module, unhealthy_node_budget=budget)["unhealthy_node_budget"] == expected


@pytest.mark.parametrize(
    ("unavailable", "surge", "expected"),
    [("1", "0", {"maxUnavailable": 1, "maxSurge": 0}), ("0", "1", {"maxUnavailable": 0, "maxSurge": 1}),
     ("10%", "25%", {"maxUnavailable": "10%", "maxSurge": "25%"}), (2, 0, {"maxUnavailable": 2, "maxSurge": 0})],
)  # fmt: skip
def test_ds_apply_strategy_reaches_the_api_as_int_or_percent(unavailable, surge, expected) -> None:
    params = checked(ds_apply, strategy={"max_unavailable": unavailable, "max_surge": surge, "min_ready_seconds": "5"})
    spec = apply._definition(params)["spec"]
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": expected}
    assert spec["minReadySeconds"] == 5


def test_ds_batch_rollout_batches_of_digits_are_counts() -> None:
    params = checked(ds_batch_rollout, batches=["1", "10%", "3", "100%"])
    assert [(spec["kind"], spec["value"]) for spec in parse_batches(params["batches"])] == [
        ("count", 1), ("percent", 10), ("count", 3), ("percent", 100)
    ]  # fmt: skip
