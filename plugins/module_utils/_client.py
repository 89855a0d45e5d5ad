# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Connection to the Kubernetes API for the modules of this collection.

kubernetes.core's auth options, doc fragment and client are reused, so users keep their option
names, ``K8S_AUTH_*`` variables and ``module_defaults``.  On top of its client this file offers a
few typed calls that return plain dicts (the JSON the server sent, camelCase) and translate API
errors into messages a person can act on: 403 names the verb, the resource, the namespace and the
RBAC the module needs; 404 names the missing object; connection errors name the server.

Requests go straight to the resource paths (no discovery lookups per call) through the dynamic
client's ``request``, which is stable across the kubernetes client versions kubernetes.core supports.
"""

from __future__ import annotations

import copy
import json
import typing as t
from collections.abc import Callable

from ansible_collections.kubeops.daemonset.plugins.module_utils import _history
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule

try:
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error
except ImportError:  # AnsibleK8SModule reports the missing library with missing_required_lib
    ApiException = Urllib3Error = type("Missing", (Exception,), {})

Obj = dict[str, t.Any]

# The options naming the DaemonSet, which every module has (documented by the kubeops.daemonset.daemonset fragment).
DAEMONSET_ARG_SPEC: Obj = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str", "default": "default"},
}

# RBAC each module needs, as Role rules (namespaced: a Role in the DaemonSet's namespace is enough).
# "optional" rules add detail (revision, blockers); without them the module still works and says so.
RBAC_RULES: dict[str, dict[str, list[Obj]]] = {
    "ds_rollout_wait": {
        "required": [{"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "list", "watch"]}],
        "optional": [
            {"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["list"]},
        ],
    },
    "ds_history": {
        "required": [
            {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get"]},
            {"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": ["list"]},
        ],
        "optional": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
    },
    "ds_undo": {
        "required": [
            {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "patch"]},
            {"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": ["list"]},
        ],
        "optional": [
            {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["list"]},
        ],
    },
    # nodes are cluster-scoped: ds_diagnose needs a ClusterRole (pods of all namespaces, node leases).
    "ds_diagnose": {
        "required": [
            {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list"]},
        ],
        "optional": [
            {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
            {"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": ["list"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
            {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["patch"]},
        ],
    },
    "ds_batch_rollout": {
        "required": [
            {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "delete"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
        ],
        "optional": [],
    },
}

# resource -> (API path prefix, namespaced)
_RESOURCES = {
    "daemonsets": ("/apis/apps/v1", True),
    "controllerrevisions": ("/apis/apps/v1", True),
    "pods": ("/api/v1", True),
    "events": ("/api/v1", True),
    "nodes": ("/api/v1", False),
    "leases": ("/apis/coordination.k8s.io/v1", True),
}


class K8sError(Exception):
    """An API call failed; ``str()`` is a message for the user, ``status`` the HTTP status (or None)."""

    def __init__(self, msg: str, status: int | None = None) -> None:
        super().__init__(msg)
        self.status = status


def build_module(argument_spec: Obj, **kwargs: t.Any) -> AnsibleK8SModule:
    """The module with kubernetes.core's auth options merged in; check mode supported unless told otherwise."""
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(argument_spec)
    kwargs.setdefault("supports_check_mode", True)
    return AnsibleK8SModule(argument_spec=spec, **kwargs)


def describe_rules(rules: list[Obj]) -> str:
    """``get, list, watch on apps/daemonsets; list on pods`` - a Role's rules in one line."""
    parts = []
    for rule in rules:
        group = rule["apiGroups"][0]
        resources = ", ".join(f"{group}/{r}" if group else r for r in rule["resources"])
        parts.append(f"{', '.join(rule['verbs'])} on {resources}")
    return "; ".join(parts)


def selector_string(selector: Obj | None) -> str:
    """A LabelSelector (matchLabels + matchExpressions) as the API's labelSelector query string.

    kubernetes.core's k8s_rollback joins only the keys, which matches any value; this keeps values and
    operators. An empty selector is ``""`` (everything); None raises (a DaemonSet always has one).
    """
    if selector is None:
        raise ValueError("the object has no label selector")
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr["key"], expr["operator"], ",".join(expr.get("values") or [])
        terms.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }[operator]
        )
    return ",".join(terms)


def _server_message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


