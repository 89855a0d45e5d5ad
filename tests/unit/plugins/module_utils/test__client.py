# SPDX-License-Identifier: GPL-3.0-or-later
"""_client's error translation and request timeouts, _objects' label selector strings, _rbac's descriptions."""

from __future__ import annotations

import time

import pytest
from ansible_collections.kubeops.daemonset.plugins.module_utils import _client, _objects, _rbac, _transport


class NoTransport:
    host = "https://k8s"


def test_selector_query_keeps_values_and_operators() -> None:
    selector = {
        "matchLabels": {"name": "fluentd", "app": "logs"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "managed", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert _objects.selector_query(selector) == ("app=logs,name=fluentd,tier in (a,b),env notin (dev),managed,!legacy")


def test_selector_query_empty_and_missing() -> None:
    assert _objects.selector_query({}) == ""
    with pytest.raises(ValueError):
        _objects.selector_query(None)


def test_forbidden_names_verb_resource_namespace_and_needed_rbac() -> None:
    api = _client.Api(NoTransport(), "ds_rollout_wait")
    error = api._error(403, 'daemonsets.apps is forbidden: User "x"', "watch", "daemonsets", "prod", None)
    assert error.status == 403 and not error.transient
    message = str(error)
    assert message.startswith('forbidden: cannot watch apps/daemonsets in namespace "prod"')
    assert "ds_rollout_wait needs: list, watch on apps/daemonsets." in message
    assert 'Server said: daemonsets.apps is forbidden: User "x"' in message


def test_not_found_and_connection_errors() -> None:
    api = _client.Api(NoTransport(), "ds_rollout_wait")
    assert str(api._error(404, "nope", "get", "daemonsets", "ns", "ds")) == "DaemonSet ns/ds not found"
    refused = api._no_answer(_transport.TransportError("connection", "Connection refused"))
    assert str(refused).startswith("cannot reach the Kubernetes API at https://k8s: Connection refused (check host")
    assert refused.transient
    untrusted = api._no_answer(_transport.TransportError("tls", "the server's certificate is not trusted"))
    assert not untrusted.transient and "check ca_cert" in str(untrusted)
    assert api._error(503, "overloaded", "list", "pods", "ns", None).transient


def test_requests_give_up_by_the_deadline() -> None:
    api = _client.Api(NoTransport(), "ds_rollout_wait")
    assert api.timeout() == _client.REQUEST_TIMEOUT
    api.deadline = time.monotonic() + 2
    assert api.timeout() <= 2 + _client.DEADLINE_MARGIN
    api.deadline = time.monotonic() - 60
    assert api.timeout() == 1.0


def test_rbac_rules_describe_every_module() -> None:
    for module in ("ds_rollout_wait", "ds_history", "ds_undo"):
        assert _rbac.describe_rules(_rbac.RBAC_RULES[module]["required"])
    assert _rbac.describe_rules([{"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["list"]}]) == (
        "list on pods, events"
    )


class RecordingTransport:
    host = "https://k8s"

    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def request(self, method, path, query, body, content_type, timeout, accept=None) -> _transport.Response:
        self.sent.append((method, path, query, body))
        return _transport.Response(200, {}, b"{}")


def test_a_dry_run_delete_says_so_in_its_body() -> None:
    """With a DeleteOptions body the API server ignores the dryRun query parameter: it deletes for real."""
    transport = RecordingTransport()
    api = _client.Api(transport, "ds_apply")
    assert api.delete("daemonsets", "ns", "ds", dry_run=True, propagation="Background")
    method, path, _query, body = transport.sent[0]
    assert (method, path) == ("DELETE", "/apis/apps/v1/namespaces/ns/daemonsets/ds")
    assert body == {"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"], "propagationPolicy": "Background"}
    api.delete("pods", "ns", "p", {"uid": "u"})
    assert "dryRun" not in transport.sent[1][3]
