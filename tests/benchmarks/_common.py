"""Helpers shared by the benchmark scripts: paths, and the ansible and kubectl command lines they run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(ROOT / ".cache/bin/kubectl")
# With these, `ansible` prints one JSON document: task_result() reads the module's result from it.
JSON_OUTPUT = {"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}


def ansible_env(kubeconfig: str, **extra: str) -> dict[str, str]:
    """Environment of an ansible run on KUBECONFIG's cluster with the collection `make collection` installed."""
    return dict(
        os.environ,
        KUBECONFIG=kubeconfig,
        K8S_AUTH_KUBECONFIG=kubeconfig,
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache/collections"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        **extra,
    )


def ansible_module(module: str, args: dict[str, Any]) -> list[str]:
    """`ansible localhost -m MODULE -a ARGS` with the ansible of this Python."""
    ansible = str(Path(sys.executable).parent / "ansible")
    return [ansible, "localhost", "-c", "local", "-i", "localhost,", "-m", module, "-a", json.dumps(args)]


def task_result(stdout: str) -> dict[str, Any]:
    """The result of the one task on localhost, from the output of a run with JSON_OUTPUT."""
    return json.loads(stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def kubectl_cmd(kubeconfig: str, *args: str) -> list[str]:
    return [KUBECTL, f"--kubeconfig={kubeconfig}", *args]


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    """kubectl's standard output; a failure raises CalledProcessError."""
    return subprocess.run(
        kubectl_cmd(kubeconfig, *args), check=True, capture_output=True, text=True, input=stdin
    ).stdout
