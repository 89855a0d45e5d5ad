# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pre-flight of a DaemonSet's pod template before it rolls out: on which nodes it would run, whether its pod fits
there, which taints keep it off nodes its selector picks, whether its image references can be parsed; and the
pre-pull - a throw-away DaemonSet with the same node placement whose init containers pull the new images - with
the per-node verdict read from its pods.

Every finding is ``{node, check, severity, reason, message}`` (``image`` too for image and pull findings); an
``error`` means the rollout would fail there, a ``warning`` that something is off but the rollout would not be
worse for it.

Floor 1 (pure): API objects in, plain data out.
"""

from __future__ import annotations

import re
import typing as t
from datetime import datetime, timedelta

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    FIELD_MANAGER,
    Obj,
    annotations,
    container_statuses,
    node_unhealthy,
    owned_by,
    pod_condition,
    pod_is_ready,
    pod_target_node,
    pod_terminating,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._placement import (
    HOST_NETWORK_TOLERATION,
    node_allocatable,
    node_free,
    node_placement,
    pod_requests,
    rolling_budget,
    taint_string,
    update_strategy,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import (
    counted_names,
    format_quantity,
    natural_key,
    parse_time,
    plural,
    preview,
    rfc3339,
)

# The pre-pull DaemonSet, its pods and its owner Job carry PREPULL_LABEL (value: the run's id, the DaemonSet's
# selector); the annotations say for which DaemonSet, until when it may live, and which process made it.
PREPULL_LABEL = "daemonset.kubeops.io/prepull"
PREPULL_FOR = "daemonset.kubeops.io/prepull-for"
PREPULL_EXPIRES = "daemonset.kubeops.io/prepull-expires"
PREPULL_HOLDER = "daemonset.kubeops.io/prepull-holder"
MANAGED_BY = "app.kubernetes.io/managed-by"
SUFFIX = "-prepull"

# What the pre-pull runs. The main container idles in the pause image, which every node already has (its container
# runtime starts each pod's sandbox from it). Each init container runs PREPULL_COMMAND in one image: the image must
# have a shell (images without one are reported "blocked": pulled, but the images after it were not tried).
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
PREPULL_COMMAND = ["sh", "-c", "true"]
# Asked for explicitly, so a namespace's LimitRange does not give the pre-pull its (possibly large) defaults.
PREPULL_RESOURCES = {"requests": {"cpu": "1m", "memory": "8Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}
# Least privilege that passes the "restricted" Pod Security Standard: only the images' files are used.
_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

# Waiting reasons of a container whose image could not be pulled (kubelet's images package).
PULL_ERRORS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable",
     "SignatureValidationFailed"}
)  # fmt: skip
# Waiting reasons before the kubelet got to the image (pulling shows as ContainerCreating).
_NOT_YET = frozenset({"", "ContainerCreating", "PodInitializing"})
PULLED, FAILED, BLOCKED, PENDING, SKIPPED = "pulled", "failed", "blocked", "pending", "skipped"
SETTLED = (PULLED, FAILED, BLOCKED)

ERROR, WARNING = "error", "warning"


def _finding(node: str | None, check: str, severity: str, reason: str, message: str, **extra: t.Any) -> Obj:
    return {"node": node, "check": check, "severity": severity, "reason": reason, "message": message, **extra}


# --- image references ------------------------------------------------------------------------

# The grammar of github.com/distribution/reference, which the kubelet parses every image with.
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")


def _split_reference(image: str) -> tuple[str, str, str | None, str | None]:
    """(domain, path, tag, digest) the way the kubelet normalizes a reference: the part before the first ``/`` is a
    registry only when it has a ``.`` or ``:`` or is ``localhost`` (``nginx`` is ``docker.io/library/nginx``)."""
    name, _at, digest = image.partition("@")
    tag = None
    if name.rfind(":") > name.rfind("/"):
        name, tag = name.rsplit(":", 1)
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest, tag, digest or None
    return "", name, tag, digest or None


def image_problem(image: str) -> str | None:
    """Why the kubelet cannot parse IMAGE (it then fails the container with InvalidImageName), or None."""
    if not image or image != image.strip():
        return "empty, or with spaces around it"
    domain, path, tag, digest = _split_reference(image)
    if domain and not _DOMAIN.match(domain):
        return f"{domain!r} is not a registry host"
    if path != path.lower():
        return "the repository name must be lowercase"
    if not path or not all(_PATH_COMPONENT.match(part) for part in path.split("/")):
        return f"{path!r} is not a repository name (lowercase letters, digits, and . _ - between them)"
    if len(domain) + len(path) + (1 if domain else 0) > 255:
        return "the repository name is longer than 255 characters"
    if tag is not None and not _TAG.match(tag):
        return f"{tag!r} is not a tag (letters, digits, _ . -, at most 128, not starting with . or -)"
    if digest is not None and not _DIGEST.match(digest):
        return f"{digest!r} is not a digest (algorithm:hex)"
    return None


def default_pull_policy(image: str) -> str:
    """The API server's default: Always for ``:latest`` or no tag (without a digest), else IfNotPresent."""
    _domain, _path, tag, digest = _split_reference(image)
    return "Always" if digest is None and tag in (None, "latest") else "IfNotPresent"


