"""No secret anywhere: every playbook run through ansible-runner (as AWX runs it) at -vvv with a real ServiceAccount
token passed the documented ways, and the token in none of the job events nor the stdout - also when a run fails
(403: a token lacking a verb; 401: a token the API server rejects).

The two ways: the inventory host variable ``k8s_auth_api_key`` (with ``k8s_auth_host`` and ``k8s_auth_ca_cert``;
playbooks/vars/connection.yml maps them to the modules' options), and AWX's "OpenShift or Kubernetes API Bearer
Token" credential, which sets ``K8S_AUTH_HOST``, ``K8S_AUTH_API_KEY`` and ``K8S_AUTH_SSL_CA_CERT``. No kubeconfig is
in the environment, so the token is what authenticates.
"""

from __future__ import annotations

import base64
import json
import typing as t
from pathlib import Path

import ansible_runner
import pytest
import yaml

pytestmark = pytest.mark.slow

NAME = "fluentd-elasticsearch"
V2_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
# Every playbook in the order of the workflow, each with the extra variables of its run.
PLAYBOOKS = [
    ("deploy", {}),
    ("update", {"update_images": {NAME: V2_IMAGE}, "update_change_cause": "v2.6.0"}),
    ("rollback", {"rollback_to_revision": 1, "rollback_show_revision": 1}),
    ("troubleshoot", {}),
    ("lifecycle", {"daemonset_name": "lifecycle-agent", "lifecycle_cleanup": True}),
]
# The runs that fail, and how: the token, and what the output says.
FAILING = [
    ("read_only", "update", {"update_images": {NAME: "x:2"}}, "forbidden: cannot patch apps/daemonsets"),
    ("rejected", "rollback", {}, "unauthorized: the API server at"),
]


def runner_env(ansible_env: dict[str, str]) -> dict[str, str]:
    """The environment of an AWX job: the installed collection, no kubeconfig, ansible-runner's own callback (it
    makes the job events), and every task result with its ``invocation`` (the module's arguments, where a token
    would show; ansible-core 2.21 leaves it out unless asked, earlier versions always put it in)."""
    drop = ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "ANSIBLE_STDOUT_CALLBACK", "ANSIBLE_LOAD_CALLBACK_PLUGINS")
    return {**{key: value for key, value in ansible_env.items() if key not in drop}, "ANSIBLE_INJECT_INVOCATION": "1"}


def run(playbook: str, extra: dict[str, t.Any], namespace: str, token: str, way: str, server: dict[str, str],
        env: dict[str, str], directory: Path) -> t.Any:  # fmt: skip
    """Run kubeops.daemonset.PLAYBOOK through ansible-runner at -vvv, the token passed WAY."""
    host: dict[str, str] = {"ansible_connection": "local"}
    env = dict(env)
    if way == "inventory":
        host.update(k8s_auth_host=server["host"], k8s_auth_ca_cert=server["ca"], k8s_auth_api_key=token)
    else:
        env.update(K8S_AUTH_HOST=server["host"], K8S_AUTH_SSL_CA_CERT=server["ca"], K8S_AUTH_API_KEY=token)
    directory.mkdir(parents=True)
    return ansible_runner.run(
        private_data_dir=str(directory),
        playbook=f"kubeops.daemonset.{playbook}",
        inventory={"all": {"hosts": {"localhost": host}}},
        extravars={"daemonset_namespace": namespace, **extra},
        envvars=env,
        verbosity=3,
        quiet=True,
    )


def output(runner: t.Any) -> str:
    """The run's stdout, as AWX shows it."""
    return (Path(runner.config.artifact_dir) / "stdout").read_text()


def hits(runner: t.Any, token: str) -> list[str]:
    """Where TOKEN shows in the run's job events and stdout."""
    found = [f"event {event.get('counter')} ({event.get('event')})" for event in runner.events
             if token in json.dumps(event)]  # fmt: skip
    return found + (["stdout"] if token in output(runner) else [])


@pytest.fixture
def tokens(service_accounts) -> dict[str, str]:
    """A token with every use's RBAC, one with read-only RBAC, and one the API server rejects."""
    enough = service_accounts.for_use("update", "rollback", "troubleshoot")
    read_only = service_accounts.for_use("read-only")
    return {"enough": service_accounts.token(enough), "read_only": service_accounts.token(read_only),
            "rejected": "kubeops-not-a-valid-" + "token-" * 4}  # fmt: skip


@pytest.fixture
def server(kubeconfig: str, tmp_path: Path) -> dict[str, str]:
    cluster = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    return {"host": cluster["server"], "ca": str(tmp_path / "ca.crt")}


@pytest.mark.parametrize("way", ["inventory", "awx-environment"])
def test_no_token_in_any_job_event_or_stdout(way, namespace, tokens, server, ansible_env, tmp_path):
    env = runner_env(ansible_env)
    for playbook, extra in PLAYBOOKS:
        runner = run(playbook, extra, namespace, tokens["enough"], way, server, env, tmp_path / playbook)
        stdout = output(runner)
        assert runner.rc == 0, f"{playbook} failed:\n{stdout[-4000:]}"
        assert '"module_args"' in stdout  # -vvv shows the invocations
        assert hits(runner, tokens["enough"]) == [], playbook
    for token, playbook, extra, says in FAILING:
        runner = run(playbook, extra, namespace, tokens[token], way, server, env, tmp_path / f"{playbook}-{token}")
        assert runner.rc != 0 and says in output(runner), playbook
        assert hits(runner, tokens[token]) == [], f"{playbook} with the {token} token"
