# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How requests reach the API server: kubernetes.core's connection options resolved to one server and its
credentials, and a small HTTPS client for them.

The options, their ``K8S_AUTH_*`` variables and their precedence are kubernetes.core's (a play can share one
``module_defaults`` block with kubernetes.core tasks and reach the same cluster):

1. ``host`` with ``api_key``, ``username`` + ``password`` or ``client_cert`` + ``client_key``: the options alone;
2. else ``kubeconfig`` (a path or a dict) and/or ``context``: that kubeconfig;
3. else the pod's service account (in-cluster), else ``$KUBECONFIG`` or ``~/.kube/config``;

then any option given overrides what the kubeconfig said. The HTTPS client is the Python standard library's, so
a task costs no import of the ``kubernetes`` package (about half a second of CPU each time). What it does not
cover (kubeconfig ``auth-provider`` plugins, proxies, ``persist_config``, several files in ``$KUBECONFIG``)
raises ``NeedsKubernetesClient`` and the caller uses kubernetes.core's client instead, with the same options.

Floor 2 (I/O): reads kubeconfig files, runs exec credential plugins, talks HTTPS.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import os
import socket
import ssl
import tempfile
import typing as t
import urllib.parse

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import FIELD_MANAGER
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import yaml_documents

Obj = dict[str, t.Any]
# Runs a command (ARGS, CWD, ENV) to its end: (exit code, stdout, stderr). A module gives AnsibleModule.run_command.
RunCommand = t.Callable[[list[str], t.Optional[str], dict[str, str]], tuple[int, str, str]]

# kubernetes.core's connection options (their K8S_AUTH_* variable is the upper-cased name).
OPTION_NAMES = (
    "kubeconfig", "context", "host", "api_key", "username", "password", "validate_certs", "ca_cert", "client_cert",
    "client_key", "proxy", "no_proxy", "proxy_headers", "persist_config", "impersonate_user", "impersonate_groups",
)  # fmt: skip
# Other spellings kubernetes.core accepts for the variables.
_ENV_ALIASES = {"validate_certs": "VERIFY_SSL", "ca_cert": "SSL_CA_CERT", "client_cert": "CERT_FILE",
                "client_key": "KEY_FILE"}  # fmt: skip
_BOOLEAN = ("validate_certs", "persist_config")
_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
IN_CLUSTER = "/var/run/secrets/kubernetes.io/serviceaccount"


class ConfigError(Exception):
    """The connection options or the kubeconfig cannot be used; the message names the file or option."""


class NeedsKubernetesClient(Exception):
    """The configuration uses something only the kubernetes client supports (the message says what)."""


@dataclasses.dataclass
class Connection:
    """One API server and how to authenticate to it."""

    server: str
    verify: bool = True
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = None  # PEM
    key_data: bytes | None = None
    authorization: str | None = None  # the Authorization header: "Bearer ..." or "Basic ..."
    tls_server_name: str | None = None
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def connection_options(params: Obj, environ: t.Mapping[str, str]) -> Obj:
    """kubernetes.core's rule for each option: the task's value, else its ``K8S_AUTH_*`` variable."""
    options: Obj = {}
    for name in OPTION_NAMES:
        value = params.get(name)
        if value is None:
            value = environ.get(f"K8S_AUTH_{name.upper()}") or environ.get(f"K8S_AUTH_{_ENV_ALIASES.get(name, '-')}")
            if value is not None and name in _BOOLEAN:
                value = value.lower() not in ("0", "false", "no")
            elif value is not None and name == "impersonate_groups":
                value = [group for group in value.split(",") if group]
        if value not in (None, "", []):
            options[name] = value
    if any(key.startswith("K8S_AUTH_PROXY_HEADERS_") for key in environ):
        options.setdefault("proxy_headers", {"from_environment": True})
    return options


def resolve(options: Obj, environ: t.Mapping[str, str], run_command: RunCommand | None) -> Connection:
    """The connection OPTIONS describe (see ``connection_options``); raises ConfigError or NeedsKubernetesClient."""
    for name in ("proxy", "no_proxy", "proxy_headers"):
        if name in options:
            raise NeedsKubernetesClient(f"the {name} option")
    if options.get("persist_config"):
        raise NeedsKubernetesClient("persist_config")
    if _self_sufficient(options):
        connection = Connection(server=options["host"].rstrip("/"))
    elif "kubeconfig" in options or "context" in options:
        connection = _from_kubeconfig(options, environ, run_command)
    else:
        connection = _in_cluster(environ) or _from_kubeconfig(options, environ, run_command)
    _override(connection, options)
    if any(environ.get(name) for name in _PROXY_VARIABLES):
        raise NeedsKubernetesClient("a proxy from the environment")
    return connection


