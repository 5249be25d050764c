#!/usr/bin/env bash
# Host checks before kind creates the cluster. Each failure says what to run; see docs/clusters/kind.md.
set -euo pipefail
fail() { echo "cnai kind preflight: $*" >&2; exit 1; }
command -v docker >/dev/null || fail "docker is not installed (https://docs.docker.com/engine/install/)"
docker info >/dev/null 2>&1 || fail "the docker daemon is not reachable; start it and check your user can run 'docker info'"
command -v kind >/dev/null || fail "kind is not installed; install kind ${KIND_VERSION} (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
have=$(kind version | awk '{print $2}')
[ "$have" = "${KIND_VERSION}" ] || echo "cnai kind preflight: warning: kind ${have} found, the platform pins ${KIND_VERSION}" >&2
instances=$(sysctl -n fs.inotify.max_user_instances 2>/dev/null || echo 0)
watches=$(sysctl -n fs.inotify.max_user_watches 2>/dev/null || echo 0)
if [ "$instances" -lt 2280 ] || [ "$watches" -lt 1255360 ]; then
  echo "cnai kind preflight: warning: inotify limits ${instances}/${watches} are below what Kubeflow needs (2280/1255360);" \
       "run: sudo sysctl fs.inotify.max_user_instances=2280 fs.inotify.max_user_watches=1255360" >&2
fi
if [ "${GPU}" = "true" ]; then
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 \
    || fail "GPU passthrough: no working NVIDIA driver on this host ('nvidia-smi -L' fails)"
  count=$(nvidia-smi -L | grep -c '^GPU ')
  [ "$count" -ge "${GPU_COUNT}" ] || fail "GPU passthrough: cnai:gpu.count is ${GPU_COUNT} but this host has ${count} GPU(s)"
  command -v nvidia-ctk >/dev/null || fail "GPU passthrough: nvidia-container-toolkit is not installed on the host"
  runtime=$(docker info --format '{{.DefaultRuntime}}')
  [ "$runtime" = "nvidia" ] || fail "GPU passthrough: docker's default runtime is '${runtime}', not 'nvidia'; run:" \
    "sudo nvidia-ctk runtime configure --runtime=docker --set-as-default --cdi.enabled && sudo systemctl restart docker"
  grep -Eq '^[[:space:]]*accept-nvidia-visible-devices-as-volume-mounts[[:space:]]*=[[:space:]]*true' \
    /etc/nvidia-container-runtime/config.toml 2>/dev/null || fail "GPU passthrough: volume-mount device selection is off; run:" \
    "sudo nvidia-ctk config --set accept-nvidia-visible-devices-as-volume-mounts=true --in-place && sudo systemctl restart docker"
fi
