"""``ansible-builder create`` on docs/examples/execution-environment.yml, and a check of the build context it writes.

    python tests/ee_check.py build/ee/kubeops-daemonset-VERSION.tar.gz   (make ee-check)

No container engine here, so no image is built: WORKDIR (the tarball's folder) gets docs/examples/ as the
definition's instructions lay it out (the tarball two folders up), ``ansible-builder create`` writes WORKDIR/context,
and this checks that the image would install this very tarball (from the file ansible-galaxy reads in the image's
galaxy stage, found from the same folder), that the final stage gets the ansible.cfg with internal_poll_interval
0.01 and that ansible-core takes it from that file, and that ansible-builder's scripts and requirements are there.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFINITION = "docs/examples/execution-environment.yml"
FINAL_CONFIG = "COPY _build/configs/ee-ansible.cfg /etc/ansible/ansible.cfg"
SCRIPTS = ("assemble", "check_ansible", "check_galaxy", "entrypoint", "install-from-bindep", "introspect.py")


def run(command: list[str], cwd: Path, **env: str) -> str:
    done = subprocess.run(command, cwd=cwd, env=dict(os.environ, **env), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def check_tarball(build: Path, tarball: Path) -> list[str]:
    """The file entries of the galaxy requirements: this tarball, installable from the galaxy stage's folder."""
    entries = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    files = [entry for entry in entries if entry.get("type") == "file"]
    if not files:
        return [f"{DEFINITION} installs no collection tarball (type: file)"]
    found = []
    for entry in files:
        if not (build / entry["name"]).is_file() or not filecmp.cmp(build / entry["name"], tarball, shallow=False):
            found.append(f"{DEFINITION} installs {entry['name']}, which is not the built {tarball.name}")
    if found:
        return found
    with tempfile.TemporaryDirectory() as target:  # what the image's galaxy stage does, less the Galaxy downloads
        requirements = Path(target) / "requirements.yml"
        requirements.write_text(yaml.safe_dump({"collections": files}))
        # only TARGET counts: a copy installed where ANSIBLE_COLLECTIONS_PATH points (make collection's) would
        # make ansible-galaxy skip the install as "already installed"
        run(["ansible-galaxy", "collection", "install", "--offline", "--no-deps", "--force", "-r", str(requirements),
             "-p", target], build, ANSIBLE_COLLECTIONS_PATH=target)  # fmt: skip
        manifest = Path(target) / "ansible_collections/kubeops/daemonset/MANIFEST.json"
        with tarfile.open(tarball) as built:
            expected = json.load(built.extractfile("MANIFEST.json"))["collection_info"]["version"]
        installed = json.loads(manifest.read_text())["collection_info"]["version"] if manifest.exists() else None
    return [] if installed == expected else [f"the image would install kubeops.daemonset {installed}, not {expected}"]


def check_context(context: Path, tarball: Path) -> list[str]:
    build = context / "_build"
    containerfile = (context / "Containerfile").read_text()
    galaxy, final = [*containerfile.split("FROM base AS final", 1), ""][:2]  # the stages before it, and it
    found = check_tarball(build, tarball)
    if "ansible-galaxy collection install" not in galaxy or "-r requirements.yml" not in galaxy:
        found.append("the Containerfile installs no collections from requirements.yml")
    if FINAL_CONFIG not in final:
        found.append(f"the Containerfile's final stage lacks {FINAL_CONFIG!r}")
    dump = run(["ansible-config", "dump"], context, ANSIBLE_CONFIG=str(build / "configs/ee-ansible.cfg"))
    if "DEFAULT_INTERNAL_POLL_INTERVAL(" not in dump or "ee-ansible.cfg) = 0.01" not in dump:
        found.append("ee-ansible.cfg does not set internal_poll_interval 0.01 for ansible-core")
    if "kubernetes" not in (build / "requirements.txt").read_text():
        found.append("the Python requirements lack kubernetes")
    found += [f"_build/scripts/{name} is missing" for name in SCRIPTS if not (build / "scripts" / name).is_file()]
    return found


def main(tarball: Path) -> int:
    workdir = tarball.parent
    shutil.rmtree(workdir / "docs", ignore_errors=True)
    shutil.copytree(ROOT / "docs/examples", workdir / "docs/examples")
    run(["ansible-builder", "create", "-f", DEFINITION, "-c", "context", "--output-filename", "Containerfile"], workdir)
    found = check_context(workdir / "context", tarball)
    for problem in found:
        print(problem, file=sys.stderr)
    if not found:
        print(f"ansible-builder create: {workdir / 'context'} installs {tarball.name} and sets internal_poll_interval")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
