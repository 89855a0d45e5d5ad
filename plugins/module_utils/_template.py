# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pod templates: equality, the patch that changes one, and diffs between two.

Equality rule: a ControllerRevision's ``data`` is the DaemonSet's ``spec.template`` exactly as the API server
stored it (already defaulted). Two templates are equal when their parsed JSON is equal after dropping ``$patch``
and null values (``creationTimestamp: null`` and an absent key mean the same). kubectl compares the serialized
bytes instead; parsed equality gives the same answer without depending on key order or serializer details.

Floor 1 (pure): API objects in, plain data out.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    CONFIG_HASH,
    RESTARTED_AT,
    Obj,
    RequestError,
    annotations,
)

try:
    import yaml
except ImportError:  # without PyYAML the diffs fall back to (YAML-compatible) JSON
    yaml = None


class TemplateError(RequestError):
    """A template change that cannot be made as asked; the message says what the template has."""


def normalized(value: t.Any) -> t.Any:
    """VALUE without null values and ``$patch`` directives (what equality and diffs compare)."""
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items() if v is not None and k != "$patch"}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def templates_equal(first: Obj, second: Obj) -> bool:
    """Semantic equality of two pod templates (see the module docstring for the rule)."""
    return normalized(first) == normalized(second)


# --- changing a template ---------------------------------------------------------------------


def pod_template_of(source: Obj, origin: str = "the manifest") -> Obj:
    """The pod template in SOURCE: a DaemonSet manifest's ``spec.template``, or SOURCE itself when it is one.

    Another kind of manifest is refused (its template would silently replace the DaemonSet's); ORIGIN names
    SOURCE in the messages.
    """
    if "kind" in source or "apiVersion" in source:
        if source.get("kind") != "DaemonSet":
            kind = source.get("kind") or "manifest without kind"
            raise TemplateError(f"{origin} is a {kind}, not a DaemonSet: give a DaemonSet manifest or a pod template")
        template = (source.get("spec") or {}).get("template")
        if not isinstance(template, dict):
            raise TemplateError(f"{origin}: the DaemonSet manifest has no spec.template")
        return template
    if not isinstance(source.get("spec"), dict) or not (source["spec"].get("containers")):
        raise TemplateError(f"{origin}: a pod template needs spec.containers (or give a whole DaemonSet manifest)")
    return source


def container_names(template: Obj) -> tuple[list[str], list[str]]:
    """(containers, init containers) of a pod template, by name."""
    spec = template.get("spec") or {}
    return (
        [c["name"] for c in spec.get("containers") or []],
        [c["name"] for c in spec.get("initContainers") or []],
    )


def _check_names(template: Obj, asked: t.Iterable[str]) -> None:
    containers, init = container_names(template)
    unknown = sorted(set(asked) - set(containers) - set(init))
    if unknown:
        raise TemplateError(
            f"no container named {', '.join(unknown)} in the pod template; containers: {', '.join(containers)}"
            + (f"; init containers: {', '.join(init)}" if init else "")
        )


def template_patch(
    live_template: Obj,
    template: Obj | None = None,
    images: dict[str, str] | None = None,
    resources: dict[str, Obj] | None = None,
) -> Obj | None:
    """The ``spec.template`` part of a strategic-merge patch, or None when nothing is asked.

    TEMPLATE: a whole pod template, replacing the live one (as an undo does). IMAGES: container name -> image,
    RESOURCES: container name -> ``resources`` (replacing that container's as a whole), for containers and init
    containers, merged by name like ``kubectl set image`` / ``kubectl set resources``. An unknown container name
    raises TemplateError listing the containers there are.
    """
    if template is not None:
        return {"$patch": "replace", **template}
    images, resources = images or {}, resources or {}
    if not images and not resources:
        return None
    _check_names(live_template, [*images, *resources])
    containers, init = container_names(live_template)
    spec: Obj = {}
    for key, names in (("containers", containers), ("initContainers", init)):
        entries = []
        for name in sorted(set(images) | set(resources)):
            if name not in names:
                continue
            entry: Obj = {"name": name}
            if name in images:
                entry["image"] = images[name]
            if name in resources:
                entry["resources"] = {"$patch": "replace", **resources[name]}
            entries.append(entry)
        if entries:
            spec[key] = entries
    return {"spec": spec}


