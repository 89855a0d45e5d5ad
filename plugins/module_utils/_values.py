# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Plain values the API and people exchange: resource quantities, times, and counted words in messages.

Floor 1 (pure): no I/O, no imports from this collection.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import typing as t
from datetime import datetime, timezone

try:
    import yaml

    YAML_ERRORS: tuple[type[Exception], ...] = (ValueError, yaml.YAMLError)
    _YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when PyYAML was built with it
except ImportError:  # YAML text is then read as JSON only
    yaml = None
    YAML_ERRORS = (ValueError,)

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)$")
_SUFFIXES = {
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip


def parse_quantity(value: t.Any) -> float:
    """A resource.Quantity (``100m``, ``200Mi``, ``1e3``, ``4``) as a float (cores, bytes, count)."""
    if isinstance(value, (int, float)):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"invalid quantity {value!r}")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def format_quantity(resource: str, value: float) -> str:
    """Human form: cpu in millicores, memory-like in Mi/Gi, counts as integers."""
    if resource == "cpu":
        return f"{round(value * 1000)}m"
    if resource == "pods" or not (resource == "memory" or "storage" in resource):
        return f"{value:g}"
    if value >= 2**30 and value % 2**30 == 0:
        return f"{value / 2**30:g}Gi"
    return f"{value / 2**20:g}Mi"


def resolved_int_or_percent(value: t.Any, total: int, default: int, round_up: bool = True) -> int:
    """An IntOrString such as maxUnavailable resolved against TOTAL; percentages round up, as the controller does
    (down with ROUND_UP false, for budgets that must never allow more than the percentage)."""
    if value is None:
        return default
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def yaml_documents(text: str) -> list[t.Any]:
    """The documents of a YAML (or JSON) text, empty ones left out; ValueError saying where it is broken."""
    try:
        return [json.loads(text)]  # kubeconfigs are often JSON, which parses a hundred times faster
    except ValueError:
        if yaml is None:
            raise
    try:  # str(): libyaml takes no str subclass (Ansible's tagged and unsafe strings are ones)
        return [doc for doc in yaml.load_all(str(text), Loader=_YAML_LOADER) if doc is not None]
    except YAML_ERRORS as exc:
        raise ValueError(str(exc)) from exc


# --- time ------------------------------------------------------------------------------------


def parse_time(value: str | None) -> datetime | None:
    """RFC 3339 Time or MicroTime as an aware datetime (None for None)."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def seconds_between(later: datetime | None, earlier: datetime | None) -> float | None:
    return None if later is None or earlier is None else (later - earlier).total_seconds()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(when: datetime, milliseconds: bool = False) -> str:
    """``2026-01-05T10:00:00Z`` (or with ``.120`` milliseconds), the form the API and kubectl write."""
    text = when.astimezone(timezone.utc).isoformat(timespec="milliseconds" if milliseconds else "seconds")
    return text.replace("+00:00", "Z")


def http_date_time(header: str | None) -> datetime | None:
    """A response's ``Date`` header (the API server's clock) as an aware datetime."""
    return email.utils.parsedate_to_datetime(header) if header else None


# --- words -----------------------------------------------------------------------------------


def plural(count: int, word: str) -> str:
    """``1 node``, ``3 nodes``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def preview(names: t.Sequence[str], limit: int = 3) -> str:
    """``a, b, c, ...``: the first LIMIT names of a list."""
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def counted_names(names: t.Sequence[str], word: str = "node", limit: int = 5) -> str:
    """``3 nodes (a, b, c)`` with at most LIMIT names; ``no nodes`` for none."""
    return f"{plural(len(names), word)} ({preview(names, limit)})" if names else f"no {word}s"


def natural_key(name: str) -> list[t.Any]:
    """Sort key putting ``node-2`` before ``node-10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
