// Helper for the k8s test bed: certificates, service-account keys, free
// ports and the kubeconfig. Standard library only, so no go.sum.
module sigsci-kit/tests/k8s/testbed-tool

go 1.26.0
