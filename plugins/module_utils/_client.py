# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Typed calls to the Kubernetes API returning plain dicts (the JSON the server sent, camelCase), with failures
translated into messages a person can act on: 403 names the verb, the resource, the namespace and the RBAC the
module needs; 404 names the missing object; connection and TLS errors name the server.

Every request has a timeout of its own, shortened to the caller's deadline (``Api.deadline``), so a frozen API
server cannot hold a task past its timeout. Requests go straight to the resource paths (no discovery), through
``_transport.HttpClient`` or, for configurations only the kubernetes client supports, through kubernetes.core's.

Floor 2 (I/O).
"""

from __future__ import annotations

import json
import time
import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils import _transport
from ansible_collections.kubeops.daemonset.plugins.module_utils._rbac import needed_by

Obj = dict[str, t.Any]

# Seconds one request may take when the caller has no nearer deadline; a deadline adds this margin at most.
REQUEST_TIMEOUT = 30.0
DEADLINE_MARGIN = 5.0
# A watch request lasts at most this long before it is resumed (servers cap it anyway).
MAX_WATCH_SECONDS = 300
# kubectl get's table, with the plain list as the fallback for servers (or proxies) without tables
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"

# resource -> (API path prefix, namespaced)
_RESOURCES = {
    "daemonsets": ("/apis/apps/v1", True),
    "controllerrevisions": ("/apis/apps/v1", True),
    "pods": ("/api/v1", True),
    "events": ("/api/v1", True),
    "nodes": ("/api/v1", False),
    "configmaps": ("/api/v1", True),
    "secrets": ("/api/v1", True),
    "leases": ("/apis/coordination.k8s.io/v1", True),
}
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class K8sError(Exception):
    """An API call failed; ``str()`` is a message for the user, ``status`` the HTTP status (None: no answer).

    ``transient`` errors (no answer, 429, 5xx) may succeed when retried; the others (403, 404, an untrusted
    certificate ...) will not."""

    def __init__(self, msg: str, status: int | None = None, transient: bool = False) -> None:
        super().__init__(msg)
        self.status = status
        self.transient = transient or status == 429 or (status or 0) >= 500


class Interrupted(K8sError):
    """The run must stop now (the controller that started it is gone)."""


def _server_message(data: bytes, reason: str) -> str:
    try:
        return json.loads(data).get("message") or reason
    except (TypeError, ValueError, AttributeError):
        return reason


class Api:
    """Typed calls over a transport (``_transport.HttpClient`` or ``KubernetesClientTransport``)."""

    def __init__(self, transport: t.Any, module_name: str = "", stop: t.Callable[[], str | None] | None = None):
        self._transport = transport
        self.module_name = module_name
        self.host = transport.host
        self.calls = 0  # requests sent, for modules that report how many calls they made
        self.server_date: str | None = None  # Date header of the last response: the API server's clock
        self.deadline: float | None = None  # time.monotonic() by which requests must give up (plus the margin)
        self._stop = stop

    # --- plumbing ----------------------------------------------------------------------------

    @staticmethod
    def path(resource: str, namespace: str | None, name: str | None = None) -> str:
        """Namespaced resources with namespace None: across all namespaces; ``pods/eviction`` style subresources."""
        resource, _sep, subresource = resource.partition("/")
        prefix, namespaced = _RESOURCES[resource]
        path = f"{prefix}/namespaces/{namespace}/{resource}" if namespaced and namespace else f"{prefix}/{resource}"
        path = f"{path}/{name}" if name else path
        return f"{path}/{subresource}" if subresource else path

    def timeout(self, wanted: float = REQUEST_TIMEOUT) -> float:
        """Seconds the next request may take: WANTED, cut to the deadline plus the margin (at least 1)."""
        if self.deadline is None:
            return wanted
        return max(1.0, min(wanted, self.deadline - time.monotonic() + DEADLINE_MARGIN))

    def _error(self, status: int | None, detail: str, verb: str, resource: str, namespace: str | None,
               name: str | None) -> K8sError:  # fmt: skip
        prefix, namespaced = _RESOURCES[resource.partition("/")[0]]
        group = prefix.split("/")[2] + "/" if prefix.startswith("/apis/") else ""
        where = f' in namespace "{namespace}"' if namespace and namespaced else ""
        if status == 403:
            return K8sError(
                f"forbidden: cannot {verb} {group}{resource}{where}: the credentials lack the '{verb}' verb "
                f"on {group}{resource}.{needed_by(self.module_name)} Server said: {detail}",
                403,
            )
        if status == 401:
            return K8sError(f"unauthorized: the API server at {self.host} rejected the credentials ({detail})", 401)
        if status == 404 and resource == "daemonsets" and name:
            return K8sError(f"DaemonSet {namespace}/{name} not found", 404)
        target = f"{group}{resource}/{name}" if name else f"{group}{resource}"
        return K8sError(f"{verb} {target}{where} failed ({status}): {detail}", status)

    def _check_stop(self) -> None:
        reason = self._stop() if self._stop else None
        if reason:
            raise Interrupted(reason)

    def _request(self, method: str, verb: str, resource: str, namespace: str | None, name: str | None = None,
                 query: Obj | None = None, body: t.Any = None, content_type: str | None = None,
                 accept: str | None = None) -> Obj:  # fmt: skip
        self._check_stop()
        self.calls += 1
        try:
            response = self._transport.request(method, self.path(resource, namespace, name), query, body,
                                               content_type, self.timeout(), accept)  # fmt: skip
        except _transport.TransportError as exc:
            raise self._no_answer(exc) from exc
        self.server_date = response.headers.get("date") or self.server_date
        if response.status >= 300:
            raise self._error(response.status, _server_message(response.data, str(response.status)), verb, resource,
                              namespace, name)  # fmt: skip
        return json.loads(response.data) if response.data else {}

    def _no_answer(self, exc: _transport.TransportError) -> K8sError:
        if exc.kind == "tls":
            return K8sError(f"cannot connect to the Kubernetes API at {self.host}: {exc} (check ca_cert / the "
                            "kubeconfig's certificate-authority, or validate_certs)")  # fmt: skip
        return K8sError(f"cannot reach the Kubernetes API at {self.host}: {exc}", None, transient=True)

    # --- calls -------------------------------------------------------------------------------

    def list_objects(self, resource: str, namespace: str | None, label_selector: str | None = None,
                     field_selector: str | None = None) -> Obj:  # fmt: skip
        """The List object (``items`` and ``metadata.resourceVersion``)."""
        query = {"labelSelector": label_selector or None, "fieldSelector": field_selector}
        return self._request("GET", "list", resource, namespace, query=query)

    def list_table(self, resource: str, namespace: str | None) -> Obj:
        """The list as the API server prints it for kubectl get (a Table of cells, no objects): a few hundred bytes
        a row where a node object takes kilobytes. A server without tables answers with the plain list."""
        return self._request("GET", "list", resource, namespace, query={"includeObject": "None"}, accept=TABLE)

    def list_items(self, resource: str, namespace: str | None, label_selector: str | None = None,
                   field_selector: str | None = None) -> list[Obj]:  # fmt: skip
        """The listed objects themselves."""
        return self.list_objects(resource, namespace, label_selector, field_selector)["items"]

    def get(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self._request("GET", "get", resource, namespace, name)
        except K8sError as exc:
            if exc.status == 404:
                return None
            raise

    def require_daemonset(self, namespace: str, name: str) -> Obj:
        """The DaemonSet; when missing, K8sError (404) naming the DaemonSets the namespace has (if listable)."""
        daemonset = self.get("daemonsets", namespace, name)
        if daemonset is not None:
            return daemonset
        try:
            names = sorted(item["metadata"]["name"] for item in self.list_items("daemonsets", namespace))
        except K8sError as exc:  # no list permission: the plain message must do
            if exc.transient:
                raise
            raise K8sError(f"DaemonSet {namespace}/{name} not found", 404) from None
        exists = f"DaemonSets there: {', '.join(names)}" if names else "there is no DaemonSet in that namespace"
        raise K8sError(f"DaemonSet {namespace}/{name} not found; {exists}", 404)

    def optional(self, call: t.Callable[[], t.Any], notes: list[str], what: str = "",
                 best_effort: bool = False) -> t.Any:  # fmt: skip
        """CALL's value, or None when the credentials may not make it (403): reads that only add detail go on
        without it and say so in NOTES (``WHAT: error``). Every other error is raised, unless BEST_EFFORT (the
        report of a failure that already happened: its reads must not replace that failure with their own)."""
        try:
            return call()
        except K8sError as exc:
            if exc.status != 403 and not best_effort:
                raise
            notes.append(f"{what}: {exc}" if what else str(exc))
            return None

    def create(self, resource: str, namespace: str, body: Obj, dry_run: bool = False) -> Obj:
        return self._request("POST", "create", resource, namespace, query={"dryRun": "All" if dry_run else None},
                             body=body, content_type="application/json")  # fmt: skip

    def replace(self, resource: str, namespace: str, name: str, body: Obj, dry_run: bool = False) -> Obj:
        """PUT the whole object; its metadata.resourceVersion makes it fail with 409 if it changed meanwhile."""
        return self._request("PUT", "update", resource, namespace, name, {"dryRun": "All" if dry_run else None}, body,
                             "application/json")  # fmt: skip

    def patch(self, resource: str, namespace: str, name: str, body: Obj, dry_run: bool = False,
              content_type: str = STRATEGIC_MERGE, field_manager: str | None = None,
              force: bool | None = None) -> Obj:  # fmt: skip
        """Patch (strategic merge by default); DRY_RUN asks the server for ``dryRun=All``."""
        query = {"dryRun": "All" if dry_run else None, "fieldManager": field_manager, "force": force}
        return self._request("PATCH", "patch", resource, namespace, name, query, body, content_type)

    def delete(self, resource: str, namespace: str, name: str, preconditions: Obj | None = None,
               dry_run: bool = False, propagation: str | None = None) -> bool:  # fmt: skip
        """Delete (graceful, as kubectl does); False when it (or, with a UID precondition, that incarnation)
        is already gone."""
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if preconditions:
            body["preconditions"] = preconditions
        if propagation:
            body["propagationPolicy"] = propagation
        try:
            self._request("DELETE", "delete", resource, namespace, name, {"dryRun": "All" if dry_run else None}, body,
                          "application/json")  # fmt: skip
        except K8sError as exc:
            if exc.status in (404, 409):  # gone, or a new pod holds the name (UID precondition failed)
                return False
            raise
        return True

    def evict_pod(self, namespace: str, name: str, dry_run: bool = False) -> None:
        """POST a policy/v1 Eviction: the API server honours PodDisruptionBudgets and answers 429 when one
        forbids it (K8sError with status 429 and the server's message)."""
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
            **({"deleteOptions": {"dryRun": ["All"]}} if dry_run else {}),
        }
        self._request("POST", "create", "pods/eviction", namespace, name, body=body, content_type="application/json")

    def watch(self, resource: str, namespace: str, name: str, resource_version: str,
              timeout_seconds: float) -> t.Iterator[Obj]:  # fmt: skip
        """Watch events (``{"type", "object"}``) of one object from RESOURCE_VERSION.

        The server ends the stream after TIMEOUT_SECONDS; each read gives up a little later, so a dead or
        frozen server cannot hang the caller. ``ERROR`` events (410 Gone ...) are yielded for the caller to
        re-list; HTTP and connection failures are raised as K8sError.
        """
        self._check_stop()
        self.calls += 1
        seconds = max(1, int(min(timeout_seconds, MAX_WATCH_SECONDS)))
        query = {"watch": True, "fieldSelector": f"metadata.name={name}", "resourceVersion": resource_version,
                 "allowWatchBookmarks": True, "timeoutSeconds": seconds}  # fmt: skip
        try:
            for line in self._transport.stream(self.path(resource, namespace), query, self.timeout(seconds + 5)):
                if isinstance(line, _transport.Response):
                    detail = _server_message(line.data, str(line.status))
                    raise self._error(line.status, detail, "watch", resource, namespace, None)
                self._check_stop()
                yield json.loads(line)
        except _transport.TransportError as exc:
            raise self._no_answer(exc) from exc

    def close(self) -> None:
        self._transport.close()


