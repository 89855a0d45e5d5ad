"""Fixtures shared by the integration tests of the modules (on top of tests/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

RBAC_DOCS = Path(__file__).resolve().parents[2] / "docs" / "rbac"


class ServiceAccounts:
    """Fresh ServiceAccounts of NAMESPACE with exactly the RBAC a test gives, and kubeconfigs for their tokens
    (from the TokenRequest API, `kubectl create token`), so requests are authorized by RBAC as the ServiceAccount,
    like an AWX job running in-cluster. Cluster-scoped objects (ClusterRoles and their bindings) are deleted by
    ``cleanup``; the rest goes with the namespace."""

    def __init__(self, kubectl, kubeconfig: str, namespace: str, directory: Path) -> None:
        self.kubectl, self.namespace, self.directory = kubectl, namespace, directory
        self.cluster = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]
        self.made: list[str] = []

    def kubeconfig(self, rules: list[dict[str, Any]], cluster_rules: list[dict[str, Any]] | None = None) -> str:
        """A kubeconfig of a new ServiceAccount bound to a Role with exactly RULES in the namespace and, when given,
        to a ClusterRole with exactly CLUSTER_RULES."""
        name = f"{self.namespace[:40]}-sa-{len(self.made) + 1}"
        self.kubectl("create", "serviceaccount", name, namespace=self.namespace)
        self.made.append(name)
        for kind, role_rules, namespace in (("Role", rules, self.namespace), ("ClusterRole", cluster_rules, None)):
            if role_rules is not None:
                self._bind(kind, name, role_rules, namespace)
        token = self.kubectl("create", "token", name, "--duration=1h", namespace=self.namespace).stdout.strip()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": self.cluster}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "c", "user": name, "namespace": self.namespace}}],
            "current-context": name,
        }
        path = self.directory / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return str(path)

    def for_use(self, *uses: str, without: tuple[str, str] | None = None) -> str:
        """A kubeconfig with exactly the shipped RBAC of USES (docs/rbac/USE.yaml), less the verb WITHOUT
        (``("daemonsets", "patch")``) when given."""
        roles: dict[str, list[dict[str, Any]]] = {"Role": []}
        for use in uses:
            for item in yaml.safe_load((RBAC_DOCS / f"{use}.yaml").read_text())["items"]:
                roles.setdefault(item["kind"], []).extend(item["rules"])
        if without:
            roles = {kind: _without(rules, *without) for kind, rules in roles.items()}
        return self.kubeconfig(roles["Role"], roles.get("ClusterRole"))

    @staticmethod
    def token(kubeconfig: str) -> str:
        """The bearer token of a kubeconfig written here."""
        return yaml.safe_load(Path(kubeconfig).read_text())["users"][0]["user"]["token"]

    def _bind(self, kind: str, name: str, rules: list[dict[str, Any]], namespace: str | None) -> None:
        rbac = "rbac.authorization.k8s.io/v1"
        role = {"apiVersion": rbac, "kind": kind, "metadata": {"name": name}, "rules": rules}
        binding = {
            "apiVersion": rbac,
            "kind": f"{kind}Binding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": self.namespace}],
        }
        for obj in (role, binding):
            self.kubectl("create", "-f", "-", namespace=namespace, input=json.dumps(obj))

    def cleanup(self) -> None:
        if self.made:
            self.kubectl("delete", "clusterrolebinding,clusterrole", *self.made, "--wait=false", "--ignore-not-found")


def _without(rules: list[dict[str, Any]], resource: str, verb: str) -> list[dict[str, Any]]:
    """RULES less VERB on RESOURCE (rules left with no verb are dropped)."""
    kept = []
    for rule in rules:
        verbs = [v for v in rule["verbs"] if not (resource in rule["resources"] and v == verb)]
        if verbs:
            kept.append({**rule, "verbs": verbs})
    return kept


@pytest.fixture(scope="session")
def new_service_accounts(kubectl, kubeconfig: str) -> Callable[[str, Path], ServiceAccounts]:
    """new_service_accounts(namespace, directory): ServiceAccounts for fixtures of any scope (they clean up)."""
    return lambda namespace, directory: ServiceAccounts(kubectl, kubeconfig, namespace, directory)


@pytest.fixture
def service_accounts(new_service_accounts, namespace: str, tmp_path: Path) -> Iterator[ServiceAccounts]:
    accounts = new_service_accounts(namespace, tmp_path)
    yield accounts
    accounts.cleanup()


@pytest.fixture
def service_account_kubeconfig(service_accounts: ServiceAccounts) -> Callable[[list[dict[str, Any]]], str]:
    """make(rules): the kubeconfig of a fresh ServiceAccount of the test's namespace bound to a Role with exactly
    RULES (see ServiceAccounts)."""
    return service_accounts.kubeconfig


@pytest.fixture(scope="session")
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