def template_images(template: Obj) -> dict[str, str]:
    """Image -> pull policy of a pod template's init and app containers, in their order (the first use's policy)."""
    spec = template.get("spec") or {}
    images: dict[str, str] = {}
    for container in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        image = container.get("image") or ""
        images.setdefault(image, container.get("imagePullPolicy") or default_pull_policy(image))
    return images


def images_to_pull(desired: Obj, live: Obj | None, every: bool = False) -> dict[str, str]:
    """The images of DESIRED's template the live template does not use (all of them with EVERY, or when nothing is
    live): where the live pods run, the nodes have the others already."""
    wanted = template_images(desired["spec"]["template"])
    if every or live is None:
        return wanted
    running = template_images(live["spec"]["template"])
    return {image: policy for image, policy in wanted.items() if image not in running}


def image_findings(images: t.Iterable[str]) -> list[Obj]:
    """An error for each image the kubelet cannot parse (on every node: no pull needed to know)."""
    findings = []
    for image in images:
        problem = image_problem(image)
        if problem:
            findings.append(_finding(None, "image", ERROR, "InvalidImageName", f"image {image!r} is not a valid "
                                     f"reference ({problem}): every node would fail it with InvalidImageName",
                                     image=image))  # fmt: skip
    return findings


# --- placement and fit -----------------------------------------------------------------------


def pod_fit(needs: dict[str, float], node: Obj, pods: list[Obj], replaced: Obj | None) -> Obj:
    """``{fits, short, reason, message}``: NEEDS (``pod_requests``) against the node's allocatable minus what its
    unfinished PODS request, plus what REPLACED requests (the old daemon pod, deleted before the new one is created).
    ``short`` maps each resource that lacks room to how much is missing; ``reason`` is the scheduler's (``Insufficient
    cpu``), ``message`` the same with the numbers."""
    free = node_free(node, pods)
    if replaced is not None:
        for name, value in pod_requests(replaced).items():
            free[name] = free.get(name, 0.0) + value
    allocatable = node_allocatable(node)
    short, reasons, details = {}, [], []
    for name, need in sorted(needs.items()):
        room, total = free.get(name, 0.0), allocatable.get(name, 0.0)
        if need <= 0 or need <= room + 1e-9 * max(1.0, need):  # quantities are floats: 0.1 + 0.2 is not 0.3
            continue
        short[name] = format_quantity(name, need - room)
        if name == "pods":
            reasons.append("Too many pods")
            details.append(f"Too many pods ({format_quantity(name, total - room)} of {format_quantity(name, total)} "
                           "in use)")  # fmt: skip
        else:
            reasons.append(f"Insufficient {name}")
            details.append(f"Insufficient {name} (needs {format_quantity(name, need)}, "
                           f"{format_quantity(name, max(room, 0.0))} free of {format_quantity(name, total)} "
                           "allocatable)")  # fmt: skip
    return {"fits": not short, "short": short, "reason": ", ".join(reasons), "message": "; ".join(details)}