def _self_sufficient(options: Obj) -> bool:
    return "host" in options and (
        "api_key" in options
        or ("username" in options and "password" in options)
        or ("client_cert" in options and "client_key" in options)
    )


def _override(connection: Connection, options: Obj) -> None:
    """Options given explicitly win over the kubeconfig, as in kubernetes.core."""
    if "host" in options:
        connection.server = options["host"].rstrip("/")
    if "api_key" in options:
        connection.authorization = f"Bearer {options['api_key']}"
    elif "username" in options and "password" in options:
        connection.authorization = _basic(options["username"], options["password"])
    if "validate_certs" in options:
        connection.verify = bool(options["validate_certs"])
    if "ca_cert" in options:
        connection.ca_file, connection.ca_data = options["ca_cert"], None
    if "client_cert" in options:
        connection.cert_file, connection.cert_data = options["client_cert"], None
    if "client_key" in options:
        connection.key_file, connection.key_data = options["client_key"], None
    if "impersonate_user" in options:
        connection.headers.append(("Impersonate-User", options["impersonate_user"]))
    for group in options.get("impersonate_groups") or []:
        connection.headers.append(("Impersonate-Group", group))


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _in_cluster(environ: t.Mapping[str, str]) -> Connection | None:
    """The pod's service account, as the kubernetes client's load_incluster_config finds it."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    token_path = os.path.join(IN_CLUSTER, "token")
    if not host or not port or not os.path.exists(token_path):
        return None
    with open(token_path, encoding="utf-8") as token:
        authorization = f"Bearer {token.read().strip()}"
    host = f"[{host}]" if ":" in host else host
    return Connection(server=f"https://{host}:{port}", ca_file=os.path.join(IN_CLUSTER, "ca.crt"),
                      authorization=authorization)  # fmt: skip


# --- kubeconfig ------------------------------------------------------------------------------


def _load_kubeconfig(options: Obj, environ: t.Mapping[str, str]) -> tuple[Obj, str | None]:
    """(the kubeconfig as a dict, the directory relative paths in it start from)."""
    given = options.get("kubeconfig")
    if isinstance(given, dict):
        return given, None
    path = given or environ.get("KUBECONFIG") or "~/.kube/config"
    if os.pathsep in path.strip(os.pathsep):
        raise NeedsKubernetesClient("several kubeconfig files")
    path = os.path.expanduser(path.strip(os.pathsep))
    where = "kubeconfig option" if given else ("KUBECONFIG" if environ.get("KUBECONFIG") else "default kubeconfig")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the kubeconfig {path} ({where}): {exc.strerror}") from exc
    try:
        documents = yaml_documents(text)
    except ValueError as exc:
        raise ConfigError(f"the kubeconfig {path} ({where}) is not valid YAML: {exc}") from exc
    config = documents[0] if len(documents) == 1 else None
    if not isinstance(config, dict):
        raise ConfigError(f"the kubeconfig {path} ({where}) holds no kubeconfig (expected clusters, users, contexts)")
    return config, os.path.dirname(os.path.abspath(path))


def _named(config: Obj, kind: str, name: str | None, origin: str) -> Obj:
    for entry in config.get(f"{kind}s") or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(kind) or {}
    known = [e.get("name") for e in config.get(f"{kind}s") or [] if isinstance(e, dict)]
    raise ConfigError(f"{origin}: no {kind} named {name!r} (it has: {', '.join(map(str, known)) or 'none'})")


def _from_kubeconfig(options: Obj, environ: t.Mapping[str, str], run_command: RunCommand | None) -> Connection:
    config, base = _load_kubeconfig(options, environ)
    origin = f"kubeconfig {options['kubeconfig']}" if isinstance(options.get("kubeconfig"), str) else "kubeconfig"
    context_name = options.get("context") or config.get("current-context")
    if not context_name:
        raise ConfigError(f"{origin}: no current-context set and no context option given")
    context = _named(config, "context", context_name, origin)
    cluster = _named(config, "cluster", context.get("cluster"), origin)
    user = _named(config, "user", context.get("user"), origin) if context.get("user") else {}
    if not cluster.get("server"):
        raise ConfigError(f"{origin}: cluster {context.get('cluster')!r} has no server")
    if "proxy-url" in cluster:
        raise NeedsKubernetesClient("a proxy-url in the kubeconfig")
    connection = Connection(server=str(cluster["server"]).rstrip("/"), tls_server_name=cluster.get("tls-server-name"))
    if "insecure-skip-tls-verify" in cluster:
        connection.verify = not cluster["insecure-skip-tls-verify"]
    connection.ca_file = _path(cluster.get("certificate-authority"), base)
    connection.ca_data = _decoded(cluster.get("certificate-authority-data"), origin).decode() or None
    _credentials(connection, user, cluster, base, origin, lambda spec: _exec_credentials(
        connection, spec, cluster, base, origin, environ, run_command))  # fmt: skip
    return connection


def _path(value: str | None, base: str | None) -> str | None:
    if not value:
        return None
    value = os.path.expanduser(value)
    return value if os.path.isabs(value) or base is None else os.path.join(base, value)


def _decoded(value: str | None, origin: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True) if value else b""
    except ValueError as exc:
        raise ConfigError(f"{origin}: a *-data field is not valid base64") from exc


def _credentials(connection: Connection, user: Obj, cluster: Obj, base: str | None, origin: str,
                 run_exec: t.Callable[[Obj], None]) -> None:  # fmt: skip
    """The kubernetes client's order: auth-provider, token (tokenFile first), exec, username/password; client
    certificates beside any of them."""
    if "auth-provider" in user:
        raise NeedsKubernetesClient(f"the auth-provider {user['auth-provider'].get('name')!r} of the kubeconfig")
    token = user.get("token")
    if user.get("tokenFile"):
        with open(_path(user["tokenFile"], base), encoding="utf-8") as handle:
            token = handle.read().strip()
    if token:
        connection.authorization = f"Bearer {token}"
    elif "exec" in user:
        run_exec(user["exec"])
    elif "username" in user and "password" in user:
        connection.authorization = _basic(user["username"], user["password"])
    connection.cert_file = connection.cert_file or _path(user.get("client-certificate"), base)
    connection.key_file = connection.key_file or _path(user.get("client-key"), base)
    connection.cert_data = connection.cert_data or _decoded(user.get("client-certificate-data"), origin) or None
    connection.key_data = connection.key_data or _decoded(user.get("client-key-data"), origin) or None


def _exec_credentials(connection: Connection, spec: Obj, cluster: Obj, base: str | None, origin: str,
                      environ: t.Mapping[str, str], run_command: RunCommand | None) -> None:  # fmt: skip
    """Run a client-go credential plugin (``users[].user.exec``): its ExecCredential gives a token or a cert."""
    if run_command is None:
        raise ConfigError(f"{origin}: the exec credential plugin {spec.get('command')!r} cannot run here")
    if not spec.get("command") or not spec.get("apiVersion"):
        raise ConfigError(f"{origin}: the exec credential plugin needs command and apiVersion")
    info: Obj = {"apiVersion": spec["apiVersion"], "kind": "ExecCredential", "spec": {"interactive": False}}
    if spec.get("provideClusterInfo"):
        info["spec"]["cluster"] = dict(cluster)
        for extension in cluster.get("extensions") or []:
            if extension.get("name") == "client.authentication.k8s.io/exec":
                info["spec"]["cluster"]["config"] = extension.get("extension")
    env = dict(environ, **{item["name"]: item["value"] for item in spec.get("env") or []})
    env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
    try:
        code, out, err = run_command([spec["command"], *(spec.get("args") or [])], base, env)
    except OSError as exc:
        raise ConfigError(f"{origin}: the exec credential plugin {spec['command']!r} did not run: {exc}") from exc
    if code:
        raise ConfigError(f"{origin}: the exec credential plugin {spec['command']!r} failed ({code}): "
                          f"{err.strip()[-500:]}")  # fmt: skip
    try:
        status = json.loads(out).get("status") or {}
    except ValueError as exc:
        raise ConfigError(
            f"{origin}: the exec credential plugin {spec['command']!r} printed no ExecCredential"
        ) from exc
    if status.get("token"):
        connection.authorization = f"Bearer {status['token']}"
    elif status.get("clientCertificateData") and status.get("clientKeyData"):
        connection.cert_data = status["clientCertificateData"].encode()
        connection.key_data = status["clientKeyData"].encode()
    else:
        raise ConfigError(f"{origin}: the exec credential plugin gave neither a token nor a client certificate")


# --- HTTPS -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[str, str]
    data: bytes


class TransportError(Exception):
    """The request did not get an HTTP answer: ``kind`` is ``tls`` (the server's certificate or ours was refused:
    retrying cannot help), ``timeout`` or ``connection``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def _certifi_bundle() -> str | None:
    """The CA bundle the kubernetes client verifies a server with when no CA is configured."""
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()


