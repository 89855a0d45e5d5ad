# kubeops.daemonset: one entry point for the demo, the local cluster and every test.
# `make demo` runs the documented workflow; `make test` runs every test (what .ci/run calls).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
BIN := $(ROOT)/.cache/bin
COLLECTIONS := $(ROOT)/.cache/collections
COLLECTION_DIR := $(COLLECTIONS)/ansible_collections/kubeops/daemonset
NODES ?= 3
# One real node (kubelet + containerd + runc) beside the KWOK ones; REAL_NODES=0 leaves it out.
export REAL_NODES ?= 1
# what a local cluster needs built: the components, and the real node's unless REAL_NODES=0
CLUSTER_DEPS := binaries $(if $(filter 0,$(REAL_NODES)),,real-node)
IMAGES := $(ROOT)/.cache/images

# ansible-core 2.21 needs Python >= 3.12 on the controller: the first working 3.12/3.13 wins.
PYTHON ?= $(shell for p in $$HOME/.pyenv/versions/3.1[23]*/bin/python3.1[23] $$(command -v python3.12 python3.13); do \
	"$$p" -V >/dev/null 2>&1 && { echo "$$p"; break; }; done)

export PATH := $(VENV)/bin:$(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_HOME := $(ROOT)/.cache/ansible
export GOFLAGS := -buildvcs=false
GO_LDFLAGS := -s -w -X k8s.io/component-base/version.gitVersion=v1.37.2 \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37

.PHONY: help venv binaries host-packages real-node collection cluster-up cluster-down demo test lint sanity unit integration molecule bench \
	changelog galaxy-import ee-check docs docs-check docs-packages fleet-up fleet-down fleet-demo matrix-oldest

help:
	@echo "make demo          run playbooks/lifecycle.yml (starts the local cluster unless KUBECONFIG is set)"
	@echo "make test          every test: lint, sanity, unit, docs, integration, molecule, matrix-oldest (what .ci/run calls)"
	@echo "make matrix-oldest the oldest ansible-core claimed (2.17, Python 3.10): unit tests, modules smoke, lifecycle.yml"
	@echo "make fleet-up      start a local fleet (CLUSTERS=N, default 3) and .fleet/inventory.yml; make fleet-down stops it"
	@echo "make fleet-demo    kubeops.daemonset.fleet_update across the local fleet, with its summary"
	@echo "make cluster-up    start the local cluster (NODES=N, default 3; REAL_NODES=0: no real node); make cluster-down stops it"
	@echo "make changelog     CHANGELOG.rst/.md for galaxy.yml's version from changelogs/fragments (antsibull-changelog)"
	@echo "make galaxy-import galaxy-importer on the built tarball; make ee-check: ansible-builder create on the EE"
	@echo "make docs          the docs site (antsibull-docs + Sphinx): build/docs/build/html/index.html; make docs-check: + Chromium"

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	@test -n "$(PYTHON)" || { echo "no Python 3.12 or 3.13 found" >&2; exit 1; }
	"$(PYTHON)" -m venv "$(VENV)"
	"$(VENV)/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
	touch "$@"

# Real upstream components built from Go modules (go.sum pins them); warm rebuilds take seconds.
binaries: $(BIN)/kube $(BIN)/kubectl $(BIN)/etcd $(BIN)/kwok
$(BIN)/kubectl: $(BIN)/kube
	ln -sf kube "$@"
$(BIN)/kube: tests/cluster/kube/go.mod tests/cluster/kube/go.sum tests/cluster/kube/main.go
	cd tests/cluster/kube && CGO_ENABLED=0 go build -trimpath -ldflags "$(GO_LDFLAGS)" -o "$@" .
$(BIN)/etcd: tests/cluster/etcd/go.mod tests/cluster/etcd/go.sum tests/cluster/etcd/main.go
	cd tests/cluster/etcd && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$@" .
$(BIN)/kwok: tests/cluster/kwok/go.mod tests/cluster/kwok/go.sum
	cd tests/cluster/kwok && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$@" sigs.k8s.io/kwok/cmd/kwok

# The real node: the kubelet (in the kube binary), containerd v2 with its runc shim, crictl, a local OCI registry
# and the test images, all from Go modules; runc from Debian (it needs cgo and libseccomp).
real-node: host-packages binaries $(BIN)/kubelet $(BIN)/containerd $(BIN)/crictl $(BIN)/registry \
	$(IMAGES)/pause.tar $(IMAGES)/tool.tar $(IMAGES)/crashloop.tar
# Debian packages the real node needs (runc; ip, which finds the node's address), installed only when missing.
HOST_PACKAGES := runc:runc ip:iproute2
# $(call apt-missing,COMMAND:PACKAGE ...): apt-get installs the packages whose command is missing, and only those.
define apt-missing
	@missing="$$(for pair in $(1); do command -v "$${pair%%:*}" >/dev/null || echo "$${pair#*:}"; done)"; \
	if [ -n "$$missing" ]; then apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
endef
host-packages:
	$(call apt-missing,$(HOST_PACKAGES))
$(BIN)/kubelet: $(BIN)/kube
	ln -sf kube "$@"
$(BIN)/containerd: tests/cluster/containerd/go.mod tests/cluster/containerd/go.sum
	cd tests/cluster/containerd && CGO_ENABLED=0 go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
		-ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=v2.4.2" -o "$(BIN)/" \
		github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
$(BIN)/crictl: tests/cluster/crictl/go.mod tests/cluster/crictl/go.sum
	cd tests/cluster/crictl && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$@" sigs.k8s.io/cri-tools/cmd/crictl
$(BIN)/registry: tests/cluster/registry/go.mod tests/cluster/registry/go.sum
	cd tests/cluster/registry && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$@" \
		github.com/distribution/distribution/v3/cmd/registry
# Static Go programs of this repository packed into OCI image tarballs by mkoci (standard library only).
IMAGE_SOURCES := $(wildcard tests/cluster/images/*/*.go) tests/cluster/images/go.mod
$(IMAGES)/programs: $(IMAGE_SOURCES)
	mkdir -p "$@" && cd tests/cluster/images && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$@/" ./...
	touch "$@"
IMAGE_REGISTRY := registry.kubeops.test/kubeops
$(IMAGES)/pause.tar: $(IMAGES)/programs
	"$</mkoci" pack -name $(IMAGE_REGISTRY)/pause:1 -o "$@" -entrypoint /pause "$</pause:/pause"
$(IMAGES)/tool.tar: $(IMAGES)/programs
	"$</mkoci" pack -name $(IMAGE_REGISTRY)/tool:1 -o "$@" -entrypoint /tool -cmd sleep "$</tool:/tool"
$(IMAGES)/crashloop.tar: $(IMAGES)/programs
	"$</mkoci" pack -name $(IMAGE_REGISTRY)/crashloop:1 -o "$@" -entrypoint /tool -cmd exit,1 "$</tool:/tool"

# The collection as users get it: built with ansible-galaxy and installed; tests run against this copy.
# Installed beside and swapped in, so runs that use the previous copy are not cut off mid-task.
collection: venv
	rm -rf "$(ROOT)/build/dist" "$(COLLECTION_DIR).new" "$(COLLECTION_DIR).old"
	ansible-galaxy collection build --force --output-path "$(ROOT)/build/dist" . >/dev/null
	ANSIBLE_COLLECTIONS_PATH="$(ROOT)/build/install" ansible-galaxy collection install --force --no-deps -p "$(ROOT)/build/install" "$(ROOT)"/build/dist/kubeops-daemonset-*.tar.gz >/dev/null
	mkdir -p "$(dir $(COLLECTION_DIR))"
	mv "$(ROOT)/build/install/ansible_collections/kubeops/daemonset" "$(COLLECTION_DIR).new"
	rm -rf "$(ROOT)/build/install"
	if [ -d "$(COLLECTION_DIR)" ]; then mv "$(COLLECTION_DIR)" "$(COLLECTION_DIR).old"; fi
	mv "$(COLLECTION_DIR).new" "$(COLLECTION_DIR)" && rm -rf "$(COLLECTION_DIR).old"
	@echo "installed kubeops.daemonset into $(COLLECTION_DIR)"

cluster-up: venv $(CLUSTER_DEPS)
	python tests/cluster/localcluster.py up --nodes $(NODES) --real-nodes $(REAL_NODES)

cluster-down: venv
	python tests/cluster/localcluster.py down

# A local fleet: CLUSTERS independent KWOK clusters (default 3) and .fleet/inventory.yml, one host per cluster.
CLUSTERS ?= 3
fleet-up: venv binaries
	python tests/cluster/fleet.py up --clusters $(CLUSTERS)

fleet-down: venv
	python tests/cluster/fleet.py down

# fleet_update.yml across the local fleet (started when it is not up): waves, bakes and the fleet's summary.
FLEET_DEMO_ARGS ?= -e '{"update_images": {"fluentd-elasticsearch": "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"}}'
fleet-demo: venv binaries collection
	python tests/cluster/fleet.py status || python tests/cluster/fleet.py up --clusters $(CLUSTERS)
	ANSIBLE_CONFIG="$${ANSIBLE_CONFIG:-$(ROOT)/docs/examples/ee-ansible.cfg}" ANSIBLE_LOCALHOST_WARNING=false \
		ansible-playbook -i .fleet/inventory.yml kubeops.daemonset.deploy -e target_hosts=fleet
	ANSIBLE_CONFIG="$${ANSIBLE_CONFIG:-$(ROOT)/docs/examples/ee-ansible.cfg}" \
		ansible-playbook -i .fleet/inventory.yml kubeops.daemonset.fleet_update -e fleet_bake_seconds=10 $(FLEET_DEMO_ARGS)

# The main job: the documented workflow end to end (lifecycle.yml), on KUBECONFIG's cluster or the local one.
# ansible-playbook checks its workers every 1 ms by default, about 2 CPU-seconds per minute of any long task;
# 10 ms costs a fourth of that and adds no visible delay (docs/benchmarks.md). Only an ansible.cfg sets it.
demo: venv collection
	@if [ -z "$${KUBECONFIG:-}" ]; then $(MAKE) --no-print-directory cluster-up; fi
	KUBECONFIG="$${KUBECONFIG:-$(ROOT)/.cluster/kubeconfig}" K8S_AUTH_KUBECONFIG="$${KUBECONFIG:-$(ROOT)/.cluster/kubeconfig}" \
		ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_CONFIG="$${ANSIBLE_CONFIG:-$(ROOT)/docs/examples/ee-ansible.cfg}" \
		ansible-playbook kubeops.daemonset.lifecycle $(DEMO_ARGS)

# Every test. The cluster-backed part runs on KUBECONFIG's cluster or a local one started and stopped around it.
test: venv $(CLUSTER_DEPS) collection
	$(MAKE) --no-print-directory lint sanity unit galaxy-import ee-check docs-check
	tests/with-cluster.sh $(MAKE) --no-print-directory integration molecule matrix-oldest

lint: venv
	ruff format --check .
	ruff check .
	ansible-lint --profile production
	antsibull-changelog lint

# CHANGELOG.rst, CHANGELOG.md and changelogs/changelog.yaml for galaxy.yml's version from changelogs/fragments/
# (which it removes); run again, it only renders the files anew.
changelog: venv
	antsibull-changelog lint
	antsibull-changelog release

unit: venv
	pytest -q tests/unit

# galaxy-importer (Galaxy's import: metadata, every plugin's docs through ansible-doc, READMEs, ansible-lint, the
# changelog) on the tarball as ansible-galaxy builds it; tests/galaxy_import.py says how it runs and what it checks.
galaxy-import: venv
	rm -rf "$(ROOT)/build/galaxy-import" && mkdir -p "$(ROOT)/build/galaxy-import"
	ansible-galaxy collection build --force --output-path "$(ROOT)/build/galaxy-import" . >/dev/null
	python tests/galaxy_import.py "$(ROOT)"/build/galaxy-import/kubeops-daemonset-*.tar.gz

# The execution environment of docs/examples/execution-environment.yml: `ansible-builder create` (no container
# engine here) and a check of the build context it writes (tests/ee_check.py).
ee-check: venv
	rm -rf "$(ROOT)/build/ee" && mkdir -p "$(ROOT)/build/ee"
	ansible-galaxy collection build --force --output-path "$(ROOT)/build/ee" . >/dev/null
	python tests/ee_check.py "$(ROOT)"/build/ee/kubeops-daemonset-*.tar.gz

# The fleet's tests run on clusters of their own (tests/integration/test_fleet.py), mostly waiting on them: they run
# beside the rest, their report printed after it.
integration: venv $(CLUSTER_DEPS) collection
	rm -f "$(ROOT)/build/test-fleet.log" && mkdir -p "$(ROOT)/build"
	pytest -q -p no:cacheprovider tests/integration/test_fleet.py >"$(ROOT)/build/test-fleet.log" 2>&1 & fleet=$$!; \
		pytest -q --durations=15 tests/integration --ignore=tests/integration/test_fleet.py; main=$$?; \
		wait $$fleet; fleet_rc=$$?; echo "--- tests/integration/test_fleet.py"; cat "$(ROOT)/build/test-fleet.log"; \
		exit $$(( main || fleet_rc ))

# The version matrix's oldest leg (the newest is .venv's, the rest of make test): tests/matrix-oldest.sh.
matrix-oldest: venv $(CLUSTER_DEPS) collection
	tests/matrix-oldest.sh

# collection mode: molecule finds extensions/molecule/ from the directory that holds galaxy.yml
molecule: venv $(CLUSTER_DEPS) collection
	molecule test --all

# ansible-test wants the collection at .../ansible_collections/kubeops/daemonset: sanity runs on a copy of the tree.
SANITY_DIR := $(ROOT)/.cache/sanity/ansible_collections/kubeops/daemonset
# the pip version ansible-test bootstraps into its sanity venvs (tests/sanity/get_pip.py stands in for its download)
PIP_BOOTSTRAP_VERSION = $(shell sed -n "s/^ *pip='\([0-9.]*\)',/\1/p" \
	$(VENV)/lib/python3.1*/site-packages/ansible_test/_internal/python_requirements.py | tr . _)
sanity: venv
	install -D -m 0644 tests/sanity/get_pip.py "$$HOME/.ansible/test/cache/get_pip_$(PIP_BOOTSTRAP_VERSION).py"
	rm -rf "$(SANITY_DIR)" && mkdir -p "$(SANITY_DIR)"
	git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -P -t "$(SANITY_DIR)/"
	# the dependency, beside it as ansible-galaxy would install it (validate-modules reads its doc fragments)
	mkdir -p "$(SANITY_DIR)/../../kubernetes" && rm -rf "$(SANITY_DIR)/../../kubernetes/core"
	cp -r "$$(python -c 'import ansible_collections.kubernetes.core as c; print(c.__path__[0])')" "$(SANITY_DIR)/../../kubernetes/core"
	# its own git repository: the enclosing checkout ignores .cache/, and ansible-test lists files through git
	cd "$(SANITY_DIR)" && git init -q && git add -A && ansible-test sanity --venv --requirements --python 3.12 $(SANITY_ARGS)

# The docs site of the installed collection (antsibull-docs + Sphinx, nitpicky): the modules', filters' and roles'
# reference from their own documentation, and docs/docsite/ (the guide; the playbooks' page, generated from
# playbooks/ by tests/docs_playbooks.py). Then build.sh's two steps (with tests/docs-antsibull.cfg), except that
# Sphinx writes its warnings to a file instead of failing on them (its standard error is shown only if it fails):
# tests/docs_check.py fails on any warning but those of an offline build (tests/docs-allowed-warnings.txt).
# GIT_CEILING_DIRECTORIES: the linter copies a collection inside a Git work tree with `git ls-files`, which lists
# nothing of the installed copy (.cache/ is ignored).
DOCS := $(ROOT)/build/docs
ANTSIBULL_DOCS := antsibull-docs --config-file "$(ROOT)/tests/docs-antsibull.cfg"
docs: venv collection
	python tests/docs_playbooks.py --check
	python tests/docs_check.py links "$(COLLECTION_DIR)"
	GIT_CEILING_DIRECTORIES="$(ROOT)" $(ANTSIBULL_DOCS) lint-collection-docs --plugin-docs --check-extra-docs-refs \
		"$(COLLECTION_DIR)"
	rm -rf "$(DOCS)" && mkdir -p "$(DOCS)" && chmod 0755 "$(DOCS)"
	antsibull-docs sphinx-init --use-current --squash-hierarchy --dest-dir "$(DOCS)" --title kubeops.daemonset \
		--project kubeops.daemonset --copyright "kubeops.daemonset developers" kubeops.daemonset >/dev/null
	cd "$(DOCS)" && chmod og-w rst && $(ANTSIBULL_DOCS) collection --cleanup everything --fail-on-error --use-current \
		--squash-hierarchy --dest-dir rst kubeops.daemonset >/dev/null
	cd "$(DOCS)" && sphinx-build -M html rst build -c . -q -w warnings.log 2>sphinx-stderr.log || \
		{ cat sphinx-stderr.log >&2; exit 1; }
	python tests/docs_check.py warnings "$(DOCS)/warnings.log"
	@echo "the docs site: $(DOCS)/build/html/index.html"

# make docs, then one page in headless Chromium: a screenshot (build/docs-check/) and the page's content asserted.
docs-check: docs docs-packages
	python tests/docs_check.py page "$(DOCS)/build/html" "$(ROOT)/build/docs-check"
# Debian's Chromium for docs-check, installed only when missing.
docs-packages:
	$(call apt-missing,chromium:chromium)