def surges(daemonset: Obj, desired: int) -> bool:
    """Whether the rollout starts the new pod beside the old one (RollingUpdate with maxSurge > 0): then the node
    needs room for both. Without surge (and with OnDelete) the old pod goes first and frees its requests."""
    return update_strategy(daemonset)["type"] == "RollingUpdate" and rolling_budget(daemonset, desired)[1] > 0


def _by_node(pods: t.Iterable[Obj]) -> dict[str, list[Obj]]:
    grouped: dict[str, list[Obj]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            grouped.setdefault(node, []).append(pod)
    return grouped


def _old_pods(live: Obj | None, pods: list[Obj]) -> dict[str, Obj]:
    """Node -> the live DaemonSet's pod bound there (not being deleted): what a rollout without surge replaces."""
    if live is None:
        return {}
    owned = (pod for pod in owned_by(live, pods) if not pod_terminating(pod))
    return {pod["spec"]["nodeName"]: pod for pod in owned if (pod.get("spec") or {}).get("nodeName")}


def _target_findings(name: str, fit: Obj, ready: bool, beside: bool) -> list[Obj]:
    findings = []
    if not ready:  # the controller counts it, but its pod cannot become available now
        findings.append(_finding(name, "node", WARNING, "NodeNotReady", f"node {name} is not ready: the DaemonSet "
                                 "counts it, but its pod there cannot become available (nor pull images) until it "
                                 "is"))  # fmt: skip
    if not fit["fits"]:
        room = "the new pod beside the old one (maxSurge > 0)" if beside else "the pod"
        findings.append(_finding(name, "fit", ERROR, fit["reason"], f"node {name} has no room for {room}: "
                                 f"{fit['message']}", short=fit["short"]))  # fmt: skip
    return findings


def check_nodes(desired: Obj, live: Obj | None, nodes: list[Obj], pods: list[Obj]) -> Obj:
    """The fit and taint checks of DESIRED (the DaemonSet as it would be) on NODES, given the cluster's unfinished
    PODS and the LIVE DaemonSet (None: not deployed yet): ``{targets, nodes, findings, summary}``.

    Targets are the nodes the controller would run it on; nodes its node selector or affinity does not pick are
    only counted (the controller ignores them too). A node it picks but whose NoSchedule/NoExecute taint it does
    not tolerate is a finding: an error when the live DaemonSet runs there (the change takes the node's pod away),
    else a warning."""
    by_node, old_pods = _by_node(pods), _old_pods(live, pods)
    nodes = sorted(nodes, key=lambda node: natural_key(node["metadata"]["name"]))
    placements = {node["metadata"]["name"]: node_placement(desired, node) for node in nodes}
    targets = [node for node in nodes if placements[node["metadata"]["name"]]["should_run"]]
    surge, needs = surges(desired, len(targets)), pod_requests(desired["spec"]["template"])
    findings: list[Obj] = []
    report: dict[str, Obj] = {}
    for node in targets:
        name = node["metadata"]["name"]
        fit = pod_fit(needs, node, by_node.get(name, []), None if surge else old_pods.get(name))
        report[name] = {"fits": fit["fits"], "ready": not node_unhealthy(node), "pull": None}
        findings += _target_findings(name, fit, report[name]["ready"], surge and name in old_pods)
    tainted = [node for node in nodes if placements[node["metadata"]["name"]]["selector_match"]
               and placements[node["metadata"]["name"]]["taints"]]  # fmt: skip
    for node in tainted:
        runs_now = live is not None and node_placement(live, node)["should_run"]
        findings.append(_taint_finding(node["metadata"]["name"], placements[node["metadata"]["name"]]["taints"],
                                       runs_now))  # fmt: skip
    selected = sum(1 for placement in placements.values() if placement["selector_match"])
    fitting = sum(1 for entry in report.values() if entry["fits"])
    summary = {"nodes": len(nodes), "targets": len(targets), "not_selected": len(nodes) - selected,
               "untolerated": len(tainted), "fit": fitting, "no_fit": len(targets) - fitting,
               "not_ready": sum(1 for entry in report.values() if not entry["ready"]), "surge": surge}  # fmt: skip
    return {"targets": list(report), "nodes": report, "findings": findings, "summary": summary}


def _taint_finding(node: str, taints: list[Obj], runs_now: bool) -> Obj:
    shown = ", ".join(taint_string(taint) for taint in taints)
    if runs_now:
        return _finding(node, "taint", ERROR, "UntoleratedTaint", f"node {node} runs the DaemonSet now, but the new "
                        f"template does not tolerate its taint {shown}: the node would be left without its pod",
                        taints=[taint_string(taint) for taint in taints])  # fmt: skip
    return _finding(node, "taint", WARNING, "UntoleratedTaint", f"node {node} matches the node selector and affinity, "
                    f"but its taint {shown} is not tolerated: the DaemonSet will not run there",
                    taints=[taint_string(taint) for taint in taints])  # fmt: skip


# --- the pre-pull DaemonSet --------------------------------------------------------------------


def prepull_name(name: str) -> str:
    """``NAME-prepull``, cut to fit an object name."""
    return f"{name[: 253 - len(SUFFIX)]}{SUFFIX}"


def prepull_metadata(name: str, namespace: str, run_id: str, target: str, expires: datetime, holder: str) -> Obj:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {PREPULL_LABEL: run_id, MANAGED_BY: FIELD_MANAGER},
        "annotations": {PREPULL_FOR: target, PREPULL_EXPIRES: rfc3339(expires), PREPULL_HOLDER: holder},
    }


