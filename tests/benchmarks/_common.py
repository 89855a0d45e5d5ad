"""Helpers shared by the benchmark scripts: paths, and the ansible and kubectl command lines they run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import typing as t
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


class Measured(t.NamedTuple):
    """One finished process: wall seconds, CPU seconds of its whole tree (user + system), its output."""

    wall: float
    cpu: float
    returncode: int
    stdout: str
    stderr: str


def measured(cmd: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> Measured:
    """Run CMD; its CPU includes every descendant it waited for (Ansible's workers, their module processes)."""
    began = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    output: dict[str, str] = {}
    readers = [threading.Thread(target=lambda key, stream: output.__setitem__(key, stream.read()), args=(key, stream))
               for key, stream in (("out", proc.stdout), ("err", proc.stderr))]  # fmt: skip
    for reader in readers:
        reader.start()
    if stdin and proc.stdin:
        proc.stdin.write(stdin)
        proc.stdin.close()
    _pid, status, usage = os.wait4(proc.pid, 0)  # reaps it: the rusage of the finished process tree
    proc.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    return Measured(time.monotonic() - began, usage.ru_utime + usage.ru_stime, proc.returncode, output["out"],
                    output["err"])  # fmt: skip


def timed_lines(proc: subprocess.Popen, stream: t.IO[str], lines: list[tuple[float, str]]) -> threading.Thread:
    """A thread that appends (time.monotonic(), line) for each line PROC writes to STREAM, as it arrives."""

    def read() -> None:
        for line in stream:
            lines.append((time.monotonic(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


# Nodes a benchmark adds carry the test nodes' taint (other DaemonSets stay off them) and a label of their own.
TAINT = "kubeops.test/dedicated"


def add_nodes(kubeconfig: str, prefix: str, label: str, count: int) -> list[str]:
    """COUNT KWOK nodes PREFIX-1..COUNT labelled LABEL=true (removed with ``kubectl delete node -l LABEL``)."""
    names = [f"{prefix}-{number}" for number in range(1, count + 1)]
    resources = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    items = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok", label: "true"},
                "annotations": {"kwok.x-k8s.io/node": "fake"},
            },
            "spec": {"taints": [{"key": TAINT, "value": "true", "effect": "NoSchedule"}]},
            "status": {"allocatable": resources, "capacity": resources},
        }
        for name in names
    ]
    kubectl(kubeconfig, "create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return names


def proc_status_mib(pid: int | None, field: str) -> float:
    """A memory FIELD of /proc/PID/status (VmRSS: resident now, VmHWM: its peak) in MiB; 0 without the process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text() if pid else ""
    except OSError:
        return 0.0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith(f"{field}:")), 0) / 1024
