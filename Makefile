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
collection: venv
	rm -rf "$(ROOT)/build/dist" "$(COLLECTION_DIR)"
	ansible-galaxy collection build --force --output-path "$(ROOT)/build/dist" . >/dev/null
	ansible-galaxy collection install --force --no-deps -p "$(COLLECTIONS)" "$(ROOT)"/build/dist/kubeops-daemonset-*.tar.gz >/dev/null
	@echo "installed kubeops.daemonset into $(COLLECTION_DIR)"

cluster-up: venv binaries
	python tests/cluster/localcluster.py up --nodes $(NODES)

cluster-down: venv
	python tests/cluster/localcluster.py down
