#!/usr/bin/env bash
# The oldest leg of the version matrix (make matrix-oldest; the newest is the rest of make test, in .venv): the
# oldest ansible-core that meta/runtime.yml claims, on its oldest controller Python, from
# tests/requirements-oldest.txt. In a venv of its own (.cache/oldest/venv, made again when that file or this script
# changes), with the collection tarball of `make collection` installed by that ansible-galaxy, it runs
#   1. the unit tests,
#   2. playbooks/lifecycle.yml as `make demo` runs it (docs/examples/ee-ansible.cfg), in a namespace of its own,
#   3. the modules smoke: the integration tests marked `matrix` (with lifecycle.yml, every module and role).
# On KUBECONFIG's cluster, or else the local one (started and stopped by tests/with-cluster.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${KUBECONFIG:-}" ]; then
  exec "$root/tests/with-cluster.sh" "$0" "$@"
fi
began=$SECONDS
dir=$root/.cache/oldest
requirements=$root/tests/requirements-oldest.txt
# kubernetes.core 6.6.0 (galaxy.yml's lower bound; it says requires_ansible >=2.16.0) is not on PyPI by itself: it
# comes from the ansible package that bundles it, with ansible.posix (the tests' json callback; in ansible-core
# 2.17 only a redirect to it), unpacked into the venv's site-packages as that package lays them out.
bundle=ansible==14.5.0
bundled=(ansible_collections/kubernetes/core/ ansible_collections/ansible/posix/)

python=${OLDEST_PYTHON:-$(for p in "$HOME"/.pyenv/versions/3.10*/bin/python3.10 $(command -v python3.10); do
  "$p" -V >/dev/null 2>&1 && { echo "$p"; break; }; done)}
if [ -z "$python" ]; then
  echo "matrix-oldest: no Python 3.10 found (ansible-core 2.17's oldest controller Python); set OLDEST_PYTHON" >&2
  exit 1
fi

venv=$dir/venv
if [ ! -f "$venv/.installed" ] || [ "$requirements" -nt "$venv/.installed" ] || [ "$0" -nt "$venv/.installed" ]; then
  rm -rf "$venv" "$dir/wheels"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    -d "$dir/wheels" "$bundle"
  "$venv/bin/python" - "$dir"/wheels/*.whl "${bundled[@]}" <<'EOF'
import sys, sysconfig, zipfile
wheel, prefixes = sys.argv[1], tuple(sys.argv[2:])
with zipfile.ZipFile(wheel) as bundle:
    bundle.extractall(sysconfig.get_paths()["purelib"], [n for n in bundle.namelist() if n.startswith(prefixes)])
EOF
  rm -rf "$dir/wheels"
  touch "$venv/.installed"
fi

export PATH="$venv/bin:$root/.cache/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$dir/collections" ANSIBLE_HOME="$dir/ansible" KUBEOPS_TEST_COLLECTIONS="$dir/collections"
export K8S_AUTH_KUBECONFIG="$KUBECONFIG"
rm -rf "$dir/collections"
ansible-galaxy collection install --no-deps -p "$dir/collections" "$root"/build/dist/kubeops-daemonset-*.tar.gz >/dev/null
versions=$(python -c 'import sys, ansible.release as a, kubernetes as k
print(f"ansible-core {a.__version__}, Python {sys.version.split()[0]}, kubernetes {k.__version__}")')
echo "matrix-oldest: $versions"

took="setup $((SECONDS - began)) s"
step() { local start=$SECONDS; "$@"; took+=", $1 $((SECONDS - start)) s"; }

cd "$root"
unit() { python -m pytest -q -p no:cacheprovider tests/unit; }
step unit

namespace=matrix-oldest-$(date +%s)
trap 'kubectl delete namespace "$namespace" --wait=false --ignore-not-found >/dev/null' EXIT
kubectl create namespace "$namespace" >/dev/null
lifecycle() {
  ANSIBLE_CONFIG="$root/docs/examples/ee-ansible.cfg" ANSIBLE_LOCALHOST_WARNING=false \
    ansible-playbook kubeops.daemonset.lifecycle -e daemonset_namespace="$namespace" -e lifecycle_cleanup=true
}
step lifecycle

# only the files that hold such tests: the others may need what this venv lacks (test_secrets: ansible-runner)
mapfile -t files < <(grep -l '^@pytest.mark.matrix$' tests/integration/test_*.py)
smoke() { python -m pytest -q -p no:cacheprovider -m matrix "${files[@]}"; }
step smoke
echo "matrix-oldest: $versions: unit tests, lifecycle.yml and modules smoke passed in $((SECONDS - began)) s ($took)"
