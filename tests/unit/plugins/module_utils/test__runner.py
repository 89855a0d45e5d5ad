# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether the process that holds a claim (a batch rollout's, a pre-pull's) still runs: real processes of this host."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import pid_alive


def test_a_running_process_is_alive_and_a_killed_unreaped_one_is_not() -> None:
    assert pid_alive(os.getpid())
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert pid_alive(child.pid)
        child.kill()  # not reaped yet: a zombie, as a killed job's workers are until init collects them
        for _attempt in range(100):
            if Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.05)
        assert not pid_alive(child.pid)
    finally:
        child.wait()
    assert not pid_alive(child.pid)