def check_container_changes(images: dict[str, t.Any] | None, resources: dict[str, t.Any] | None) -> None:
    """RequestError for an ``images`` value that is no image reference or a ``resources`` value that is no mapping
    (the options of ds_update and ds_preflight), before anything is read."""
    for container, image in (images or {}).items():
        if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
            raise RequestError(f"images: container {container} needs an image reference (got {image!r})")
    for container, value in (resources or {}).items():
        if not isinstance(value, dict):
            raise RequestError(f"resources: container {container} needs a resources mapping (got {value!r})")


def restart_patch(stamp: str, extra_annotations: dict[str, str] | None = None) -> Obj:
    """The ``spec.template`` patch of ``kubectl rollout restart``: the restartedAt annotation (plus EXTRA)."""
    return {"metadata": {"annotations": {RESTARTED_AT: stamp, **(extra_annotations or {})}}}


_CONFIG_KINDS = {"configmap": "configmap", "configmaps": "configmap", "cm": "configmap", "secret": "secret",
                 "secrets": "secret"}  # fmt: skip


def parse_config_reference(reference: str) -> tuple[str, str]:
    """``configmap/NAME`` or ``secret/NAME`` (kubectl's spelling, also ``cm/NAME``) -> (kind, name)."""
    kind, _slash, name = str(reference).partition("/")
    if kind.lower() not in _CONFIG_KINDS or not name or "/" in name:
        raise TemplateError(f"when_changed: {reference!r} is not configmap/NAME or secret/NAME")
    return _CONFIG_KINDS[kind.lower()], name


def config_hash(objects: list[Obj]) -> str:
    """A digest of the data of ConfigMaps and Secrets (kind, name, data, binaryData; nothing else counts), the same
    whatever the order they are given in. It shows no value: a Secret's content cannot be read back from it."""
    content = sorted(
        [obj.get("kind", ""), obj["metadata"]["name"], obj.get("data") or {}, obj.get("binaryData") or {}]
        for obj in objects
    )
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]


def template_config_hash(template: Obj) -> str | None:
    """The configuration hash the pod template carries (set by the last ``when_changed`` restart)."""
    return annotations(template).get(CONFIG_HASH)


# --- diffs -----------------------------------------------------------------------------------


def to_yaml(obj: t.Any) -> str:
    """Block YAML with sorted keys (JSON without PyYAML), stable for diffs."""
    if yaml is None:
        return json.dumps(obj, indent=2, sort_keys=True) + "\n"
    return yaml.safe_dump(obj, default_flow_style=False, sort_keys=True)


def template_diff(before: Obj, after: Obj, before_label: str, after_label: str) -> str:
    """Unified diff of two templates rendered as YAML; empty when they are equal."""
    return "".join(
        difflib.unified_diff(
            to_yaml(normalized(before)).splitlines(keepends=True),
            to_yaml(normalized(after)).splitlines(keepends=True),
            fromfile=before_label,
            tofile=after_label,
        )
    )


def _keyed(items: list[t.Any]) -> dict[str, t.Any] | None:
    """Lists of named objects (containers, volumes, env...) keyed by name, as strategic merge does."""
    if items and all(isinstance(i, dict) and "name" in i for i in items):
        names = [i["name"] for i in items]
        if len(set(names)) == len(names):
            return {f"[name={i['name']}]": i for i in items}
    return None


def _flatten(value: t.Any, path: str, out: dict[str, t.Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list) and value:
        keyed = _keyed(value)
        if keyed is not None:
            for key, item in keyed.items():
                _flatten(item, path + key, out)
        else:
            for index, item in enumerate(value):
                _flatten(item, f"{path}[{index}]", out)
    else:
        out[path] = value


def template_changes(before: Obj, after: Obj) -> list[Obj]:
    """Leaf-level changes ``{path, before, after}`` (None = absent), paths like
    ``spec.containers[name=app].image``, sorted by path."""
    flat_before: dict[str, t.Any] = {}
    flat_after: dict[str, t.Any] = {}
    _flatten(normalized(before), "", flat_before)
    _flatten(normalized(after), "", flat_after)
    return [
        {"path": path, "before": flat_before.get(path), "after": flat_after.get(path)}
        for path in sorted(set(flat_before) | set(flat_after))
        if flat_before.get(path) != flat_after.get(path)
    ]
