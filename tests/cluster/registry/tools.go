//go:build tools

// Package tools pins the OCI registry the local cluster's real node pulls its
// test images from (CNCF distribution, listening on 127.0.0.1 only).
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
