// Package deploy holds what runs sluice in production, with tests that
// check each file as far as a build machine can: the container image
// (built by internal/tools/mkimage, run with podman), the systemd unit
// (systemd/sluice.service, checked by systemd-analyze verify) and the
// Kubernetes manifests (kubernetes/sluice.yaml, decoded strictly into the
// Kubernetes API types). It has no Go API.
package deploy
