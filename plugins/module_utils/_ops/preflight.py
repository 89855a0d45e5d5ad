# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pre-flight of a DaemonSet change before anything changes: read what the checks need in a constant number of
requests (the DaemonSet, a server dry run of the change, every node, every unfinished pod), check fit and taints
per node (``_preflight``), and, when asked, pre-pull the new images with a throw-away DaemonSet.

The throw-away DaemonSet (``NAME-prepull``, labelled, with an expiry annotation) never outlives the run for long:

- however the run ends (done, failed, timed out) its ``finally`` deletes it, its pods with it;
- SIGINT, SIGTERM or SIGHUP of the process running it (ansible-playbook passes them to its workers when it is
  interrupted or terminated) become an exception while it exists, so the same ``finally`` runs (``SignalGuard``);
- when ansible-playbook itself is killed, the run notices at its next request (a watch lasts WATCH_SECONDS at
  most) and stops through the same ``finally``;
- when the process running it is killed (SIGKILL, OOM, the machine lost) nothing of it runs: the DaemonSet is
  owned by a Job that runs no pod and fails at its activeDeadlineSeconds (the timeout plus EXPIRY_MARGIN); the TTL
  controller then deletes the Job and the garbage collector the DaemonSet and its pods. Without the right to
  create Jobs, the next run of ds_preflight in the namespace deletes every pre-pull DaemonSet past its expiry.

Floor 2 (I/O sequence).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from datetime import datetime

