//go:build tools

// Package tools pins the KWOK version the test cluster builds (kwok simulates
// the kubelets of the fake nodes).
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
