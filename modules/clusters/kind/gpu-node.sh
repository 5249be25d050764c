#!/usr/bin/env bash
# Make one kind GPU worker run GPU containers (nvkind's steps): install the pinned NVIDIA container
# toolkit inside the node, make it containerd's default runtime, and stop the driver from creating
# device nodes for GPUs that were not passed to this node.
set -euo pipefail
node="${NODE}"
docker exec -i "$node" bash -s <<SCRIPT
set -euo pipefail
if ! dpkg -s nvidia-container-toolkit 2>/dev/null | grep -q "^Version: ${TOOLKIT_VERSION}\$"; then
  apt-get update -qq
  apt-get install -y -qq gpg curl >/dev/null
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey \
    | gpg --batch --yes --dearmor -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
    | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#g' \
    > /etc/apt/sources.list.d/nvidia-container-toolkit.list
  apt-get update -qq
  apt-get install -y -qq "nvidia-container-toolkit=${TOOLKIT_VERSION}" "nvidia-container-toolkit-base=${TOOLKIT_VERSION}" \
    "libnvidia-container-tools=${TOOLKIT_VERSION}" "libnvidia-container1=${TOOLKIT_VERSION}" >/dev/null
fi
nvidia-ctk runtime configure --runtime=containerd --config-source=file --set-as-default
systemctl restart containerd
if grep -q '^ModifyDeviceFiles: 1$' /proc/driver/nvidia/params; then
  umount -R /proc/driver/nvidia
  cp /proc/driver/nvidia/params /root/gpu-params
  sed -i 's/^ModifyDeviceFiles: 1$/ModifyDeviceFiles: 0/' /root/gpu-params
  mount --bind /root/gpu-params /proc/driver/nvidia/params
fi
SCRIPT
# Remove device nodes of host GPUs not assigned to this node.
for dev in $(docker exec "$node" sh -c 'ls /dev | grep -E "^nvidia[0-9]+$" || true'); do
  index=${dev#nvidia}
  case " ${DEVICES} " in *" ${index} "*) ;; *)
    docker exec "$node" sh -c "while umount /dev/${dev} 2>/dev/null; do :; done; rm -f /dev/${dev}" ;;
  esac
done
docker exec "$node" nvidia-smi -L
