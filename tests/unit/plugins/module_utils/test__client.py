# SPDX-License-Identifier: GPL-3.0-or-later
"""_client's pure parts: label selector strings, RBAC descriptions, error translation."""

from __future__ import annotations

import json

import pytest
from ansible_collections.kubeops.daemonset.plugins.module_utils import _client
from kubernetes.client.rest import ApiException


def test_selector_string_keeps_values_and_operators() -> None:
    selector = {
        "matchLabels": {"name": "fluentd", "app": "logs"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "managed", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert _client.selector_string(selector) == ("app=logs,name=fluentd,tier in (a,b),env notin (dev),managed,!legacy")


def test_selector_string_empty_and_missing() -> None:
    assert _client.selector_string({}) == ""
    with pytest.raises(ValueError):
        _client.selector_string(None)


def api_error(status: int, message: str) -> ApiException:
    error = ApiException(status=status, reason="Reason")
    error.body = json.dumps({"kind": "Status", "message": message})
    return error


def test_forbidden_names_verb_resource_namespace_and_needed_rbac() -> None:
    api = _client.Api(None, "ds_rollout_wait", "https://k8s")
    error = api._error(api_error(403, 'daemonsets.apps is forbidden: User "x"'), "watch", "daemonsets", "prod", None)
    assert error.status == 403
    message = str(error)
    assert message.startswith('forbidden: cannot watch apps/daemonsets in namespace "prod"')
    assert "ds_rollout_wait needs: get, list, watch on apps/daemonsets" in message
    assert 'Server said: daemonsets.apps is forbidden: User "x"' in message


def test_not_found_and_connection_errors() -> None:
    api = _client.Api(None, "ds_rollout_wait", "https://k8s")
    assert str(api._error(api_error(404, "nope"), "get", "daemonsets", "ns", "ds")) == "DaemonSet ns/ds not found"
    assert str(api._error(ConnectionRefusedError("refused"), "list", "pods", "ns", None)) == (
        "cannot reach the Kubernetes API at https://k8s: refused"
    )


def test_rbac_rules_describe_every_module() -> None:
    for module in ("ds_rollout_wait", "ds_history", "ds_undo"):
        assert _client.describe_rules(_client.RBAC_RULES[module]["required"])
    assert _client.describe_rules([{"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["list"]}]) == (
        "list on pods, events"
    )