class ClientMissing(K8sError):
    """The configuration needs the kubernetes client, and this Python has none."""


class KubernetesClientTransport:
    """kubernetes.core's API client behind the same two calls as HttpClient: for the configurations only the
    kubernetes client supports (see ``_transport.NeedsKubernetesClient``)."""

    def __init__(self, options: Obj, why: str) -> None:
        # imported here: loading the kubernetes client costs about half a second, and most tasks need none of it
        try:
            import kubernetes  # noqa: F401
            from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
        except ImportError as exc:
            raise ClientMissing(f"{why} needs the kubernetes Python package (pip install kubernetes): {exc}") from None
        try:
            client = get_api_client(**options)
        except Exception as exc:  # ConfigException, missing library ...: the message says which
            reason = getattr(exc, "reason", None) or exc
            raise _transport.ConfigError(f"cannot use the connection options: {reason}") from exc
        self._client = client.client
        self.host = getattr(client.configuration, "host", "")

    def _call(self, method: str, path: str, query: Obj | None, timeout: float, **kwargs: t.Any) -> t.Any:
        from kubernetes.client.rest import ApiException  # loaded by __init__ already
        from urllib3.exceptions import HTTPError

        params = {_snake(key): value for key, value in (query or {}).items() if value is not None}
        try:
            return self._client.request(method.lower(), path, serialize=False, _request_timeout=timeout, **params,
                                        **kwargs)  # fmt: skip
        except ApiException as exc:
            return _transport.Response(exc.status, {k.lower(): v for k, v in (exc.headers or {}).items()},
                                       exc.body.encode() if isinstance(exc.body, str) else exc.body or b"")  # fmt: skip
        except (HTTPError, OSError) as exc:
            reason = str(getattr(exc, "reason", None) or exc)
            kind = "tls" if "CERTIFICATE_VERIFY_FAILED" in reason or "SSL" in type(exc).__name__ else "connection"
            raise _transport.TransportError(kind, reason) from exc

    def request(self, method: str, path: str, query: Obj | None, body: t.Any, content_type: str | None,
                timeout: float, accept: str | None = None) -> _transport.Response:  # fmt: skip
        headers = {"header_params": {"Accept": accept}} if accept else {}
        response = self._call(method, path, query, timeout, body=body, content_type=content_type, **headers)
        if isinstance(response, _transport.Response):
            return response
        return _transport.Response(response.status, {k.lower(): v for k, v in response.headers.items()}, response.data)

    def stream(self, path: str, query: Obj, timeout: float) -> t.Iterator[t.Any]:
        response = self._call("GET", path, query, timeout)
        if isinstance(response, _transport.Response):
            yield response
            return
        buffer = b""
        try:
            for chunk in response.stream(amt=None, decode_content=False):
                buffer += chunk.encode() if isinstance(chunk, str) else chunk
                *lines, buffer = buffer.split(b"\n")
                yield from (line for line in lines if line.strip())
        except OSError as exc:
            raise _transport.TransportError("connection", str(exc)) from exc
        finally:
            response.release_conn()

    def close(self) -> None:
        """The kubernetes client pools its connections itself."""


def _snake(key: str) -> str:
    """``labelSelector`` -> ``label_selector``: the kubernetes client's names for query parameters."""
    return "force_conflicts" if key == "force" else "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def connect(params: Obj, module_name: str, environ: t.Mapping[str, str], run_command: _transport.RunCommand | None,
            stop: t.Callable[[], str | None] | None = None) -> Api:  # fmt: skip
    """The Api for kubernetes.core's connection options in PARAMS (and ENVIRON's ``K8S_AUTH_*`` variables);
    RUN_COMMAND runs exec credential plugins.

    Raises K8sError for options or kubeconfigs that cannot be used, naming the file or option.
    """
    options = _transport.connection_options(params, environ)
    try:
        try:
            transport: t.Any = _transport.HttpClient(_transport.resolve(options, environ, run_command))
        except _transport.NeedsKubernetesClient as why:
            transport = KubernetesClientTransport(options, str(why))
    except _transport.ConfigError as exc:
        raise K8sError(f"cannot connect to the Kubernetes API: {exc}") from exc
    return Api(transport, module_name, stop)
