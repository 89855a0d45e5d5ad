# SPDX-License-Identifier: GPL-3.0-or-later
"""_transport: kubernetes.core's connection options resolved to one server and its credentials (files in tmp_path;
the HTTPS client itself is exercised by every integration test against the real cluster)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _transport

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kubeconfig(tmp_path: Path, user: dict, cluster: dict | None = None, name: str = "kubeconfig") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": cluster or {"server": "https://10.0.0.1:6443/", "certificate-authority-data": b64(CA)},
            }
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [
            {"name": "one", "context": {"cluster": "c", "user": "u"}},
            {"name": "two", "context": {"cluster": "c"}},
        ],
        "current-context": "one",
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def run_command(args: list[str], cwd: str | None, env: dict[str, str]) -> tuple[int, str, str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def resolve(params: dict, environ: dict | None = None) -> _transport.Connection:
    environ = environ or {}
    return _transport.resolve(_transport.connection_options(params, environ), environ, run_command)


def test_task_options_win_over_k8s_auth_variables() -> None:
    environ = {"K8S_AUTH_HOST": "https://env:6443", "K8S_AUTH_VERIFY_SSL": "no", "K8S_AUTH_API_KEY": "from-env",
               "K8S_AUTH_IMPERSONATE_GROUPS": "a,b,"}  # fmt: skip
    options = _transport.connection_options({"host": "https://task:6443", "api_key": None}, environ)
    assert options == {"host": "https://task:6443", "api_key": "from-env", "validate_certs": False,
                       "impersonate_groups": ["a", "b"]}  # fmt: skip


def test_host_and_api_key_need_no_kubeconfig() -> None:
    connection = resolve({"host": "https://k8s:6443/", "api_key": "secret", "validate_certs": False})
    assert connection.server == "https://k8s:6443"
    assert connection.authorization == "Bearer secret" and not connection.verify


def test_kubeconfig_with_embedded_certificates(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"client-certificate-data": b64("CERT"), "client-key-data": b64("KEY")})
    connection = resolve({"kubeconfig": str(path)})
    assert connection.server == "https://10.0.0.1:6443"
    assert connection.ca_data == CA
    assert (connection.cert_data, connection.key_data) == (b"CERT", b"KEY")
    assert connection.authorization is None


def test_relative_paths_start_from_the_kubeconfig_and_tokens_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    cluster = {"server": "https://k8s", "certificate-authority": "ca.crt", "tls-server-name": "kubernetes"}
    path = kubeconfig(tmp_path, {"tokenFile": "token", "token": "inline"}, cluster)
    connection = resolve({}, {"KUBECONFIG": str(path)})
    assert connection.ca_file == str(tmp_path / "ca.crt")
    assert connection.authorization == "Bearer from-file"  # tokenFile first, as the kubernetes client reads it
    assert connection.tls_server_name == "kubernetes"


def test_given_options_override_the_kubeconfig(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"token": "kubeconfig-token"})
    connection = resolve({"kubeconfig": str(path), "api_key": "task-token", "ca_cert": "/ca.pem",
                          "impersonate_user": "alice"})  # fmt: skip
    assert connection.authorization == "Bearer task-token"
    assert (connection.ca_file, connection.ca_data) == ("/ca.pem", None)
    assert connection.headers == [("Impersonate-User", "alice")]


def test_context_option_and_a_context_without_a_user(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"token": "t"})
    assert resolve({"kubeconfig": str(path), "context": "two"}).authorization is None
    with pytest.raises(_transport.ConfigError, match=r"no context named 'three' \(it has: one, two\)"):
        resolve({"kubeconfig": str(path), "context": "three"})


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not yaml: [", "is not valid YAML"), ("- just\n- a list\n", "holds no kubeconfig"),
     ("clusters: []\n", "no current-context set")],
)  # fmt: skip
def test_bad_kubeconfigs_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "broken"
    path.write_text(content)
    with pytest.raises(_transport.ConfigError, match=message) as error:
        resolve({"kubeconfig": str(path)})
    assert str(path) in str(error.value) or "kubeconfig" in str(error.value)


def test_a_missing_kubeconfig_names_the_path_and_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(_transport.ConfigError, match=r"cannot read the kubeconfig .*/nope \(KUBECONFIG\)"):
        resolve({}, {"KUBECONFIG": str(tmp_path / "nope")})


@pytest.mark.parametrize(
    ("user", "cluster", "params", "environ", "needs"),
    [({"auth-provider": {"name": "oidc"}}, None, {}, {}, "auth-provider 'oidc'"),
     ({}, {"server": "https://k8s", "proxy-url": "http://proxy:3128"}, {}, {}, "proxy-url"),
     ({}, None, {"persist_config": True}, {}, "persist_config"),
     ({}, None, {"proxy": "http://proxy:3128"}, {}, "the proxy option"),
     ({}, None, {}, {"HTTPS_PROXY": "http://proxy:3128"}, "a proxy from the environment")],
)  # fmt: skip
def test_what_only_the_kubernetes_client_supports(tmp_path, user, cluster, params, environ, needs) -> None:
    path = kubeconfig(tmp_path, user, cluster)
    with pytest.raises(_transport.NeedsKubernetesClient, match=needs):
        resolve({"kubeconfig": str(path), **params}, environ)


def test_several_kubeconfig_files_go_to_the_kubernetes_client(tmp_path: Path) -> None:
    first, second = kubeconfig(tmp_path, {}, name="a"), kubeconfig(tmp_path, {}, name="b")
    with pytest.raises(_transport.NeedsKubernetesClient, match="several kubeconfig files"):
        resolve({}, {"KUBECONFIG": f"{first}:{second}"})


def exec_plugin(tmp_path: Path, output: dict | str, code: int = 0) -> dict:
    script = tmp_path / "plugin.py"
    text = output if isinstance(output, str) else json.dumps(output)
    script.write_text(f"import os, sys\nsys.stderr.write(os.environ['KUBERNETES_EXEC_INFO'])\nprint({text!r})\n"
                      f"sys.exit({code})\n")  # fmt: skip
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": [str(script)]}}


def test_exec_credential_plugins_give_a_token(tmp_path: Path) -> None:
    credential = {"kind": "ExecCredential", "status": {"token": "from-plugin"}}
    path = kubeconfig(tmp_path, exec_plugin(tmp_path, credential))
    assert resolve({"kubeconfig": str(path)}).authorization == "Bearer from-plugin"


def test_a_failing_exec_plugin_is_a_config_error(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, exec_plugin(tmp_path, "nope", code=3))
    with pytest.raises(_transport.ConfigError, match=r"the exec credential plugin .* failed \(3\)"):
        resolve({"kubeconfig": str(path)})


@pytest.mark.parametrize(
    ("options", "message"),
    [({"ca_file": "{dir}/none.pem"}, "cannot load the CA certificate {dir}/none.pem (ca_cert or certif"),
     ({"ca_file": "{dir}/garbage.pem"}, "cannot load the CA certificate {dir}/garbage.pem"),
     ({"cert_file": "{dir}/none.crt", "key_file": "{dir}/k"}, "cannot load the client certificate {dir}/none.crt")],
)  # fmt: skip
def test_tls_files_that_cannot_be_loaded_are_named(tmp_path: Path, options: dict, message: str) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    connection = _transport.Connection("https://k8s", **{k: v.format(dir=tmp_path) for k, v in options.items()})
    with pytest.raises(_transport.ConfigError) as error:
        _transport.HttpClient(connection)
    assert str(error.value).startswith(message.format(dir=tmp_path))
