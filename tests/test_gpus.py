"""GPU models and MIG are true to what the nodes will carry: the ClusterPolicy takes what its CRD allows,
the profile reaches nodes through their nvidia.com/mig.config label, impossible combinations are refused in
one line on every environment (with or without the gpu-operator layer), and queues, notebooks and quotas
ask for what discovery will advertise under each MIG strategy."""

from __future__ import annotations

import pytest

from modules.shared import gpus, upstream
from modules.shared.config import ConfigError
from tests.conftest import evaluate, needs_upstream, values_of
from tools.harness import normalize, run, stacks

RELEASE = "kubernetes:helm.sh/v3:Release"
NODEGROUP = "aws:eks/nodeGroup:NodeGroup"


def objects_by_name(rec, kind):
    return {o["metadata"]["name"]: o for o in rec.objects() if o["kind"] == kind}


# -- the ClusterPolicy the operator's chart renders ------------------------------------------------------

@needs_upstream
@pytest.mark.parametrize("stack", stacks())
def test_mig_values_are_what_the_cluster_policy_crd_allows(stack):
    """The chart copies migManager.config.default and mig.strategy into the ClusterPolicy; the API server
    rejects values outside the CRD's enums, and the release fails."""
    rec = evaluate(stack)
    if not [r for r in rec.by_type(RELEASE) if r.name == "gpu-operator"]:
        pytest.skip("no gpu-operator release on this stack")
    crd = upstream.crd_facts("nvidia.com/v1", "ClusterPolicy")["schema"]["properties"]["spec"]["properties"]
    values = values_of(rec, "gpu-operator")
    assert values["migManager"]["config"]["default"] in crd["migManager"]["properties"]["config"]["properties"][
        "default"]["enum"]
    assert values["mig"]["strategy"] in crd["mig"]["properties"]["strategy"]["enum"]


