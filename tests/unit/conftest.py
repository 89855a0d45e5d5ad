"""Unit tests import the working tree as ansible_collections.kubeops.daemonset (through a symlink in .cache)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / ".cache" / "src"
LINK = SRC / "ansible_collections" / "kubeops" / "daemonset"
FIXTURES = Path(__file__).parent / "fixtures"

if not LINK.exists():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    LINK.symlink_to(ROOT, target_is_directory=True)
sys.path.insert(0, str(SRC))