def prepull_owner(metadata: Obj, seconds: int, pause_image: str) -> Obj:
    """A Job that runs no pod (parallelism 0) and fails after SECONDS (its activeDeadlineSeconds); the TTL controller
    then deletes it at once, and the garbage collector the pre-pull DaemonSet it owns, with its pods. So a run that
    is killed (SIGKILL) leaves nothing behind for longer than SECONDS."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "parallelism": 0,
            "completions": 1,
            "backoffLimit": 0,
            "activeDeadlineSeconds": seconds,
            "ttlSecondsAfterFinished": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pause", "image": pause_image}]}},
        },
    }


def prepull_daemonset(desired: Obj, metadata: Obj, images: dict[str, str], command: list[str], pause_image: str,
                      owner: Obj | None = None) -> Obj:  # fmt: skip
    """The throw-away DaemonSet pulling IMAGES (image -> pull policy) where DESIRED would run: its node selector,
    node affinity, tolerations and nodeName, host network (a CNI agent's pods must not need the pod network), its
    imagePullSecrets and service account (whose imagePullSecrets the API server adds; no token is mounted) and
    runtime class. Nothing else is copied: not its labels (Services would send it traffic), pod affinity (it refers
    to the real pods' labels), priority (it must not preempt anything), volumes or probes."""
    source = desired["spec"]["template"].get("spec") or {}
    copied = ("nodeSelector", "tolerations", "nodeName", "hostNetwork", "serviceAccountName", "imagePullSecrets",
              "runtimeClassName")  # fmt: skip
    spec: Obj = {key: source[key] for key in copied if source.get(key)}
    node_affinity = (source.get("affinity") or {}).get("nodeAffinity")
    if node_affinity:
        spec["affinity"] = {"nodeAffinity": node_affinity}
    if spec.get("hostNetwork"):
        spec["tolerations"] = [*spec.get("tolerations", []), HOST_NETWORK_TOLERATION]  # as the controller adds
    selector = {PREPULL_LABEL: metadata["labels"][PREPULL_LABEL]}
    pulls = [{"name": f"pull-{number}", "image": image, "imagePullPolicy": policy, "command": list(command),
              "resources": PREPULL_RESOURCES, "securityContext": _CONTAINER_SECURITY}
             for number, (image, policy) in enumerate(images.items(), 1)]  # fmt: skip
    spec.update(
        automountServiceAccountToken=False,
        enableServiceLinks=False,
        terminationGracePeriodSeconds=1,
        securityContext=_POD_SECURITY,
        initContainers=pulls,
        containers=[{"name": "pause", "image": pause_image, "imagePullPolicy": "IfNotPresent",
                     "resources": PREPULL_RESOURCES, "securityContext": _CONTAINER_SECURITY}],
    )  # fmt: skip
    meta = dict(metadata)
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"]}]  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "OnDelete"},
            "template": {"metadata": {"labels": selector}, "spec": spec},
        },
    }


