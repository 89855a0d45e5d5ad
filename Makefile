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

# ansible-core 2.21 needs Python >= 3.12 on the controller: the first working 3.12/3.13 wins.
PYTHON ?= $(shell for p in $$HOME/.pyenv/versions/3.1[23]*/bin/python3.1[23] $$(command -v python3.12 python3.13); do \
	"$$p" -V >/dev/null 2>&1 && { echo "$$p"; break; }; done)

export PATH := $(VENV)/bin:$(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_HOME := $(ROOT)/.cache/ansible
export GOFLAGS := -buildvcs=false
GO_LDFLAGS := -s -w -X k8s.io/component-base/version.gitVersion=v1.37.2 \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37

.PHONY: help venv binaries collection cluster-up cluster-down demo test lint sanity unit integration molecule bench

help:
	@echo "make demo          run playbooks/lifecycle.yml (starts the local cluster unless KUBECONFIG is set)"
	@echo "make test          every test: lint, sanity, unit, integration, molecule (what .ci/run calls)"
	@echo "make cluster-up    start the local cluster (NODES=N, default 3); make cluster-down stops it"

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

cluster-up: venv binaries
	python tests/cluster/localcluster.py up --nodes $(NODES)

cluster-down: venv
	python tests/cluster/localcluster.py down

# The main job: the documented workflow end to end (lifecycle.yml), on KUBECONFIG's cluster or the local one.
demo: venv collection
	@if [ -z "$${KUBECONFIG:-}" ]; then $(MAKE) --no-print-directory cluster-up; fi
	KUBECONFIG="$${KUBECONFIG:-$(ROOT)/.cluster/kubeconfig}" K8S_AUTH_KUBECONFIG="$${KUBECONFIG:-$(ROOT)/.cluster/kubeconfig}" \
		ANSIBLE_LOCALHOST_WARNING=false ansible-playbook kubeops.daemonset.lifecycle $(DEMO_ARGS)

# Every test. The cluster-backed part runs on KUBECONFIG's cluster or a local one started and stopped around it.
test: venv binaries collection
	$(MAKE) --no-print-directory lint sanity unit
	tests/with-cluster.sh $(MAKE) --no-print-directory integration molecule

lint: venv
	ruff format --check .
	ruff check .
	ansible-lint --profile production

unit: venv
	pytest -q tests/unit

integration: venv binaries collection
	pytest -q tests/integration

# collection mode: molecule finds extensions/molecule/ from the directory that holds galaxy.yml
molecule: venv binaries collection
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
