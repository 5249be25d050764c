"""Layers on the mock graph: parents, dependencies, values per capability, namespaces."""

from __future__ import annotations

import yaml

from engine.registry import LAYERS
from tests.conftest import evaluate, values_of
from tools.harness import normalize

RELEASE = "kubernetes:helm.sh/v3:Release"
NS = "kubernetes:core/v1:Namespace"


def deps(rec, reg):
    return {rec.label(d) for d in reg.depends_on}


def test_every_layer_resource_is_parented_by_its_component(recording):
    for reg in recording.registrations:
        if reg.type.startswith("kubernetes:") and reg.type != "pulumi:providers:kubernetes":
            # Kubernetes objects belong to a layer, or to the cluster module that prepares the cluster.
            owners = [a.type for a in recording.ancestors(reg)]
            assert recording.layer_of(reg) or any(t.startswith("cnai:modules:") for t in owners), \
                f"{reg.type} {reg.name} has no layer or cluster component parent"
    components = {r.name: r.type for r in recording.registrations if r.type.startswith("cnai:addons:")}
    assert components == {name: f"cnai:addons:{LAYERS[name].component}" for name in recording.spec.enabled_layers()}
    assert {"cert-manager", "kueue", "teams", "object-store", "postgres", "mlflow"} <= set(components)


def test_independent_layers_do_not_wait_for_each_other(recording):
    rec = recording
    by_urn = {r.urn: r for r in rec.registrations}
    for name in ("cert-manager", "gpu-operator", "kueue"):
        release = rec.get(RELEASE, name)
        # Kueue's chart renders a ServiceMonitor when observability is on: it waits for those CRDs only.
        allowed = {name, "observability"} if name == "kueue" else {name}
        others = {rec.label(d) for d in release.depends_on if rec.layer_of(by_urn[d]) not in allowed}
        cluster_ready = {r for r in others if r.startswith("command:")}
        assert others == cluster_ready, f"{name} release waits for another layer: {others - cluster_ready}"


def test_kueue_objects_wait_for_their_crds_and_team_namespaces(recording):
    rec = recording
    queues = rec.by_type("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue")
    assert queues
    for cq in queues + rec.by_type("kubernetes:kueue.x-k8s.io/v1beta2:Cohort"):
        assert f"{RELEASE}::kueue" in deps(rec, cq)
    for lq in rec.by_type("kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue"):
        ns = lq.inputs["metadata"]["namespace"]
        assert {f"{RELEASE}::kueue", f"{NS}::namespace-{ns}"} <= deps(rec, lq)


def test_every_team_gets_a_local_queue_and_isolation(recording):
    rec = recording
    objects = rec.objects()
    teams = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"
             and o["metadata"]["name"].startswith("team-")]
    assert teams
    for ns in teams:
        kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects if o["metadata"].get("namespace") == ns)
        for needed in [("LimitRange", "container-defaults"), ("LocalQueue", "default"), ("NetworkPolicy", "allow-dns"),
                       ("NetworkPolicy", "allow-platform"), ("NetworkPolicy", "default-deny"),
                       ("ResourceQuota", "team-quota"), ("RoleBinding", "team-edit")]:
            assert needed in kinds, f"{ns} lacks {needed}"
        deny = next(o for o in objects if o["metadata"].get("namespace") == ns
                    and o["metadata"]["name"] == "default-deny")
        assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_platform_namespaces_carry_pod_security_and_platform_label(recording):
    layers = {layer.name: layer for layer in recording.platform.layers}
    declared: dict[str, object] = {}
    for layer in layers.values():  # a namespace several layers share is created by the first of them
        if layer.namespace:
            declared.setdefault(layer.namespace, layer)
    for o in recording.objects():
        if o["kind"] != "Namespace":
            continue
        labels = o["metadata"]["labels"]
        name = o["metadata"]["name"]
        if name.startswith("team-"):
            assert labels["pod-security.kubernetes.io/enforce"] == "baseline", name
            continue
        layer = layers[labels["platform.cnai.dev/part-of"]]
        if name in declared:
            assert declared[name] is layer
            sharing = [other for other in layers.values() if other.namespace == name]
            least = min((other.pod_security for other in sharing), key=["privileged", "baseline", "restricted"].index)
            assert labels["pod-security.kubernetes.io/enforce"] == least, name
        else:  # an extra namespace a layer creates (e.g. for its examples) runs restricted
            assert labels["pod-security.kubernetes.io/enforce"] == "restricted", name
        # Anything below restricted is a documented exception.
        assert layer.pod_security == "restricted" or layer.pod_security_reason, name
    assert declared["gpu-operator"].pod_security == "privileged"
    assert declared["mlflow"].pod_security == declared["postgres"].pod_security == "restricted"