def expires_at(obj: Obj) -> datetime | None:
    try:
        return parse_time(annotations(obj).get(PREPULL_EXPIRES))
    except ValueError:
        return None


def expired(obj: Obj, now: datetime) -> bool:
    """A pre-pull object past its expiry (or without a readable one): whatever made it is gone."""
    expiry = expires_at(obj)
    return expiry is None or expiry <= now


def expiry(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)


# --- the pre-pull's verdict --------------------------------------------------------------------


def node_state(state: str, reason: str = "", message: str = "", image: str | None = None) -> Obj:
    return {"state": state, "reason": reason, "message": message, "image": image}


def pull_state(pod: Obj | None) -> Obj:
    """``{state, reason, message, image}`` of the pre-pull on one node, from its pod (None: not created yet).

    The kubelet runs the init containers one after the other, each once its image is there: all completed means
    every image was pulled. An init container waiting with a pull error (ErrImagePull, ImagePullBackOff,
    InvalidImageName ...) failed; one that got past the pull but could not run the command (no shell in the image:
    RunContainerError, CrashLoopBackOff ...) proves its image is there but blocks the ones after it."""
    if pod is None:
        return node_state(PENDING, "NoPod", "no pre-pull pod on the node yet")
    if pod_is_ready(pod):
        return node_state(PULLED)
    scheduled = pod_condition(pod, "PodScheduled") or {}
    if scheduled.get("status") == "False":
        return node_state(PENDING, scheduled.get("reason") or "Unschedulable", scheduled.get("message") or "")
    status = pod.get("status") or {}
    statuses = {s.get("name"): s for s in status.get("initContainerStatuses") or []}
    for container in (pod.get("spec") or {}).get("initContainers") or []:
        image, current = container.get("image"), statuses.get(container["name"]) or {}
        waiting = (current.get("state") or {}).get("waiting")
        terminated = (current.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode") == 0:
            continue
        if waiting and waiting.get("reason") in PULL_ERRORS:
            return node_state(FAILED, waiting["reason"], waiting.get("message") or "", image)
        stopped = terminated or (current.get("lastState") or {}).get("terminated")
        if stopped or (waiting and waiting.get("reason") not in _NOT_YET):
            detail = (waiting or {}).get("message") or (stopped or {}).get("message") or (stopped or {}).get("reason")
            reason = (waiting or {}).get("reason") or (stopped or {}).get("reason") or "Error"
            detail = detail or f"exit code {(stopped or {}).get('exitCode')}"
            message = (f"{image} was pulled, but the pre-pull command could not run in it ({reason}: {detail}), so "
                       "the images after it were not tried: set prepull_command to one the image has")  # fmt: skip
            return node_state(BLOCKED, reason, message, image)
        reason = (waiting or {}).get("reason") or ("Pulling" if current else "Pending")
        if reason == "ContainerCreating":  # what the kubelet reports while it pulls
            reason = "Pulling"
        return node_state(PENDING, reason, (waiting or {}).get("message") or "", image)
    for current in container_statuses(pod):  # the init containers are done: only the pause container is left
        waiting = (current.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_ERRORS:
            why = f"the pause image could not be pulled ({waiting.get('message')}): set prepull_pause_image"
            return node_state(FAILED, waiting["reason"], why, current.get("image"))
    return node_state(PULLED)


def pull_states(targets: t.Iterable[str], pods: t.Iterable[Obj]) -> dict[str, Obj]:
    """Node -> ``pull_state`` for each target node, from the pre-pull pods (the newest not being deleted)."""
    newest: dict[str, Obj] = {}
    for pod in pods:
        node = pod_target_node(pod)
        if node and not pod_terminating(pod):
            known = newest.get(node)
            if known is None or pod["metadata"].get("creationTimestamp", "") >= known["metadata"].get(
                "creationTimestamp", ""
            ):
                newest[node] = pod
    return {node: pull_state(newest.get(node)) for node in targets}


def pull_counts(states: dict[str, Obj]) -> dict[str, int]:
    counts = {state: 0 for state in (PULLED, FAILED, BLOCKED, PENDING, SKIPPED)}
    for state in states.values():
        counts[state["state"]] += 1
    return counts


def progress_line(what: str, states: dict[str, Obj], elapsed: float) -> str:
    """``pre-pull ns/x-prepull: 3 of 5 nodes pulled, 1 failed (ErrImagePull: worker-2), 1 pending (12s)``."""
    counts = pull_counts(states)
    parts = [f"{counts[PULLED]} of {plural(len(states), 'node')} pulled"]
    for state in (FAILED, BLOCKED, PENDING):
        if counts[state]:
            names = sorted((n for n, s in states.items() if s["state"] == state), key=natural_key)
            reasons = sorted({states[n]["reason"] for n in names if states[n]["reason"]})
            why = f"{', '.join(reasons)}: " if reasons else ""
            parts.append(f"{counts[state]} {state} ({why}{preview(names)})")
    return f"{what}: {', '.join(parts)} ({elapsed:.0f}s)"


def pull_findings(states: dict[str, Obj], timed_out: bool) -> list[Obj]:
    """Failed pulls are errors, blocked ones (the image is there, later ones untried) warnings, nodes still pending
    when the pre-pull had to stop errors. Skipped nodes (NotReady) have their own finding (``check_nodes``)."""
    findings = []
    for node in sorted(states, key=natural_key):
        state = states[node]
        if state["state"] == FAILED:
            message = f"node {node} cannot pull {state['image']}: {state['reason']} {state['message']}".rstrip()
            findings.append(_finding(node, "pull", ERROR, state["reason"], message, image=state["image"]))
        elif state["state"] == BLOCKED:
            findings.append(_finding(node, "pull", WARNING, state["reason"], f"node {node}: {state['message']}",
                                     image=state["image"]))  # fmt: skip
        elif state["state"] == PENDING and timed_out:
            detail = f" ({state['reason']}: {state['message']})" if state["message"] else f" ({state['reason']})"
            findings.append(_finding(node, "pull", ERROR, "PullTimeout", f"node {node} had not pulled "
                                     f"{state['image'] or 'the images'} when the pre-pull stopped{detail}",
                                     image=state["image"]))  # fmt: skip
    return findings


# --- the verdict -----------------------------------------------------------------------------

_CHECK_WORDS = {"fit": "pod does not fit", "taint": "untolerated taint", "image": "invalid image",
                "pull": "image pull", "node": "node"}  # fmt: skip


def verdict(findings: list[Obj], what: str) -> tuple[bool, str]:
    """(ok, message): ok unless there is an error; the message groups the findings by check and reason."""
    errors = [f for f in findings if f["severity"] == ERROR]
    groups: dict[tuple[str, str, str], list[Obj]] = {}
    for finding in sorted(findings, key=lambda f: f["severity"] != ERROR):
        groups.setdefault((finding["severity"], finding["check"], finding["reason"]), []).append(finding)
    parts = []
    for (severity, check, reason), members in groups.items():
        nodes = [f["node"] for f in members if f["node"]]
        where = f" on {counted_names(nodes, limit=3)}" if nodes else ""
        shown = sorted({x for f in members for x in [*f.get("taints", []), *([f["image"]] if f.get("image") else [])]})
        example = members[0]["message"] if len(members) == 1 else reason + (f" ({preview(shown)})" if shown else "")
        parts.append(f"{severity}: {_CHECK_WORDS[check]}{where}: {example}")
    if not findings:
        return True, f"{what}: no problem found"
    count = plural(len(errors), "problem") if errors else "no problem"
    return not errors, f"{what}: {count} that would fail the rollout; {'; '.join(parts)}"