class Api:
    """Typed calls returning plain dicts; every failure is raised as K8sError with a clear message."""

    def __init__(self, dynamic_client: t.Any, module_name: str = "", host: str = "") -> None:
        self._client = dynamic_client
        self.module_name = module_name
        self.host = host
        self.calls = 0  # requests sent, for modules that report how many calls they made
        self.server_date: str | None = None  # Date header of the last response: the API server's clock

    # --- plumbing ----------------------------------------------------------------------------

    def _path(self, resource: str, namespace: str | None, name: str | None = None) -> str:
        """Namespaced resources with namespace None: across all namespaces; ``pods/eviction`` style subresources."""
        resource, _sep, subresource = resource.partition("/")
        prefix, namespaced = _RESOURCES[resource]
        path = f"{prefix}/namespaces/{namespace}/{resource}" if namespaced and namespace else f"{prefix}/{resource}"
        path = f"{path}/{name}" if name else path
        return f"{path}/{subresource}" if subresource else path

    def _error(self, exc: Exception, verb: str, resource: str, namespace: str | None, name: str | None) -> K8sError:
        prefix, namespaced = _RESOURCES[resource.partition("/")[0]]
        group = prefix.split("/")[2] + "/" if prefix.startswith("/apis/") else ""
        where = f' in namespace "{namespace}"' if namespace and namespaced else ""
        if not isinstance(exc, ApiException):
            return K8sError(f"cannot reach the Kubernetes API at {self.host}: {getattr(exc, 'reason', None) or exc}")
        server = _server_message(exc)
        if exc.status == 403:
            needs = RBAC_RULES.get(self.module_name, {}).get("required")
            hint = f" {self.module_name} needs: {describe_rules(needs)}." if needs else ""
            return K8sError(
                f"forbidden: cannot {verb} {group}{resource}{where}: the credentials lack the '{verb}' verb "
                f"on {group}{resource}.{hint} Server said: {server}",
                403,
            )
        if exc.status == 401:
            return K8sError(f"unauthorized: the API server rejected the credentials ({server})", 401)
        if exc.status == 404 and resource == "daemonsets" and name:
            return K8sError(f"DaemonSet {namespace}/{name} not found", 404)
        target = f"{group}{resource}/{name}" if name else f"{group}{resource}"
        return K8sError(f"{verb} {target}{where} failed ({exc.status}): {server}", exc.status)

    def _request(self, method: str, verb: str, resource: str, namespace: str | None, name: str | None, **params):
        self.calls += 1
        try:
            response = self._client.request(method, self._path(resource, namespace, name), serialize=False, **params)
        except (ApiException, Urllib3Error, OSError) as exc:
            raise self._error(exc, verb, resource, namespace, name) from exc
        self.server_date = (getattr(response, "headers", None) or {}).get("Date") or self.server_date
        return response

    def _json(self, method: str, verb: str, resource: str, namespace: str | None, name: str | None, **params) -> Obj:
        response = self._request(method, verb, resource, namespace, name, **params)
        return json.loads(response.data)

    def list_objects(
        self, resource: str, namespace: str | None, label_selector: str | None = None, field_selector: str | None = None
    ) -> Obj:
        """The List object (``items`` and ``metadata.resourceVersion``)."""
        return self._json(
            "get", "list", resource, namespace, None, label_selector=label_selector, field_selector=field_selector
        )

    # --- typed helpers -----------------------------------------------------------------------

    def get_daemonset(self, namespace: str, name: str) -> Obj | None:
        """The DaemonSet, or None when it does not exist."""
        try:
            return self._json("get", "get", "daemonsets", namespace, name)
        except K8sError as exc:
            if exc.status == 404:
                return None
            raise

    def require_daemonset(self, namespace: str, name: str) -> Obj:
        """The DaemonSet; when missing, K8sError (404) naming the DaemonSets the namespace has (if listable)."""
        daemonset = self.get_daemonset(namespace, name)
        if daemonset is not None:
            return daemonset
        try:
            names = sorted(item["metadata"]["name"] for item in self.list_objects("daemonsets", namespace)["items"])
        except K8sError:  # no list permission: the plain message must do
            raise K8sError(f"DaemonSet {namespace}/{name} not found", 404) from None
        exists = f"DaemonSets there: {', '.join(names)}" if names else "there is no DaemonSet in that namespace"
        raise K8sError(f"DaemonSet {namespace}/{name} not found; {exists}", 404)

    def list_controller_revisions(self, namespace: str, label_selector: str) -> list[Obj]:
        return self.list_objects("controllerrevisions", namespace, label_selector)["items"]

    def owned_revisions(self, daemonset: Obj) -> list[Obj]:
        """The DaemonSet's ControllerRevisions as kubectl finds them (its selector, then its owner UID)."""
        namespace = daemonset["metadata"]["namespace"]
        listed = self.list_controller_revisions(namespace, selector_string(daemonset["spec"]["selector"]))
        return _history.owned_revisions(daemonset, listed)

    def list_pods(
        self, namespace: str, label_selector: str | None = None, field_selector: str | None = None
    ) -> list[Obj]:
        return self.list_objects("pods", namespace, label_selector, field_selector)["items"]

    def list_nodes(self, label_selector: str | None = None) -> list[Obj]:
        return self.list_objects("nodes", None, label_selector)["items"]

    def list_events(self, namespace: str, field_selector: str | None = None) -> list[Obj]:
        return self.list_objects("events", namespace, field_selector=field_selector)["items"]

    def list_leases(self, namespace: str = "kube-node-lease") -> list[Obj]:
        return self.list_objects("leases", namespace)["items"]

    def evict_pod(self, namespace: str, name: str, dry_run: bool = False) -> None:
        """POST a policy/v1 Eviction: the API server honours PodDisruptionBudgets and answers 429 when one
        forbids it (K8sError with status 429 and the server's message)."""
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
            **({"deleteOptions": {"dryRun": ["All"]}} if dry_run else {}),
        }
        self._request("post", "create", "pods/eviction", namespace, name, body=body)

    def patch_daemonset(
        self,
        namespace: str,
        name: str,
        body: Obj,
        dry_run: bool = False,
        content_type: str = "application/strategic-merge-patch+json",
    ) -> Obj:
        """Patch (strategic merge by default); ``dry_run`` asks the server for ``dryRun=All``."""
        return self._json(
            "patch",
            "patch",
            "daemonsets",
            namespace,
            name,
            body=body,
            content_type=content_type,
            dry_run="All" if dry_run else None,
        )

    def delete_pod(self, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete a pod (graceful, as kubectl does); with UID only that incarnation, so a replacement that took
        the name meanwhile is left alone. False when the pod (or that incarnation) is already gone."""
        body = {"preconditions": {"uid": uid}} if uid else None
        try:
            self._request("delete", "delete", "pods", namespace, name, body=body)
        except K8sError as exc:
            if exc.status in (404, 409):  # gone, or the name now belongs to another pod (uid precondition)
                return False
            raise
        return True

    def watch(
        self, resource: str, namespace: str, name: str, resource_version: str, timeout_seconds: int
    ) -> t.Iterator[Obj]:
        """Watch events (``{"type", "object"}``) of one object from ``resource_version``.

        The server ends the stream after ``timeout_seconds``; the client gives up reading a little later
        so a dead connection cannot hang the caller. Raises K8sError on HTTP and connection errors;
        ``ERROR`` events (410 Gone ...) are yielded as they come, for the caller to re-list.
        """
        response = self._request(
            "get",
            "watch",
            resource,
            namespace,
            None,
            watch=True,
            field_selector=f"metadata.name={name}",
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=max(1, int(timeout_seconds)),
            _request_timeout=(10, timeout_seconds + 10),
        )
        try:
            buffer = b""
            for chunk in response.stream(amt=None, decode_content=False):
                buffer += chunk.encode() if isinstance(chunk, str) else chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except (Urllib3Error, OSError) as exc:
            raise self._error(exc, "watch", resource, namespace, None) from exc
        finally:
            response.release_conn()


def api_from_module(module: AnsibleK8SModule, module_name: str) -> Api:
    """The Api for the module's connection options (kubeconfig, host, api_key, K8S_AUTH_* ...)."""
    try:
        client = get_api_client(module=module)
    except Exception as exc:  # config errors, unreachable server during kubernetes.core's discovery
        # urllib3's MaxRetryError carries the useful part (refused, TLS, DNS) in .reason
        raise K8sError(f"cannot connect to the Kubernetes API: {getattr(exc, 'reason', None) or exc}") from exc
    return Api(client.client, module_name, getattr(client.configuration, "host", ""))


def _message(exc: Exception, module: AnsibleK8SModule) -> Obj:
    """K8sError messages name the object already; other errors (the pure helpers') get the DaemonSet in front."""
    if isinstance(exc, K8sError):
        return {"msg": str(exc)}
    return {"msg": f"DaemonSet {module.params['namespace']}/{module.params['name']}: {exc}"}


def run_module(
    module: AnsibleK8SModule,
    module_name: str,
    body: Callable[[AnsibleK8SModule, Api], Obj],
    errors: tuple[type[Exception], ...] = (),
    failure: Callable[[Exception], Obj] | None = None,
) -> None:
    """Connect, run BODY and exit with its result; a result with ``failed: true`` fails the task with it.

    K8sError and ERRORS fail the task with ``failure(exc)``, by default the error's message (see _message).
    """
    try:
        result = body(module, api_from_module(module, module_name))
    except (K8sError, *errors) as exc:
        module.fail_json(**(failure(exc) if failure else _message(exc, module)))
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