def test_gpu_operator_on_kind_keeps_the_passed_through_driver_and_toolkit():
    v = values_of(evaluate("kind-gpu"), "gpu-operator")
    assert v["driver"]["enabled"] is False and v["toolkit"]["enabled"] is False
    # NFD only on the labelled GPU worker: every kind node sees the host PCI bus.
    assert v["node-feature-discovery"]["worker"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert v["devicePlugin"]["config"] == {"create": False, "name": "device-plugin-config", "default": "any"}
    assert v["migManager"]["enabled"] is False


def test_time_slicing_config_map_is_created_before_the_release():
    rec = evaluate("kind-gpu")
    cm = rec.get("kubernetes:core/v1:ConfigMap", "configmap-gpu-operator-device-plugin-config")
    config = yaml.safe_load(cm.inputs["data"]["any"])
    assert config["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    assert config["version"] == "v1"
    release = rec.get(RELEASE, "gpu-operator")
    assert "kubernetes:core/v1:ConfigMap::configmap-gpu-operator-device-plugin-config" in deps(rec, release)


def test_gpu_operator_on_existing_follows_its_capabilities():
    v = values_of(evaluate("existing"), "gpu-operator")
    assert v["driver"]["enabled"] is False  # gpuDriversPreinstalled: true
    assert v["toolkit"]["enabled"] is True  # gpuToolkitPreinstalled: false
    assert v["mig"]["strategy"] == "single"
    # The profile reaches nodes through their nvidia.com/mig.config label; the ClusterPolicy only allows this.
    assert v["migManager"] == {"enabled": True, "config": {"default": "all-disabled"},
                               "resources": v["migManager"]["resources"]}
    assert "nodeSelector" not in v["node-feature-discovery"]["worker"]  # discovery runs on every node
    assert "config" not in v["devicePlugin"]


def test_gpu_operator_excludes_control_plane_and_never_waits_on_gpu_less_nodes():
    for stack in ("kind", "kind-gpu", "existing"):
        v = values_of(evaluate(stack), "gpu-operator")
        for part in (v["operator"], v["node-feature-discovery"]["master"], v["node-feature-discovery"]["gc"]):
            assert part["tolerations"] == []
            required = part["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            term = required["nodeSelectorTerms"][0]
            assert term["matchExpressions"] == [{"key": "node-role.kubernetes.io/control-plane",
                                                 "operator": "DoesNotExist"}]
        worker_tolerations = v["node-feature-discovery"]["worker"]["tolerations"]
        assert all(t["key"] != "node-role.kubernetes.io/control-plane" for t in worker_tolerations)
        release = evaluate(stack).get(RELEASE, "gpu-operator").inputs
        assert not release.get("waitForJobs")


def test_gpu_operator_driver_install_gets_a_longer_timeout():
    rec = evaluate("existing", {"cnai:existing": {"gpuNodes": 1, "gpuNodeNames": ["gpu-1"],
                                                  "gpuDriversPreinstalled": False}})
    assert values_of(rec, "gpu-operator")["driver"]["enabled"] is True
    assert rec.get(RELEASE, "gpu-operator").inputs["timeout"] >= 1200


def test_kueue_image_and_requests_are_pinned_and_explicit():
    for stack, cpu in (("kind", "100m"), ("existing", "500m")):
        v = values_of(evaluate(stack), "kueue")["controllerManager"]
        assert v["manager"]["image"] == {"repository": "registry.k8s.io/kueue/kueue", "tag": "v0.19.2",
                                         "pullPolicy": "IfNotPresent"}
        assert v["manager"]["resources"]["requests"]["cpu"] == cpu


def test_profile_sets_replicas_and_requests():
    laptop, prod = values_of(evaluate("kind"), "cert-manager"), values_of(evaluate("existing"), "cert-manager")
    assert laptop["replicaCount"] == 1 and prod["replicaCount"] == 2
    assert prod["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    assert laptop["crds"] == {"enabled": True, "keep": True}
    for v in (laptop, prod):
        for part in (v, v["webhook"], v["cainjector"]):
            assert set(part["resources"]["requests"]) == {"cpu", "memory"}


def test_values_overrides_from_config_are_merged_last():
    rec = evaluate("kind", {"cnai:layers": {"cert-manager": {"values": {"webhook": {"timeoutSeconds": 20}}}}})
    v = values_of(rec, "cert-manager")
    assert v["webhook"]["timeoutSeconds"] == 20 and v["webhook"]["replicaCount"] == 1


def test_disabling_a_layer_removes_it_and_its_per_team_objects():
    off = {"enabled": False}
    rec = evaluate("kind", {"cnai:layers": {n: off for n in (
        "kueue", "gpu-operator", "mlflow", "postgres", "object-store", "kserve", "feast", "jupyterhub", "trainer",
        "katib", "pipelines", "observability")}})
    assert {r.name for r in rec.registrations if r.type.startswith("cnai:addons:")} == {"cert-manager", "teams"}
    assert not [o for o in rec.objects() if o["apiVersion"].startswith("kueue.x-k8s.io")]


def test_no_plaintext_secret_in_stack_outputs_or_provider():
    rec = evaluate("kind")
    provider = rec.get("pulumi:providers:kubernetes", "kind")
    assert normalize(provider.inputs)["kubeconfig"] == "[secret]"


def test_every_team_gets_the_same_objects_from_every_layer():
    rec = evaluate("existing")  # two teams
    by_ns: dict[str, set] = {}
    for o in rec.objects():
        ns = o["metadata"].get("namespace", "")
        if ns.startswith("team-"):
            # per-team choices (cnai:teams[].allowInternetEgress, a contributor binding per member), and
            # examples placed in the first team
            name = o["metadata"]["name"]
            if name != "allow-internet-egress" and not name.startswith(("example-", "user-")):
                by_ns.setdefault(ns, set()).add((o["kind"], o["metadata"]["name"], o["apiVersion"]))
    assert len(by_ns) == 2
    first, second = by_ns.values()
    assert first == second
    kinds = {k for k, _, _ in first}
    assert {"ResourceQuota", "LimitRange", "NetworkPolicy", "RoleBinding", "LocalQueue", "ServiceAccount",
            "AuthorizationPolicy"} <= kinds


def test_team_members_may_manage_inference_services():
    role = next(o for o in evaluate("kind").objects() if o["kind"] == "ClusterRole"
                and o["metadata"]["name"] == "cnai-kserve-edit")
    assert role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "create" in role["rules"][0]["verbs"] and "inferenceservices" in role["rules"][0]["resources"]
