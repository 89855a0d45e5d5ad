# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The DaemonSet to apply: read from a manifest (exactly one DaemonSet, checked before anything is sent), built
from a few values, and given its name, namespace, change-cause and update strategy.

Floor 1 (pure): plain data in, plain data out.
"""

from __future__ import annotations

import copy
import re
import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    CHANGE_CAUSE,
    Obj,
    RequestError,
    check_names,
    selector_matches,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import yaml_documents

_PERCENT = re.compile(r"^(\d+)%$")
STRATEGY_TYPES = ("RollingUpdate", "OnDelete")


class ManifestError(RequestError):
    """A manifest that is not one valid DaemonSet; the message says what it holds instead."""


def _documents(text: str, origin: str) -> list[t.Any]:
    try:
        return yaml_documents(text)
    except ValueError as exc:
        raise ManifestError(f"{origin} is not valid YAML: {exc}") from exc


def parsed(value: t.Any, name: str) -> Obj:
    """A dict option that may also come as YAML or JSON text (AWX surveys, ``-e key='{...}'``)."""
    if isinstance(value, str):
        documents = _documents(value, name)
        if len(documents) > 1:
            raise RequestError(f"{name} holds {len(documents)} YAML documents; give one")
        value = documents[0] if documents else None
    if not isinstance(value, dict):
        raise RequestError(f"{name} must be a mapping (or the YAML text of one)")
    return value


def one_daemonset(source: t.Any, origin: str = "the manifest") -> Obj:
    """The DaemonSet in SOURCE (a dict, or YAML text of one or more documents); other documents are ignored."""
    documents = _documents(source, origin) if isinstance(source, str) else [source]
    found = [doc for doc in documents if isinstance(doc, dict) and doc.get("kind") == "DaemonSet"]
    if len(found) != 1:
        kinds = [str(doc.get("kind")) if isinstance(doc, dict) else type(doc).__name__ for doc in documents]
        holds = ", ".join(kinds) or "nothing"
        raise ManifestError(f"{origin} holds {len(found)} DaemonSets ({holds}); it needs exactly one")
    daemonset = copy.deepcopy(found[0])
    check_daemonset(daemonset, origin)
    return daemonset


def check_daemonset(daemonset: Obj, origin: str = "the manifest") -> None:
    """What the API server would refuse, said before anything is sent (with what to change)."""
    if daemonset.get("apiVersion") != "apps/v1":
        raise ManifestError(f"{origin}: a DaemonSet is apiVersion apps/v1 (got {daemonset.get('apiVersion')!r})")
    spec = daemonset.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("template"), dict):
        raise ManifestError(f"{origin}: the DaemonSet has no spec.template")
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        raise ManifestError(f"{origin}: the DaemonSet has no spec.selector (give matchLabels that its pods carry)")
    template_labels = (spec["template"].get("metadata") or {}).get("labels") or {}
    try:
        matches = selector_matches(selector, template_labels)
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{origin}: spec.selector is not a valid label selector: {exc}") from exc
    if not matches:
        raise ManifestError(
            f"{origin}: spec.selector {selector} does not match the pod template's labels {template_labels}; "
            "the API server refuses such a DaemonSet"
        )
    if not ((spec["template"].get("spec") or {}).get("containers")):
        raise ManifestError(f"{origin}: the pod template has no containers")


def int_or_percent(value: t.Any, name: str) -> int | str:
    """An IntOrString budget as the API wants it: ``1`` (an int, also from the text "1", as AWX surveys send it)
    or ``"10%"``."""
    if isinstance(value, bool):
        raise RequestError(f"{name} must be a number or a percentage such as 1 or 10% (got {value!r})")
    if isinstance(value, int) and value >= 0:
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    percent = _PERCENT.match(text)
    if percent and int(percent.group(1)) <= 100:
        return text
    raise RequestError(f"{name} must be a number or a percentage such as 1 or 10% (got {value!r})")


def strategy_spec(strategy: Obj, prefix: str = "") -> tuple[Obj, int]:
    """(``spec.updateStrategy``, ``spec.minReadySeconds``) for STRATEGY ``{type, max_unavailable, max_surge,
    min_ready_seconds}``; RequestError naming the option (PREFIX + its name: the deploy role's variables are
    ``deploy_max_surge`` ...) when one is invalid."""
    kind = strategy.get("type") or "RollingUpdate"
    if kind not in STRATEGY_TYPES:
        raise RequestError(f"strategy type must be RollingUpdate or OnDelete (got {kind!r})")
    min_ready = int(strategy.get("min_ready_seconds") or 0)
    if min_ready < 0:
        raise RequestError(f"{prefix}min_ready_seconds must not be negative (got {min_ready})")
    if kind == "OnDelete":
        return {"type": "OnDelete"}, min_ready
    unavailable = int_or_percent(strategy.get("max_unavailable", 1), f"{prefix}max_unavailable")
    surge = int_or_percent(strategy.get("max_surge", 0), f"{prefix}max_surge")
    if str(unavailable) in ("0", "0%") and str(surge) in ("0", "0%"):
        raise RequestError(f"{prefix}max_unavailable and {prefix}max_surge cannot both be 0 (nothing could roll)")
    return {"type": kind, "rollingUpdate": {"maxUnavailable": unavailable, "maxSurge": surge}}, min_ready


def prepare(daemonset: Obj, name: str | None, namespace: str | None, change_cause: str | None,
            strategy: Obj | None) -> Obj:  # fmt: skip
    """The definition to apply: DAEMONSET with its name and namespace (given ones win, else the manifest's, else
    ``default``), the change-cause in the same write and, when given, the update strategy."""
    definition = copy.deepcopy(daemonset)
    metadata = definition.setdefault("metadata", {})
    metadata["name"] = name or metadata.get("name")
    metadata["namespace"] = namespace or metadata.get("namespace") or "default"
    if not metadata["name"]:
        raise ManifestError("the DaemonSet has no name; give name or metadata.name in the manifest")
    check_names(metadata["name"], metadata["namespace"], "the DaemonSet's ")  # before any request is sent
    if change_cause:
        metadata.setdefault("annotations", {})[CHANGE_CAUSE] = change_cause
    if strategy is not None:
        definition["spec"]["updateStrategy"], definition["spec"]["minReadySeconds"] = strategy_spec(strategy)
    return definition


def build_daemonset(name: str, image: str, container_name: str = "", resources: Obj | None = None,
                    tolerations: list[Obj] | None = None, volumes: list[Obj] | None = None,
                    volume_mounts: list[Obj] | None = None, env: list[Obj] | None = None,
                    labels: dict[str, str] | None = None, selector: dict[str, str] | None = None,
                    node_selector: dict[str, str] | None = None) -> Obj:  # fmt: skip
    """A DaemonSet with one container, from a few values (the deploy role's ``deploy_image`` and friends).

    The selector (default ``app.kubernetes.io/name: NAME``) is also put on the pods, with LABELS."""
    if not name or not image:
        raise RequestError("a DaemonSet built from an image needs both a name and an image")
    selector = dict(selector or {"app.kubernetes.io/name": name})
    container: Obj = {"name": container_name or name, "image": image}
    for key, value in (("resources", resources), ("env", env), ("volumeMounts", volume_mounts)):
        if value:
            container[key] = value
    pod_spec: Obj = {"containers": [container]}
    for key, value in (("tolerations", tolerations), ("volumes", volumes), ("nodeSelector", node_selector)):
        if value:
            pod_spec[key] = value
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "labels": dict(labels or {})},
        "spec": {
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": {**selector, **(labels or {})}}, "spec": pod_spec},
        },
    }
