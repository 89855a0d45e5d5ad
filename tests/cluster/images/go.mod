module github.com/kubeops/daemonset/tests/cluster/images

go 1.26.0
