"""kubeops.daemonset.fleet_update on a real local fleet of 3 clusters (tests/cluster/fleet.py: each its own API
server, controller-manager, scheduler and KWOK nodes): every wave, a failure in the second wave that rolls the
canary back to its recorded revision, an interrupted run that resumes, check mode through ansible-runner (as AWX
runs it) with the summary in the job's artifacts, and bad waves refused before anything changes. Each cluster's
state is checked with kubectl on that cluster."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import typing as t
from pathlib import Path

import ansible_runner
import pytest
import yaml

pytestmark = pytest.mark.slow

NAME = "fluentd-elasticsearch"
V1_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.5.2"
V2_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
BROKEN_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:does-not-exist"
CLUSTERS = ["cluster-1", "cluster-2", "cluster-3"]
SEED_MANIFEST = Path(__file__).resolve().parents[2] / "playbooks/files/fluentd-daemonset.yaml"


@pytest.fixture
def namespace(fleet) -> t.Iterator[str]:
    """A namespace on every cluster with the seed's DaemonSet rolled out at revision 1."""
    name = f"fleet-{secrets.token_hex(3)}"
    manifest = yaml.safe_load(SEED_MANIFEST.read_text())
    manifest["metadata"]["namespace"] = name
    for cluster in CLUSTERS:
        fleet.kubectl(cluster, "create", "namespace", name)
        fleet.kubectl(cluster, "apply", "-f", "-", input=json.dumps(manifest))
    for cluster in CLUSTERS:
        fleet.kubectl(cluster, "rollout", "status", f"ds/{NAME}", "-n", name, "--timeout=120s")
    yield name
    for cluster in CLUSTERS:
        fleet.kubectl(cluster, "delete", "namespace", name, "--wait=false", check=False)


def waves(namespace: str, **more: t.Any) -> dict[str, t.Any]:
    """Extra variables: one cluster per wave, a short bake and a short progress deadline."""
    return {"daemonset_namespace": namespace, "fleet_waves": [1, 1, 1], "fleet_bake_seconds": 3,
            "update_timeout": 120, "update_progress_deadline": 20, **more}  # fmt: skip


def summary(output: str) -> dict[str, str]:
    """The fleet's summary table in the output (its rows are JSON strings there): cluster -> the rest of its row."""
    rows = [line.strip().strip('",') for line in output.splitlines() if line.strip().startswith('"cluster-')]
    return {row.split()[0]: " ".join(row.split()[1:]) for row in rows}


def test_a_good_image_goes_through_every_wave_and_a_rerun_changes_nothing(fleet, namespace):
    done = fleet.run(waves(namespace, update_images={NAME: V2_IMAGE}))
    assert done.returncode == 0, done.stdout[-3000:]
    table = summary(done.stdout)
    assert [table[c].rsplit(" ", 1)[0] for c in CLUSTERS] == [f"{wave} 1 2 updated" for wave in (1, 2, 3)], table
    assert "baked 3s: no pod restarted or replaced" in done.stderr + done.stdout
    for cluster in CLUSTERS:
        assert fleet.image(cluster, namespace) == V2_IMAGE
        status = fleet.kubectl(cluster, "rollout", "status", f"ds/{NAME}", "-n", namespace, "--watch=false")
        assert "successfully rolled out" in status.stdout
        annotations = fleet.daemonset(cluster, namespace)["metadata"]["annotations"]
        assert annotations["daemonset.kubeops.io/revision-before"] == "1"

    before = fleet.state(namespace)
    again = fleet.run(waves(namespace, update_images={NAME: V2_IMAGE}))
    assert again.returncode == 0, again.stdout[-3000:]
    assert [summary(again.stdout)[c] for c in CLUSTERS] == [f"{w} 2 2 already at target -" for w in (1, 2, 3)]
    assert "changed=0" in again.stdout and "changed=1" not in again.stdout
    assert fleet.state(namespace) == before


def test_a_broken_image_fails_in_the_second_wave_and_the_canary_goes_back(fleet, namespace, tmp_path):
    # the canary's and the last cluster's image is good, the second wave's is broken (a per-cluster value)
    inventory = fleet.write_inventory(tmp_path / "inventory.yml", {
        "cluster-1": {"update_images": {NAME: V2_IMAGE}},
        "cluster-2": {"update_images": {NAME: BROKEN_IMAGE}},
        "cluster-3": {"update_images": {NAME: V2_IMAGE}},
    })  # fmt: skip
    untouched = fleet.state(namespace)["cluster-3"]
    failed = fleet.run(waves(namespace), inventory)
    assert failed.returncode != 0
    assert "fleet update halted: wave 2 failed on cluster-2 (0 failures allowed)" in failed.stdout, failed.stdout[
        -4000:
    ]
    table = summary(failed.stdout)
    assert table["cluster-1"].startswith("1 1 3 updated, rolled back to revision 1 "), table
    assert table["cluster-2"].startswith("2 1 3 failed, rolled back to revision 1 "), table
    assert table["cluster-3"] == "3 1 1 untouched -", table
    for cluster, tried in (("cluster-1", V2_IMAGE), ("cluster-2", BROKEN_IMAGE)):
        # ds_undo to revision 1: its template is live again, as revision 3 (kubectl rollout undo's numbering)
        assert fleet.image(cluster, namespace) == V1_IMAGE
        assert fleet.revisions(cluster, namespace) == {2: tried, 3: V1_IMAGE}
        # the change-cause goes on the DaemonSet (revision 3 is revision 1's object renumbered: it keeps its own)
        cause = fleet.daemonset(cluster, namespace)["metadata"]["annotations"]["kubernetes.io/change-cause"]
        assert cause == "fleet rollback to revision 1 (wave 2 failed)"
        fleet.kubectl(cluster, "rollout", "status", f"ds/{NAME}", "-n", namespace, "--timeout=60s")
    assert fleet.state(namespace)["cluster-3"] == untouched


