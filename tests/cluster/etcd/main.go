// Command etcd is the upstream etcd server CLI, built from its Go module so
// the test cluster needs no release download.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
