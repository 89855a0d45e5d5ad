# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.kubeops.daemonset.plugins.plugin_utils._controller import ControllerAction


class ActionModule(ControllerAction):
    """Runs ds_preflight in the controller process when the connection is local (see plugin_utils/_controller)."""