def test_the_profile_reaches_nodes_through_their_mig_config_label():
    rec = evaluate("existing")  # A100-80GB, MIG all-1g.10gb, two listed GPU nodes
    patches = {r.name: normalize(r.inputs) for r in rec.patches() if r.type == "kubernetes:core/v1:NodePatch"}
    assert patches == {f"node-gpu-node-{i}-patch": {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": f"gpu-node-{i}", "labels": {"nvidia.com/mig.config": "all-1g.10gb"}}} for i in (1, 2)}


def test_cloud_gpu_pools_boot_with_the_mig_config_label_and_scale_from_zero_with_the_slices():
    rec = evaluate("eks", {"cnai:eks": {"name": "cnai-eks", "region": "us-west-2",
                                        "availabilityZones": ["us-west-2a", "us-west-2b"],
                                        "gpuPools": [{"name": "a100", "instanceTypes": ["p4d.24xlarge"], "max": 1}]},
                           "cnai:gpu": {"enabled": True, "sharing": {"mode": "mig", "migProfile": "all-1g.10gb"}}})
    group = normalize(rec.get(NODEGROUP, "gpu-a100").inputs)
    assert group["labels"]["nvidia.com/mig.config"] == "all-1g.10gb"
    tags = {normalize(r.inputs)["tag"]["key"]: normalize(r.inputs)["tag"]["value"]
            for r in rec.by_type("aws:autoscaling/tag:Tag") if r.name.startswith("gpu-a100-tag-")}
    prefix = "k8s.io/cluster-autoscaler/node-template"
    # p4d: 8 A100-40GB, and 1g.10gb fits 4 times on a 40GB A100 (not 7: that is the 80GB part).
    assert tags[f"{prefix}/resources/nvidia.com/gpu"] == "32"
    assert tags[f"{prefix}/label/nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-40GB-MIG-1g.10gb"
    assert not rec.patches()  # the pools label their nodes; nothing to patch


def test_gke_pools_with_operator_drivers_carry_the_mig_config_label():
    rec = evaluate("gke", {"cnai:gke": {"name": "cnai-gke", "project": "my-ml-project", "region": "europe-west4",
                                        "gpuDriver": "operator",
                                        "gpuPools": [{"name": "a100", "machineType": "a2-highgpu-1g",
                                                      "acceleratorType": "nvidia-tesla-a100"}]},
                           "cnai:gpu": {"enabled": True, "sharing": {"mode": "mig", "migProfile": "all-3g.20gb"}}})
    pool = normalize(rec.get("gcp:container/nodePool:NodePool", "gpu-a100").inputs)
    assert pool["nodeConfig"]["labels"]["nvidia.com/mig.config"] == "all-3g.20gb"


# -- impossible combinations, refused on every environment ------------------------------------------------

IMPOSSIBLE = [
    ("eks", {"cnai:gpu": {"enabled": True, "sharing": {"mode": "mig"}}},  # the stack's pool is g6.xlarge (L4)
     "cnai:gpu.sharing.mode: NVIDIA-L4 GPUs (a eks cluster) have no MIG"),
    ("gke", {"cnai:gke": {"name": "g", "project": "my-ml-project", "region": "europe-west4", "gpuDriver": "operator",
                          "gpuPools": [{"machineType": "n1-standard-8", "acceleratorType": "nvidia-tesla-t4"}]},
             "cnai:gpu": {"enabled": True, "sharing": {"mode": "mig"}}},
     "cnai:gpu.sharing.mode: Tesla-T4 GPUs (a gke cluster) have no MIG"),
    ("existing", {"cnai:gpu": {"enabled": True, "count": 8, "model": "NVIDIA-A100-SXM4-40GB",
                               "sharing": {"mode": "mig", "migProfile": "all-1g.20gb"}}},
     "cnai:gpu.sharing.migProfile: NVIDIA-A100-SXM4-40GB has no 'all-1g.20gb'; its configs are "
     "all-1g.5gb, all-1g.10gb"),
    ("existing", {"cnai:gpu": {"enabled": True, "count": 8, "sharing": {"mode": "mig"}}},
     "cnai:gpu.model: MIG needs the GPU model the nodes carry"),
    ("existing", {"cnai:gpu": {"enabled": True, "count": 8, "model": "NVIDIA-A10G", "sharing": {"mode": "mig"}}},
     "cnai:gpu.sharing.mode: NVIDIA-A10G GPUs (a existing cluster) have no MIG"),
    ("existing", {"cnai:gpu": {"enabled": True, "count": 8, "model": "Super-GPU-9000", "sharing": {"mode": "mig"}}},
     "cnai:gpu.model: 'Super-GPU-9000' is not a GPU model the platform knows the MIG profiles of"),
    ("eks", {"cnai:gpu": {"enabled": True, "model": "NVIDIA-H100-80GB-HBM3"}},
     "cnai:gpu.model: NVIDIA-H100-80GB-HBM3 but the GPU pools carry NVIDIA-L4"),
    ("kind-gpu", {"cnai:gpu": {"enabled": True, "sharing": {"mode": "mig"}}},
     "cnai:gpu.sharing.mode: mig is not supported on a kind cluster"),
]


@pytest.mark.parametrize("stack,overrides,message", IMPOSSIBLE, ids=[i[2][:45] for i in IMPOSSIBLE])
def test_impossible_gpu_sharing_is_refused_in_one_line(stack, overrides, message):
    with pytest.raises(ConfigError) as err:
        run(stack, overrides)
    assert str(err.value).startswith(message), str(err.value)


def test_the_check_holds_without_the_gpu_operator_layer():
    """Queues and quotas would still multiply GPUs by slices: the check is the engine's, not the operator's."""
    with pytest.raises(ConfigError, match="NVIDIA-L4 GPUs .* have no MIG"):
        run("eks", {"cnai:gpu": {"enabled": True, "sharing": {"mode": "mig"}},
                    "cnai:layers": {"gpu-operator": {"enabled": False}, "cluster-autoscaler": {"enabled": True},
                                    "postgres": {"managed": True}}})


def test_existing_clusters_name_their_gpu_nodes_for_mig():
    with pytest.raises(ConfigError, match="^cnai:existing.gpuNodeNames: MIG is applied through"):
        run("existing", {"cnai:existing": {"gpuNodes": 2}})
    with pytest.raises(ConfigError, match="^cnai:existing.gpuNodeNames: names 1 nodes but gpuNodes is 2"):
        run("existing", {"cnai:existing": {"gpuNodes": 2, "gpuNodeNames": ["a"]}})


# -- what queues, notebooks and quotas ask for, per strategy ---------------------------------------------

def test_single_strategy_slices_are_nvidia_gpu_on_relabelled_nodes():
    rec = evaluate("existing")
    assert rec.platform.caps.gpu_resource == "nvidia.com/gpu"
    flavor = objects_by_name(rec, "ResourceFlavor")["mig-1g.10gb"]["spec"]["nodeLabels"]
    assert flavor["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb"
    profile = next(p for p in values_of(rec, "jupyterhub")["singleuser"]["profileList"] if p["slug"] == "gpu")
    assert profile["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert "MIG slice (1g.10gb)" in profile["display_name"]


def test_mixed_strategy_asks_for_the_profile_resource_everywhere():
    rec = evaluate("existing", {"cnai:gpu": {"enabled": True, "count": 8, "model": "NVIDIA-H100-80GB-HBM3",
                                             "sharing": {"mode": "mig", "migStrategy": "mixed",
                                                         "migProfile": "all-3g.40gb"}},
                                "cnai:layers": {"kueue": {"overcommit": True}}})
    resource = "nvidia.com/mig-3g.40gb"
    cohort = objects_by_name(rec, "Cohort")["cnai"]["spec"]["resourceGroups"][1]
    assert cohort["coveredResources"] == [resource] and cohort["flavors"][0]["name"] == "mig-3g.40gb"
    team = objects_by_name(rec, "ClusterQueue")["team-vision"]["spec"]["resourceGroups"][1]
    assert team["flavors"][0]["resources"][0]["name"] == resource
    # The mixed strategy keeps the product label as it is.
    assert objects_by_name(rec, "ResourceFlavor")["mig-3g.40gb"]["spec"]["nodeLabels"]["nvidia.com/gpu.product"] == \
        "NVIDIA-H100-80GB-HBM3"
    profile = next(p for p in values_of(rec, "jupyterhub")["singleuser"]["profileList"] if p["slug"] == "gpu")
    assert profile["kubespawner_override"]["extra_resource_limits"] == {resource: "1"}
    quota = objects_by_name(rec, "ResourceQuota")["team-quota"]["spec"]["hard"]
    assert f"requests.{resource}" in quota and "requests.nvidia.com/gpu" not in quota


def test_balanced_mig_gives_a_flavor_profile_and_quota_per_slice_size():
    """`all-balanced` under the mixed strategy: 2x1g.10gb + 2g.20gb + 3g.40gb per 80GB GPU, each its own resource,
    flavor and notebook profile; teams give quota per resource."""
    rec = evaluate("existing", {
        "cnai:gpu": {"enabled": True, "count": 8, "model": "NVIDIA-A100-SXM4-80GB",
                     "sharing": {"mode": "mig", "migStrategy": "mixed", "migProfile": "all-balanced"}},
        "cnai:teams": [{"name": "vision", "owner": "v@example.com",
                        "quota": {"gpuResources": {"nvidia.com/mig-3g.40gb": 4, "nvidia.com/mig-1g.10gb": 8}}}]})
    caps = rec.platform.caps
    assert caps.gpu_resources() == {"nvidia.com/mig-1g.10gb": 32, "nvidia.com/mig-2g.20gb": 16,
                                    "nvidia.com/mig-3g.40gb": 16}  # 2 nodes x 8 GPUs x (2, 1, 1)
    assert caps.gpu_resource == "nvidia.com/mig-1g.10gb"  # the smallest slice is the default
    flavors = set(objects_by_name(rec, "ResourceFlavor"))
    assert {"mig-1g.10gb", "mig-2g.20gb", "mig-3g.40gb"} <= flavors
    team = objects_by_name(rec, "ClusterQueue")["team-vision"]["spec"]["resourceGroups"]
    nominal = {g["coveredResources"][0]: g["flavors"][0]["resources"][0]["nominalQuota"] for g in team[1:]}
    assert nominal == {"nvidia.com/mig-1g.10gb": "8", "nvidia.com/mig-2g.20gb": "0", "nvidia.com/mig-3g.40gb": "4"}
    slugs = {p["slug"]: p for p in values_of(rec, "jupyterhub")["singleuser"]["profileList"]}
    assert slugs["gpu-3g-40gb"]["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/mig-3g.40gb": "1"}
    assert slugs["gpu"]["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/mig-1g.10gb": "1"}
    with pytest.raises(ConfigError, match="^cnai:gpu.sharing.migProfile: all-balanced creates several profiles"):
        run("existing", {"cnai:gpu": {"enabled": True, "count": 8, "model": "NVIDIA-A100-SXM4-80GB",
                                      "sharing": {"mode": "mig", "migProfile": "all-balanced"}}})
    with pytest.raises(ConfigError, match=r"^cnai:teams\[0\].quota.gpuResources: the cluster advertises no "
                                          "nvidia.com/mig-7g.80gb"):
        run("existing", {"cnai:gpu": {"enabled": True, "count": 8, "model": "NVIDIA-A100-SXM4-80GB",
                                      "sharing": {"mode": "mig", "migStrategy": "mixed", "migProfile": "all-balanced"}},
                         "cnai:teams": [{"name": "a", "owner": "a@example.com",
                                         "quota": {"gpuResources": {"nvidia.com/mig-7g.80gb": 1}}}]})


def test_balanced_layouts_follow_mig_parted():
    assert gpus.mig_layout(("NVIDIA-A100-SXM4-40GB",), "all-balanced") == {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}
    assert gpus.mig_layout(("NVIDIA-H100-80GB-HBM3",), "all-balanced") == {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    assert gpus.mig_layout(("NVIDIA-A30",), "all-balanced") == {"1g.6gb": 2, "2g.12gb": 1}  # a 4-slice GPU


def test_slices_come_from_the_model_table():
    assert gpus.slices(("NVIDIA-A100-SXM4-40GB",), "all-1g.10gb") == 4
    assert gpus.slices(("NVIDIA-A100-SXM4-80GB",), "all-1g.10gb") == 7
    assert gpus.slices(("NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition",), "all-1g.24gb") == 4
    assert not gpus.MODELS["NVIDIA-L4"].mig and not gpus.MODELS["Tesla-T4"].mig
