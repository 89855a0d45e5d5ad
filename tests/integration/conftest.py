"""Fixtures shared by the integration tests of the modules (on top of tests/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture
def service_account_kubeconfig(
    kubectl, kubeconfig: str, namespace: str, tmp_path: Path
) -> Callable[[list[dict[str, Any]]], str]:
    """A kubeconfig for a fresh ServiceAccount of NAMESPACE bound to a Role with exactly RULES.

    The token comes from the TokenRequest API (`kubectl create token`), so requests are authorized by RBAC
    as the ServiceAccount, like an AWX job running in-cluster.
    """
    admin = yaml.safe_load(Path(kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    made: list[str] = []

    def make(rules: list[dict[str, Any]]) -> str:
        name = f"restricted-{len(made) + 1}"
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}}
        role["rules"] = rules
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
        kubectl("create", "serviceaccount", name, namespace=namespace)
        for obj in (role, binding):
            kubectl("create", "-f", "-", namespace=namespace, input=json.dumps(obj))
        token = kubectl("create", "token", name, "--duration=1h", namespace=namespace).stdout.strip()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "c", "user": name, "namespace": namespace}}],
            "current-context": name,
        }
        path = tmp_path / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        made.append(name)
        return str(path)

    return make


@pytest.fixture
def two_revisions(seed_daemonset, apply_manifest, wait_rollout) -> Callable[..., None]:
    """make(namespace, name=...): the seed DaemonSet at version 1 then 2 (revisions 1 and 2), each applied with
    its kubernetes.io/change-cause in the same write and rolled out; version 2 is live."""

    def make(namespace: str, name: str = "fluentd-elasticsearch") -> None:
        for version in (1, 2):
            apply_manifest(
                seed_daemonset(namespace, version=version, name=name, change_cause=f"seed version {version}")
            )
            wait_rollout(namespace, name)

    return make