def _ssl_context(connection: Connection) -> ssl.SSLContext:
    if not connection.verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    elif connection.ca_file or connection.ca_data:
        context = ssl.create_default_context(cafile=connection.ca_file, cadata=connection.ca_data)
    else:
        context = ssl.create_default_context(cafile=_certifi_bundle())
    cert, key = connection.cert_file, connection.key_file
    if connection.cert_data or connection.key_data:
        with tempfile.TemporaryDirectory(prefix="kubeops-") as folder:  # load_cert_chain reads files only
            cert, key = _write(folder, "tls.crt", connection.cert_data), _write(folder, "tls.key", connection.key_data)
            context.load_cert_chain(cert or connection.cert_file, key or connection.key_file)
    elif cert:
        context.load_cert_chain(cert, key)
    return context


def _write(folder: str, name: str, data: bytes | None) -> str | None:
    if not data:
        return None
    path = os.path.join(folder, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
        handle.write(data)
    return path


class _HTTPSConnection(http.client.HTTPSConnection):
    """Verifies the server as TLS_SERVER_NAME when the kubeconfig names one (tls-server-name)."""

    def __init__(self, host: str, port: int | None, context: ssl.SSLContext, timeout: float, server_name: str | None):
        super().__init__(host, port, context=context, timeout=timeout)
        self._server_name = server_name
        self._ssl_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout, self.source_address)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self._server_name or self.host)


