//go:build tools

// Package tools pins crictl, the CRI client the local cluster uses to stop and
// remove the real node's pods (network teardown included) when it goes down.
package tools

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
