//go:build tools

// Package tools pins the container runtime of the local cluster's real node:
// containerd v2 (its CRI plugin serves the kubelet) and its runc shim.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
)
