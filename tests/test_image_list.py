"""The image list `make render` hands to the image scan: every image the stack runs (pod templates, the images
custom resources name, GPU operator operands as repository/image/version), parts switched off left out,
serving-runtime catalogs apart, and an unpinned image reported."""

from __future__ import annotations

from tools import rendered


def deployment(*images: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": f"c{i}", "image": im}
                                                          for i, im in enumerate(images)]}}}}


CLUSTER_POLICY = {
    "apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {"name": "cluster-policy"},
    "spec": {
        "operator": {"repository": "nvcr.io/nvidia", "image": "gpu-operator", "version": "v26.3.0"},
        "devicePlugin": {"enabled": True, "repository": "nvcr.io/nvidia", "image": "k8s-device-plugin",
                         "version": "v0.20.0"},
        "driver": {"enabled": False, "repository": "nvcr.io/nvidia", "image": "driver", "version": "580.95.05",
                   "manager": {"repository": "nvcr.io/nvidia/cloud-native", "image": "k8s-driver-manager",
                               "version": "v0.12.0"}},
        "validator": {"repository": "nvcr.io/nvidia/cloud-native", "image": "gpu-operator-validator",
                      "version": "sha256:" + "a" * 64},
    }}


def test_gpu_operator_operands_are_composed_and_switched_off_parts_left_out():
    runs, catalog = rendered.stack_images([CLUSTER_POLICY])
    assert runs == ["nvcr.io/nvidia/cloud-native/gpu-operator-validator@sha256:" + "a" * 64,
                    "nvcr.io/nvidia/gpu-operator:v26.3.0", "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"]
    assert catalog == []


def test_custom_resources_name_images_and_serving_runtimes_are_a_catalog():
    cluster = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "db"},
               "spec": {"imageName": "ghcr.io/cloudnative-pg/postgresql:18.6", "description": "image: none"}}
    runtime = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterServingRuntime",
               "metadata": {"name": "mlserver"},
               "spec": {"containers": [{"name": "kserve-container", "image": "docker.io/seldonio/mlserver:1.7.1"},
                                       {"name": "templated", "image": "{{.Values.image}}"}]}}
    runs, catalog = rendered.stack_images([deployment("quay.io/a/b:1", "docker.io/seldonio/mlserver:1.7.1"),
                                           cluster, runtime])
    assert runs == ["docker.io/seldonio/mlserver:1.7.1", "ghcr.io/cloudnative-pg/postgresql:18.6", "quay.io/a/b:1"]
    assert catalog == []  # the runtime's image already runs; a template is not an image
    _, catalog = rendered.stack_images([runtime])
    assert catalog == ["docker.io/seldonio/mlserver:1.7.1"]


def test_latest_and_untagged_images_are_reported():
    assert rendered.unpinned(["vllm/vllm-openai:latest", "busybox", "quay.io/a/b:1", "b@sha256:" + "0" * 64]) == [
        "image vllm/vllm-openai:latest is not pinned (a tag other than latest, or a digest)",
        "image busybox is not pinned (a tag other than latest, or a digest)"]