def test_an_interrupted_run_resumes(fleet, namespace):
    extra = waves(namespace, update_images={NAME: V2_IMAGE}, fleet_bake_seconds=30)
    first = fleet.start(extra)
    first.wait_for("cluster-1: baking 30s", timeout=180)
    os.killpg(first.proc.pid, signal.SIGKILL)  # a dead job: the canary is updated, its bake never ends
    first.finish()
    assert [fleet.image(c, namespace) for c in CLUSTERS] == [V2_IMAGE, V1_IMAGE, V1_IMAGE]

    resumed = fleet.run(dict(extra, fleet_bake_seconds=3))
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    table = summary(resumed.stdout)
    assert table["cluster-1"] == "1 2 2 already at target -", table
    assert [table[c].split()[:4] for c in CLUSTERS[1:]] == [["2", "1", "2", "updated"], ["3", "1", "2", "updated"]]
    for cluster in CLUSTERS:
        assert fleet.image(cluster, namespace) == V2_IMAGE and set(fleet.revisions(cluster, namespace)) == {1, 2}


def test_check_mode_through_ansible_runner_changes_nothing_and_publishes_the_plan(fleet, namespace, tmp_path):
    before = fleet.state(namespace)
    (tmp_path / "awx").mkdir()
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path / "awx"), playbook="kubeops.daemonset.fleet_update",
        inventory=fleet.inventory, extravars=waves(namespace, update_images={NAME: V2_IMAGE}),
        envvars={key: value for key, value in fleet.env.items() if not key.startswith("ANSIBLE_STDOUT")},
        cmdline="--check --diff", quiet=True,
    )  # fmt: skip
    stdout = re.sub(r"\x1b\[[0-9;]*m", "", (Path(runner.config.artifact_dir) / "stdout").read_text())  # colours
    assert runner.rc == 0, stdout[-3000:]
    assert "wave 1: cluster-1 (revision 1 -> the new template)" in stdout, stdout[-3000:]
    added = [line for line in stdout.splitlines() if line.startswith("+") and V2_IMAGE in line]
    assert len(added) == len(CLUSTERS), stdout[-3000:]  # --diff: what each cluster would get
    stats = next(event for event in runner.events if event["event"] == "playbook_on_stats")
    published = stats["event_data"]["artifact_data"]["kubeops_fleet"]
    assert published["halted"] is False
    assert [(row["cluster"], row["wave"], row["outcome"]) for row in published["rows"]] == [
        (cluster, wave, "would update") for wave, cluster in enumerate(CLUSTERS, 1)]  # fmt: skip
    assert fleet.state(namespace) == before


@pytest.mark.parametrize(("extra", "message"), [
    ({"fleet_waves": [1, "no-such-group"]}, "'no-such-group' is neither a size (N or N%) nor a group of the inventory"),
    ({"fleet_waves": []}, "fleet_waves must be a non-empty list"),
    ({"fleet_clusters": "nowhere"}, "fleet_clusters: 'nowhere' is neither a group nor a host of the inventory"),
    ({"fleet_failure_budget": "some"}, "fleet_failure_budget must be a count or a percentage such as 10%"),
    ({"fleet_bake_seconds": -1}, "fleet_bake_seconds must be a whole number"),
])  # fmt: skip
def test_bad_fleet_inputs_fail_before_anything_changes(fleet, namespace, extra, message):
    before = fleet.state(namespace)
    refused = fleet.run(dict(waves(namespace, update_images={NAME: V2_IMAGE}), **extra))
    assert refused.returncode != 0
    assert message in refused.stdout + refused.stderr, (refused.stdout + refused.stderr)[-3000:]
    assert fleet.state(namespace) == before


def test_fleet_up_is_idempotent_and_down_leaves_nothing(tmp_path, running):
    """A second fleet of 2 clusters: up twice changes nothing and writes the same inventory; down stops every
    process of every cluster and removes the fleet's directory."""
    env = dict(os.environ, KUBEOPS_FLEET_DIR=str(tmp_path / "fleet"))
    script = [sys.executable, str(Path(__file__).parents[1] / "cluster" / "fleet.py")]

    def pids() -> dict[str, str]:
        found = (tmp_path / "fleet").glob("cluster-*/pids/*")
        return {f"{p.parent.parent.name}/{p.name}": p.read_text() for p in found if not p.suffix}  # no .argv

    try:
        subprocess.run([*script, "up", "--clusters", "2", "--nodes", "1"], env=env, check=True, capture_output=True)
        started, inventory = pids(), (tmp_path / "fleet" / "inventory.yml").read_text()
        assert len(started) == 2 * 5 and list(yaml.safe_load(inventory)["all"]["children"]["fleet"]["hosts"]) == [
            "cluster-1", "cluster-2"]  # fmt: skip
        again = subprocess.run([*script, "up", "--clusters", "2", "--nodes", "1"], env=env, check=True,
                               capture_output=True, text=True)  # fmt: skip
        assert again.stdout.count("already up") == 2
        assert pids() == started and (tmp_path / "fleet" / "inventory.yml").read_text() == inventory
        assert subprocess.run([*script, "status"], env=env, check=False).returncode == 0
    finally:
        subprocess.run([*script, "down"], env=env, check=True, capture_output=True)
    assert not (tmp_path / "fleet").exists()
    assert not [pid for pid in started.values() if running(pid)]
    assert subprocess.run([*script, "status"], env=env, check=False).returncode == 1