from ansible_collections.kubeops.daemonset.plugins.module_utils import _preflight
from ansible_collections.kubeops.daemonset.plugins.module_utils._apply import planned
from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api, K8sError
from ansible_collections.kubeops.daemonset.plugins.module_utils._manifest import one_daemonset, prepare
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import Obj, labels, pod_target_node
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.update import requested_patch
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.write import with_fresh_reads
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import Request, SignalGuard, pid_alive
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import (
    http_date_time,
    plural,
    preview,
    rfc3339,
    utcnow,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._watch import watch_list

# Pods that hold resources on their node: not finished (the scheduler's accounting).
NON_TERMINAL = "status.phase!=Succeeded,status.phase!=Failed"
# One watch request lasts at most this long: a stop (the controller gone) is noticed within it.
WATCH_SECONDS = 5.0
# A progress line at least this often while the pre-pull waits, and at most one a second.
PROGRESS_SECONDS = 10.0
# How long past its timeout a killed run's pre-pull DaemonSet may live (its owner Job's deadline, its expiry).
EXPIRY_MARGIN = 30


def _desired(request: Request, api: Api) -> tuple[Obj | None, Obj]:
    """(the live DaemonSet or None, the DaemonSet as the change would leave it): a server dry run of the change
    (``kubectl apply`` of the definition, or ds_update's patch), so the server's defaults and validation apply."""
    params = request.params
    if params["definition"] is not None:
        definition = prepare(one_daemonset(params["definition"], "the definition"), params["name"],
                             params["namespace"], None, None)  # fmt: skip
        namespace, name = definition["metadata"]["namespace"], definition["metadata"]["name"]

        def dry_run(live: Obj | None, target: Obj) -> Obj:
            if live is None:
                return api.create("daemonsets", namespace, target, dry_run=True)
            return api.replace("daemonsets", namespace, name, target, dry_run=True)

        live, _target, desired = with_fresh_reads(
            f"DaemonSet {namespace}/{name}",
            lambda: api.get("daemonsets", namespace, name),
            lambda live, _previous: planned(live, definition),
            dry_run,
        )
        return live, desired
    namespace = params["namespace"] or "default"
    try:
        live = api.require_daemonset(namespace, params["name"])
    except K8sError as exc:
        if exc.status == 404:
            raise K8sError(f"{exc}; to check a DaemonSet before it is deployed, give its definition", 404) from None
        raise
    if not (params["template"] or params["src"] or params["images"] or params["resources"]):
        return live, live  # the live template itself (before a restart, or new nodes)
    patch = requested_patch(request, live["spec"]["template"])
    return live, api.patch("daemonsets", namespace, params["name"], patch, dry_run=True)


def _holder() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


def _holder_gone(holder: str) -> bool:
    """Whether the process that made a pre-pull is known to be gone: on this host, and not running (a process runs
    one task at a time, so this very process is done with any earlier one)."""
    host, _slash, pid = holder.rpartition("/")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return int(pid) == os.getpid() or not pid_alive(int(pid))


class PrePull:
    """One pre-pull: clear leftovers, create the owner Job and the DaemonSet, follow its pods, delete both."""

    def __init__(self, request: Request, api: Api, desired: Obj, images: dict[str, str], targets: list[str],
                 ready: set[str]) -> None:  # fmt: skip
        self.request, self.api, self.params = request, api, request.params
        self.desired, self.images = desired, images
        meta = desired["metadata"]
        self.namespace, self.target = meta["namespace"], f"{meta['namespace']}/{meta['name']}"
        self.name = _preflight.prepull_name(meta["name"])
        self.what = f"pre-pull daemonset {self.namespace}/{self.name}"
        self.run_id = uuid.uuid4().hex[:16]
        self.waiting = [node for node in targets if node in ready]
        self.skipped = [node for node in targets if node not in ready]  # NotReady nodes pull nothing now
        self.states: dict[str, Obj] = {}
        self.unsettled: set[str] = set()
        self.made: list[str] = []  # the resources this run sent a create for
        self.left_behind: list[str] = []
        self.began = time.monotonic()
        self.said_at, self.said = 0.0, ""

    def server_now(self) -> datetime:
        """The API server's clock (the Date of its last answer): expiries are compared with it, not with ours."""
        return http_date_time(self.api.server_date) or utcnow()

    def run(self) -> Obj:
        """``{state, name, images, elapsed, counts, left_behind}`` and each target node's state (``states``)."""
        self.clear_leftovers()
        timed_out = False
        with SignalGuard() as guard:
            try:
                self.create()
                selector = f"{_preflight.PREPULL_LABEL}={self.run_id}"
                deadline = self.began + self.params["prepull_timeout"]
                timed_out = not watch_list(self.api, "pods", self.namespace, selector, self.handle,
                                           lambda: not self.unsettled, deadline, WATCH_SECONDS, self.tick)  # fmt: skip
            finally:
                with guard.shielded():
                    self.remove()
        self.tick(force=True)
        skipped = _preflight.node_state(_preflight.SKIPPED, "NodeNotReady")
        states = {**self.states, **{node: skipped for node in self.skipped}}
        return {
            "state": "timeout" if timed_out else "done",
            "name": f"{self.namespace}/{self.name}",
            "images": list(self.images),
            "elapsed": round(time.monotonic() - self.began, 2),
            "counts": _preflight.pull_counts(states),
            "left_behind": self.left_behind,
            "states": states,
        }

    # --- before ------------------------------------------------------------------------------

    def clear_leftovers(self) -> None:
        """Delete the namespace's pre-pull DaemonSets past their expiry (their runs were killed) and this
        DaemonSet's whose process is gone; refuse while another run pre-pulls for the same DaemonSet."""
        listed = self.api.list_items("daemonsets", self.namespace, _preflight.PREPULL_LABEL)
        now = self.server_now()
        for leftover in listed:
            meta = leftover["metadata"]
            holder = (meta.get("annotations") or {}).get(_preflight.PREPULL_HOLDER, "")
            mine = meta["name"] == self.name
            if _preflight.expired(leftover, now) or (mine and _holder_gone(holder)):
                self.api.delete("daemonsets", self.namespace, meta["name"], {"uid": meta["uid"]},
                                propagation="Background")  # fmt: skip
                self.request.say(f"deleted the leftover pre-pull daemonset {self.namespace}/{meta['name']}")
            elif mine:
                until = rfc3339(_preflight.expires_at(leftover) or now)
                raise K8sError(f"{self.what} exists: another pre-pull for DaemonSet {self.target} is running "
                               f"({holder}, until {until} at the latest); run again when it is done", 409)  # fmt: skip

    def create(self) -> None:
        seconds = self.params["prepull_timeout"] + EXPIRY_MARGIN
        metadata = _preflight.prepull_metadata(self.name, self.namespace, self.run_id, self.target,
                                               _preflight.expiry(self.server_now(), seconds), _holder())  # fmt: skip
        owner = self.create_owner(metadata, seconds)
        body = _preflight.prepull_daemonset(self.desired, metadata, self.images, self.params["prepull_command"],
                                            self.params["prepull_pause_image"], owner)  # fmt: skip
        self.made.append("daemonsets")
        try:
            self.api.create("daemonsets", self.namespace, body)
        except K8sError as exc:
            if exc.status == 409:  # a DaemonSet of that name this collection did not make (it has no prepull label)
                raise K8sError(f"{self.what}: a DaemonSet of that name exists and is not a pre-pull; the pre-pull "
                               "needs that name (rename or delete it)", 409) from None  # fmt: skip
            raise
        self.say_now(f"{self.what} created: {plural(len(self.images), 'image')} ({preview(list(self.images))}) "
                     f"on {plural(len(self.waiting), 'node')}")  # fmt: skip
        for node in self.waiting:
            self.states[node] = _preflight.pull_state(None)
        self.unsettled = set(self.waiting)

    def create_owner(self, metadata: Obj, seconds: int) -> Obj | None:
        """The pod-less Job that garbage-collects the DaemonSet if this run is killed (None: not allowed, warned)."""
        job = _preflight.prepull_owner(metadata, seconds, self.params["prepull_pause_image"])
        self.made.append("jobs")
        for _attempt in range(2):
            try:
                return self.api.create("jobs", self.namespace, job)
            except K8sError as exc:
                if exc.status == 403:
                    self.request.warn(f"{self.what} has no owner Job ({exc}): if this run is killed, the next "
                                      "ds_preflight run in the namespace deletes it once it has expired")  # fmt: skip
                    return None
                if exc.status != 409 or not self.clear_job():
                    raise
        return None

    def clear_job(self) -> bool:
        """Delete a leftover owner Job of this name (True), when it is a pre-pull's whose run is over."""
        job = self.api.get("jobs", self.namespace, self.name)
        if job is None:
            return True
        meta = job["metadata"]
        holder = (meta.get("annotations") or {}).get(_preflight.PREPULL_HOLDER, "")
        if _preflight.PREPULL_LABEL not in labels(job):
            raise K8sError(f"{self.what}: a Job {self.namespace}/{self.name} exists and is not a pre-pull's owner; "
                           "the pre-pull needs that name (rename or delete it)", 409)  # fmt: skip
        if not (_preflight.expired(job, self.server_now()) or _holder_gone(holder)):
            return False
        self.api.delete("jobs", self.namespace, self.name, {"uid": meta["uid"]}, propagation="Background")
        return True

    # --- while it runs -----------------------------------------------------------------------

    def handle(self, kind: str, obj: Obj) -> None:
        """Keep each waiting node's state as the pods change (one pod at a time: no pass over every node)."""
        if kind == "SYNC":
            self.states = _preflight.pull_states(self.waiting, obj["items"])
            self.unsettled = {node for node, state in self.states.items() if state["state"] not in _preflight.SETTLED}
            return
        node = pod_target_node(obj)
        if node not in self.states:
            return
        self.states[node] = _preflight.pull_state(None if kind == "DELETED" else obj)
        if self.states[node]["state"] in _preflight.SETTLED:
            self.unsettled.discard(node)
        else:
            self.unsettled.add(node)

    def tick(self, force: bool = False) -> None:
        """A progress line when the counts changed (at most one a second) or every PROGRESS_SECONDS."""
        now = time.monotonic()
        if not self.states or (not force and now - self.said_at < 1.0):
            return
        line = _preflight.progress_line(self.what, self.states, now - self.began)
        if force or line.rsplit(" (", 1)[0] != self.said.rsplit(" (", 1)[0] or now - self.said_at >= PROGRESS_SECONDS:
            self.say_now(line)

    def say_now(self, line: str) -> None:
        self.said_at, self.said = time.monotonic(), line
        self.request.say(line)

    # --- after -------------------------------------------------------------------------------

    def remove(self) -> None:
        """Delete what this run created, found by name and run label (a create whose answer was lost counts too);
        its pods go with the DaemonSet (background propagation). What cannot be deleted is reported."""
        with self.api.unstoppable():
            for resource in reversed(self.made):  # the DaemonSet first, then its owner
                try:
                    current = self.api.get(resource, self.namespace, self.name)
                    if current is not None and labels(current).get(_preflight.PREPULL_LABEL) == self.run_id:
                        self.api.delete(resource, self.namespace, self.name, {"uid": current["metadata"]["uid"]},
                                        propagation="Background")  # fmt: skip
                except K8sError as exc:
                    self.left_behind.append(f"{resource}/{self.name}")
                    self.request.warn(f"could not delete {resource} {self.namespace}/{self.name} ({exc}): its owner "
                                      "Job's deadline or the next ds_preflight run removes it")  # fmt: skip


def _prepull(request: Request, api: Api, desired: Obj, images: dict[str, str], checked: Obj) -> Obj | None:
    """The pre-pull's result (``state``: done, timeout, or skipped with a ``reason``), or None when not asked."""
    if not request.params["prepull"]:
        return None
    images = {image: policy for image, policy in images.items() if not _preflight.image_problem(image)}
    ready = {node for node, report in checked["nodes"].items() if report["ready"]}
    if request.check_mode:
        reason = "check mode: no pre-pull (it would create a DaemonSet)"
    elif not images:
        reason = "no new image to pull (the live template uses them all; prepull_images=all pulls them anyway)"
    elif not ready:
        reason = "no ready node would run the DaemonSet"
    else:
        return PrePull(request, api, desired, images, checked["targets"], ready).run()
    return {"state": "skipped", "reason": reason, "images": list(images)}


def preflight(request: Request, api: Api) -> Obj:
    """What ds_preflight returns (see its RETURN)."""
    began = time.monotonic()
    live, desired = _desired(request, api)
    meta = desired["metadata"]
    what = f"pre-flight of DaemonSet {meta['namespace']}/{meta['name']}"
    nodes = api.list_items("nodes", None)
    pods = api.list_items("pods", None, field_selector=NON_TERMINAL)  # one list, whatever the number of nodes
    checked = _preflight.check_nodes(desired, live, nodes, pods)
    summary = checked["summary"]
    findings = checked["findings"] + _preflight.image_findings(_preflight.template_images(desired["spec"]["template"]))
    request.say(f"{what}: {plural(summary['targets'], 'target node')} ({summary['no_fit']} without room), "
                f"{summary['untolerated']} with untolerated taints, {summary['not_selected']} not "
                "selected")  # fmt: skip
    images = _preflight.images_to_pull(desired, live, request.params["prepull_images"] == "all")
    pulled = _prepull(request, api, desired, images, checked)
    if pulled is not None and "states" in pulled:
        states = pulled.pop("states")
        for node, state in states.items():
            checked["nodes"][node]["pull"] = state["state"]
        findings += _preflight.pull_findings(states, pulled["state"] == "timeout")
        summary["pull"] = pulled["counts"]
    ok, msg = _preflight.verdict(findings, what)
    if pulled is not None and pulled["state"] == "skipped":
        msg += f" ({pulled['reason']})"
    result: Obj = {
        "changed": False,
        "ok": ok,
        "msg": msg,
        "findings": findings,
        "summary": summary,
        "nodes": checked["nodes"],
        "images": list(images),
        "prepull": pulled,
        "api_calls": api.calls,
        "elapsed": round(time.monotonic() - began, 2),
    }
    if not ok:
        result["failed"] = True
    return result
