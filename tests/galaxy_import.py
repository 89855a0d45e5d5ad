"""galaxy-importer on the built collection tarball, as Galaxy imports it, and a check of what it rendered.

    python tests/galaxy_import.py build/galaxy-import/kubeops-daemonset-VERSION.tar.gz   (make galaxy-import)

The importer runs with tests/galaxy-importer.cfg (no container engine here: no ansible-test in its container).

Module docs: ansible-doc resolves the ``kubernetes.core.k8s_auth_options`` fragment only where it finds
kubernetes.core. The importer points ANSIBLE_COLLECTIONS_PATH at its own extraction directory, so a kubernetes.core
installed with ansible-galaxy does not count; one in Python's site-packages does (ansible-core scans sys.path), and
requirements.txt's ``ansible`` package ships kubernetes.core there. Without it the importer logs ansible-doc's error
and still reports success, so this checks that every module's documentation was rendered with the fragment's
options.

Repository: galaxy-importer requires ``repository`` (Galaxy's rule for publishing). galaxy.yml has none while the
collection has no public repository, so the importer gets a copy of the tarball whose MANIFEST.json says
GALAXY_REPOSITORY (a stand-in by default, named in the output); every other file is the built tarball's.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests/galaxy-importer.cfg"
STAND_IN_REPOSITORY = "https://example.invalid/kubeops/daemonset"


def with_repository(tarball: Path, workdir: Path) -> Path:
    """TARBALL itself when its MANIFEST.json names a repository, else a copy in WORKDIR that names one."""
    with tarfile.open(tarball) as source:
        manifest = json.load(source.extractfile("MANIFEST.json"))
        info = manifest["collection_info"]
        if info.get("repository"):
            return tarball
        info["repository"] = os.environ.get("GALAXY_REPOSITORY") or STAND_IN_REPOSITORY
        print(f"galaxy.yml has no repository (Galaxy needs one to publish): imported as {info['repository']}")
        data = json.dumps(manifest, indent=4).encode()
        copy = workdir / tarball.name
        with tarfile.open(copy, "w:gz") as target:
            for member in source.getmembers():
                if member.name == "MANIFEST.json":
                    member.size = len(data)
                    target.addfile(member, io.BytesIO(data))
                else:
                    target.addfile(member, source.extractfile(member) if member.isfile() else None)
    return copy


def problems(result: dict, log: str) -> list[str]:
    """What the importer complained of, and the content it rendered no documentation or README for."""
    found = [line for line in log.splitlines() if line.startswith(("ERROR:", "WARNING:"))]
    if not result["docs_blob"]["collection_readme"].get("html"):
        found.append("the collection's README was not rendered")
    for content in result["docs_blob"]["contents"]:
        kind, name = content["content_type"], content["content_name"]
        if kind in ("module", "filter"):
            doc = (content.get("doc_strings") or {}).get("doc") or {}
            options = {option["name"] for option in doc.get("options") or []}
            if not options:
                found.append(f"{kind} {name}: no documentation rendered")
            elif kind == "module" and "kubeconfig" not in options:
                found.append(f"module {name}: no options of kubernetes.core.k8s_auth_options (no kubernetes.core?)")
        elif kind == "role" and not content.get("readme_html"):
            found.append(f"role {name}: no README rendered")
    return found


def main(tarball: Path) -> int:
    workdir = tarball.parent / "import"
    workdir.mkdir(exist_ok=True)
    imported = with_repository(tarball, workdir)
    env = dict(os.environ, GALAXY_IMPORTER_CONFIG=str(CONFIG))
    command = [sys.executable, "-m", "galaxy_importer.main", str(imported)]
    run = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    log = run.stdout + run.stderr
    (workdir / "importer.log").write_text(log)
    result_file = workdir / "importer_result.json"
    if run.returncode != 0 or not result_file.exists():
        print(log, file=sys.stderr)
        return 1
    found = problems(json.loads(result_file.read_text()), log)
    for problem in found:
        print(problem, file=sys.stderr)
    if not found:
        print(f"galaxy-importer: {tarball.name} imports cleanly (log and result in {workdir})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
