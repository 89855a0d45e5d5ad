#!/usr/bin/env bash
# Run a command against a cluster: the one KUBECONFIG names, or else the local cluster, started here and stopped
# (with every component) when the command ends, whatever its outcome.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${KUBECONFIG:-}" ]; then
  if ! python "$root/tests/cluster/localcluster.py" status >/dev/null 2>&1; then
    trap 'python "$root/tests/cluster/localcluster.py" down' EXIT
    python "$root/tests/cluster/localcluster.py" up
  fi
  export KUBECONFIG="$root/.cluster/kubeconfig"
fi
export K8S_AUTH_KUBECONFIG="$KUBECONFIG"
"$@"