class HttpClient:
    """Requests to one API server; a connection is kept open between requests and reopened when it breaks."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.host = connection.server
        url = urllib.parse.urlsplit(connection.server)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ConfigError(f"the API server address {connection.server!r} is not an http(s) URL")
        self._url, self._prefix = url, url.path.rstrip("/")
        try:
            self._context = _ssl_context(connection) if url.scheme == "https" else None
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the TLS certificates of the connection: {exc}") from exc
        self._kept: http.client.HTTPConnection | None = None

    def _open(self, timeout: float) -> http.client.HTTPConnection:
        if self._context is None:
            return http.client.HTTPConnection(self._url.hostname, self._url.port, timeout=timeout)
        return _HTTPSConnection(self._url.hostname, self._url.port, self._context, timeout,
                                self.connection.tls_server_name)  # fmt: skip

    def _headers(self, content_type: str | None, accept: str | None) -> dict[str, str]:
        headers = {"Accept": accept or "application/json", "User-Agent": FIELD_MANAGER}
        if self.connection.authorization:
            headers["Authorization"] = self.connection.authorization
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _send(self, conn: http.client.HTTPConnection, method: str, target: str, body: bytes | None,
              content_type: str | None, accept: str | None = None) -> http.client.HTTPResponse:  # fmt: skip
        conn.putrequest(method, target, skip_accept_encoding=True)
        for key, value in [*self._headers(content_type, accept).items(), *self.connection.headers]:
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        return conn.getresponse()

    def request(self, method: str, path: str, query: Obj | None = None, body: t.Any = None,
                content_type: str | None = None, timeout: float = 30.0,
                accept: str | None = None) -> Response:  # fmt: skip
        """One request; TransportError when no HTTP answer came within TIMEOUT seconds."""
        target = self._target(path, query)
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):  # a kept connection the server closed meanwhile is reopened once
            conn = self._kept or self._open(timeout)
            self._kept = None
            conn.timeout = timeout
            try:
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                response = self._send(conn, method, target, data, content_type, accept)
                payload = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                if attempt == 2:
                    raise TransportError("connection", str(exc) or type(exc).__name__) from exc
                continue
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise _transport_error(exc) from exc
            self._kept = None if response.will_close else conn
            return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)
        raise AssertionError("unreachable")

    def stream(self, path: str, query: Obj, timeout: float) -> t.Iterator[bytes]:
        """The lines of a streamed response (a watch) on a connection of its own; each read gives up after
        TIMEOUT seconds without data. A non-2xx answer is returned as its one "line" after a Response."""
        conn = self._open(timeout)
        try:
            response = self._send(conn, "GET", self._target(path, query), None, None)
            if response.status >= 300:
                yield Response(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
                return
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    yield line
        except (OSError, http.client.HTTPException) as exc:
            raise _transport_error(exc) from exc
        finally:
            conn.close()

    def _target(self, path: str, query: Obj | None) -> str:
        pairs = [
            (k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items() if v is not None
        ]
        return self._prefix + path + ("?" + urllib.parse.urlencode(pairs) if pairs else "")

    def close(self) -> None:
        if self._kept is not None:
            self._kept.close()
            self._kept = None


def _transport_error(exc: Exception) -> TransportError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransportError("tls", f"the server's certificate is not trusted: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return TransportError("tls", f"TLS failed: {exc.reason or exc}")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TransportError("timeout", "no answer in time")
    return TransportError("connection", getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
