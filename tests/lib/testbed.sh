# shellcheck shell=bash
# Sourced by the checks that use the k8s test bed: its tools, as tests/services.sh's env names
# them (helm, kubectl, kubeconfig), and kc (kubectl against the test bed, with a timeout).
testbed_hint="run tests/run.sh with a suite that starts k8s, or tests/services.sh up DIR k8s and source DIR/env"
# shellcheck disable=SC2034  # helm: used by the scripts that source this
helm=${SIGSCI_KIT_TEST_HELM:?SIGSCI_KIT_TEST_HELM is not set: $testbed_hint}
kubectl=${SIGSCI_KIT_TEST_KUBECTL:?SIGSCI_KIT_TEST_KUBECTL is not set: $testbed_hint}
kubeconfig=${SIGSCI_KIT_TEST_KUBECONFIG:?SIGSCI_KIT_TEST_KUBECONFIG is not set: $testbed_hint}
kc() { "$kubectl" --kubeconfig "$kubeconfig" --request-timeout=20s "$@"; }
