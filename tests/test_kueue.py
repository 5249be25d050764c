"""GPUs shared by many teams (kueue layer): a ClusterQueue per team in one cohort, with borrowing and lending
limits, preemption, fair sharing and all-or-nothing admission; flavors for every GPU kind the nodes carry
(whole GPUs, time-sliced or MPS shares, MIG profiles); Dynamic Resource Allocation as an alternative to the
device plugin. The queue graph is checked on every stack and on the MIG, MPS and DRA variants."""

from __future__ import annotations

import pytest
import yaml

from engine.program import load_spec
from modules.shared.config import ConfigError, quantity
from tests.conftest import evaluate, needs_upstream, values_of
from tests.test_schemas import validate_object
from tools.harness import normalize, run, stack_config, stacks

TWO_TEAMS = [{"name": "a", "owner": "a@example.com", "quota": {"cpu": "2", "memory": "4Gi", "gpu": 2}},
             {"name": "b", "owner": "b@example.com", "quota": {"cpu": "2", "memory": "4Gi", "gpu": 2}}]
GPU_KIND = {"cnai:gpu": {"enabled": True, "count": 1, "sharing": {"mode": "time-slicing", "replicas": 4}}}
VARIANTS = {
    "kind-gpu:two-teams": ("kind-gpu", {"cnai:teams": TWO_TEAMS}),
    "kind-gpu:mps": ("kind-gpu", {"cnai:gpu": {"enabled": True, "count": 1, "sharing": {"mode": "mps"}}}),
    "kind-gpu:dra": ("kind-gpu", {"cnai:gpu": {"enabled": True, "count": 2, "allocation": "dra"}}),
    "existing:mig-mixed-balanced": ("existing", {"cnai:gpu": {
        "enabled": True, "count": 8, "model": "NVIDIA-A100-SXM4-80GB",
        "sharing": {"mode": "mig", "migStrategy": "mixed", "migProfile": "all-balanced"}},
        "cnai:teams": [{**t, "quota": {"gpu": 8, "gpuResources": {"nvidia.com/mig-3g.40gb": 4}}} for t in TWO_TEAMS]}),
    "existing:dra": ("existing", {"cnai:gpu": {"enabled": True, "count": 8, "allocation": "dra"},
                                  "cnai:teams": [{**t, "quota": {"gpu": 4}} for t in TWO_TEAMS]}),
    "eks:classic-preemption": ("eks", {"cnai:layers": {"kueue": {"fairSharing": False}}}),
}
CASES = [(s, s, None) for s in stacks()] + [(name, s, o) for name, (s, o) in VARIANTS.items()]


def by_kind(rec, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: normalize(o, reveal=True) for o in rec.objects() if o["kind"] == kind}


def gpu_nominal(queue: dict) -> dict[str, int]:
    return {r["name"]: int(r["nominalQuota"]) for g in queue["spec"]["resourceGroups"] for f in g["flavors"]
            for r in f["resources"] if r["name"] not in ("cpu", "memory")}


@pytest.mark.parametrize("name,stack,overrides", CASES, ids=[c[0] for c in CASES])
def test_the_queue_graph_is_coherent(name, stack, overrides):
    rec = evaluate(stack, overrides)
    caps, kueue = rec.platform.caps, rec.platform.enabled_layer("kueue")
    queues, cohorts = by_kind(rec, "ClusterQueue"), by_kind(rec, "Cohort")
    flavors = by_kind(rec, "ResourceFlavor")
    namespaces = by_kind(rec, "Namespace")
    teams = {t.namespace: t for t in rec.platform.spec.teams}
    assert list(cohorts) == [kueue.options.cohort]
    # A ClusterQueue per team and per queueing layer, each in the cohort, admitting only from its namespaces.
    assert set(teams) <= set(queues) and "notebooks" in queues
    for q in queues.values():
        assert q["spec"]["cohortName"] == kueue.options.cohort
        selector = q["spec"]["namespaceSelector"]["matchLabels"]
        assert [n for n, ns in namespaces.items() if selector.items() <= ns["metadata"].get("labels", {}).items()]
    # Every LocalQueue reaches a ClusterQueue that admits from the LocalQueue's namespace.
    for lq in (o for o in rec.objects() if o["kind"] == "LocalQueue"):
        cq = queues[lq["spec"]["clusterQueue"]]
        labels = namespaces[lq["metadata"]["namespace"]]["metadata"]["labels"]
        assert cq["spec"]["namespaceSelector"]["matchLabels"].items() <= labels.items()
    # Flavors exist and cover every resource; one flavor per GPU kind; Kueue's CEL rules hold.
    gpu_resources = set(caps.gpu_resources())
    for q in [*queues.values(), *cohorts.values()]:
        covered = [r for g in q["spec"]["resourceGroups"] for r in g["coveredResources"]]
        assert sorted(covered) == sorted({"cpu", "memory"} | gpu_resources), q["metadata"]["name"]
        for g in q["spec"]["resourceGroups"]:
            for f in g["flavors"]:
                assert f["name"] in flavors
                assert [r["name"] for r in f["resources"]] == g["coveredResources"]
                for r in f["resources"]:
                    if "lendingLimit" in r:
                        assert 0 <= int(r["lendingLimit"]) <= int(r["nominalQuota"])
        if q["kind"] == "Cohort":  # no parent: the webhook refuses limits
            assert not [r for g in q["spec"]["resourceGroups"] for f in g["flavors"] for r in f["resources"]
                        if {"borrowingLimit", "lendingLimit"} & set(r)]
    # Guaranteed GPUs add up to what the cluster offers (the pool holds what no queue is guaranteed).
    for resource, capacity in caps.gpu_resources().items():
        total = sum(gpu_nominal(q).get(resource, 0) for q in [*queues.values(), *cohorts.values()])
        assert total == capacity, (resource, total, capacity)
    # Teams: explicit borrowing limits, and a namespace ceiling that lets them be used.
    quotas = {o["metadata"]["namespace"]: o for o in rec.objects() if o["kind"] == "ResourceQuota"
              and o["metadata"]["name"] == "team-quota"}
    for ns, team in teams.items():
        for g in queues[ns]["spec"]["resourceGroups"]:
            for r in g["flavors"][0]["resources"]:
                assert "borrowingLimit" in r
                ceiling = quantity(r["nominalQuota"]) + quantity(r["borrowingLimit"])
                key = {"cpu": "requests.cpu", "memory": "requests.memory"}.get(r["name"])
                if key is None:
                    key = ("gpu.nvidia.com.deviceclass.resource.k8s.io/devices" if caps.gpu_allocation == "dra"
                           else f"requests.{r['name']}")
                assert quantity(quotas[ns]["spec"]["hard"][key]) == ceiling, (ns, key)
    # Fair sharing: every queue weighted; the manager configuration turns it on.
    config = yaml.safe_load(values_of(rec, "kueue")["managerConfig"]["controllerManagerConfigYaml"])
    assert ("fairSharing" in config) == kueue.options.fairSharing
    for q in queues.values():
        assert ("fairSharing" in q["spec"]) == kueue.options.fairSharing
    version = load_spec(stack_config(stack, overrides)[0], stack).kubernetesVersion
    for obj in rec.objects():
        if obj["kind"] in ("ClusterQueue", "Cohort", "ResourceFlavor", "LocalQueue", "ResourceClaimTemplate"):
            if obj["apiVersion"].startswith("kueue") and not needs_upstream_copy():
                continue
            validate_object(version, normalize(obj, reveal=True))


def needs_upstream_copy() -> bool:
    from modules.shared import upstream

    return upstream.root() is not None


def test_two_teams_lend_borrow_and_reserve():
    """Two teams of 2 GPUs on 4 time-sliced GPUs: each may borrow what the other lends; a reserved share
    is never lent."""
    rec = evaluate("kind-gpu", {"cnai:teams": TWO_TEAMS})
    a = by_kind(rec, "ClusterQueue")["team-a"]["spec"]
    gpu = a["resourceGroups"][1]["flavors"][0]["resources"][0]
    assert gpu == {"name": "nvidia.com/gpu", "nominalQuota": "2", "borrowingLimit": "2", "lendingLimit": "2"}
    cpu = a["resourceGroups"][0]["flavors"][0]["resources"]
    assert cpu == [{"name": "cpu", "nominalQuota": "2", "borrowingLimit": "2"},
                   {"name": "memory", "nominalQuota": "4Gi", "borrowingLimit": "4Gi"}]
    assert a["resourceGroups"][1]["flavors"][0]["name"] == "gpu-time-slicing"
    # b keeps one GPU for itself: a can borrow only one of b's.
    reserved = [dict(TWO_TEAMS[0]), {**TWO_TEAMS[1], "queue": {"reservedGpus": 1, "weight": 3}}]
    rec = evaluate("kind-gpu", {"cnai:teams": reserved})
    q = by_kind(rec, "ClusterQueue")
    assert q["team-b"]["spec"]["resourceGroups"][1]["flavors"][0]["resources"][0]["lendingLimit"] == "1"
    assert q["team-a"]["spec"]["resourceGroups"][1]["flavors"][0]["resources"][0]["borrowingLimit"] == "1"
    assert q["team-b"]["spec"]["fairSharing"] == {"weight": "3"}
    # The share of the stack: a quarter of 8 GPUs stays with the team (rounded down).
    big = [{**TWO_TEAMS[0], "quota": {"gpu": 8}}]
    rec = evaluate("existing", {"cnai:teams": big, "cnai:gpu": {"enabled": True, "count": 8}})
    lend = by_kind(rec, "ClusterQueue")["team-a"]["spec"]["resourceGroups"][1]["flavors"][0]["resources"][0]
    assert lend["lendingLimit"] == "6"
    # An explicit borrowing limit wins.
    capped = [{**TWO_TEAMS[0], "queue": {"borrowingLimit": {"gpu": 0, "cpu": "1"}}}, TWO_TEAMS[1]]
    a = by_kind(evaluate("kind-gpu", {"cnai:teams": capped}), "ClusterQueue")["team-a"]["spec"]["resourceGroups"]
    assert a[1]["flavors"][0]["resources"][0]["borrowingLimit"] == "0"
    assert a[0]["flavors"][0]["resources"][0]["borrowingLimit"] == "1"


def test_preemption_reclaims_guarantees_and_puts_priorities_first():
    fair = by_kind(evaluate("kind-gpu"), "ClusterQueue")["team-research"]["spec"]["preemption"]
    # Fair sharing decides preemption across the cohort (borrowWithinCohort does not apply to it).
    assert fair == {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"}
    classic = by_kind(evaluate("kind-gpu", {"cnai:layers": {"kueue": {"fairSharing": False}}}), "ClusterQueue")
    assert classic["team-research"]["spec"]["preemption"] == {
        "reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority",
        # A borrower may preempt only the lowest priority class (low, 100) in other queues.
        "borrowWithinCohort": {"policy": "LowerPriority", "maxPriorityThreshold": 100}}
    assert "fairSharing" not in classic["team-research"]["spec"]


def test_manager_configuration_fair_sharing_all_or_nothing_and_metrics():
    rec = evaluate("kind-gpu")
    config = yaml.safe_load(values_of(rec, "kueue")["managerConfig"]["controllerManagerConfigYaml"])
    assert config["apiVersion"] == "config.kueue.x-k8s.io/v1beta2" and config["kind"] == "Configuration"
    assert config["fairSharing"] == {"preemptionStrategies": ["LessThanOrEqualToFinalShare", "LessThanInitialShare"]}
    assert config["waitForPodsReady"]["timeout"] == "10m" and config["waitForPodsReady"]["blockAdmission"] is False
    assert config["waitForPodsReady"]["requeuingStrategy"]["backoffLimitCount"] == 5
    assert config["metrics"]["enableClusterQueueResources"] is True
    frameworks = config["integrations"]["frameworks"]
    assert {"trainer.kubeflow.org/trainjob", "jobset.x-k8s.io/jobset", "ray.io/rayjob", "pod"} <= set(frameworks)
    assert "resources" not in config  # no DRA here
    slow = evaluate("kind-gpu", {"cnai:layers": {"kueue": {"podsReadyTimeout": "20m"}}})
    config = yaml.safe_load(values_of(slow, "kueue")["managerConfig"]["controllerManagerConfigYaml"])
    assert config["waitForPodsReady"]["timeout"] == "20m"


@needs_upstream
def test_manager_configuration_keeps_the_charts_defaults():
    """Helm replaces the chart's configuration string whole: what the platform does not change must equal the
    pinned chart's default, or a chart bump would silently drop a setting."""
    from modules.shared import upstream

    chart_values = yaml.safe_load((upstream.chart_dir("kueue") / "values.yaml").read_text())
    default = yaml.safe_load(chart_values["managerConfig"]["controllerManagerConfigYaml"])
    ours = yaml.safe_load(values_of(evaluate("kind"), "kueue")["managerConfig"]["controllerManagerConfigYaml"])
    for key, value in default.items():
        if key == "metrics":
            assert ours[key]["bindAddress"] == value["bindAddress"]
        else:
            assert ours[key] == value, key


def test_quota_the_cluster_cannot_offer_is_refused_in_one_line():
    over = [{**TWO_TEAMS[0], "quota": {"gpu": 3}}, TWO_TEAMS[1]]
    with pytest.raises(ConfigError) as err:
        run("kind-gpu", {"cnai:teams": over})
    assert str(err.value) == ("cnai:teams: the queues are guaranteed 5 nvidia.com/gpu but the cluster offers 4 "
                              "(1 GPU node(s) x 1 GPU(s) x 4 shares); lower the quotas or set "
                              "cnai:layers.kueue.overcommit: true")
    rec = run("kind-gpu", {"cnai:teams": over, "cnai:layers": {"kueue": {"overcommit": True}}})
    assert gpu_nominal(by_kind(rec, "Cohort")["cnai"]) == {"nvidia.com/gpu": 0}
    with pytest.raises(ConfigError, match=r"^cnai:teams\[1\].queue.reservedGpus: 3 is more than the team's 2"):
        run("kind-gpu", {"cnai:teams": [TWO_TEAMS[0], {**TWO_TEAMS[1], "queue": {"reservedGpus": 3}}]})
    with pytest.raises(ConfigError, match="^cnai:layers.kueue.queues: no enabled layer queues in batch; "
                                          "queues: notebooks"):
        run("kind-gpu", {"cnai:layers": {"kueue": {"queues": {"batch": {}}}}})
    with pytest.raises(ConfigError, match="^cnai:layers.kueue.podsReadyTimeout"):
        run("kind-gpu", {"cnai:layers": {"kueue": {"podsReadyTimeout": "ten minutes"}}})


def test_notebooks_queue_has_its_own_quota():
    rec = evaluate("kind-gpu", {"cnai:layers": {"kueue": {"queues": {"notebooks": {"cpu": "8", "gpu": 1,
                                                                                   "weight": 0.5}}}}})
    nb = by_kind(rec, "ClusterQueue")["notebooks"]["spec"]
    assert nb["fairSharing"] == {"weight": "0.5"}
    assert nb["resourceGroups"][0]["flavors"][0]["resources"][0] == {"name": "cpu", "nominalQuota": "8"}
    assert gpu_nominal(by_kind(rec, "ClusterQueue")["notebooks"]) == {"nvidia.com/gpu": 1}
    assert gpu_nominal(by_kind(rec, "Cohort")["cnai"]) == {"nvidia.com/gpu": 1}  # 4 - 2 (team) - 1


# -- MPS ----------------------------------------------------------------------------------------------

def test_mps_shares_gpus_through_the_device_plugin():
    rec = evaluate("kind-gpu", {"cnai:gpu": {"enabled": True, "count": 1, "sharing": {"mode": "mps", "replicas": 4}}})
    cm = next(o for o in rec.objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "device-plugin-config")
    config = yaml.safe_load(cm["data"]["any"])
    assert config["sharing"] == {"mps": {"resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}
    assert values_of(rec, "gpu-operator")["devicePlugin"]["config"]["name"] == "device-plugin-config"
    assert "gpu-mps" in by_kind(rec, "ResourceFlavor")
    assert rec.platform.caps.gpu_resources() == {"nvidia.com/gpu": 4}
    shared = next(p for p in values_of(rec, "jupyterhub")["singleuser"]["profileList"] if p["slug"] == "gpu-shared")
    assert "one of 4 MPS shares of a GPU" in shared["description"]
    names = {w.name for w in rec.platform.enabled_layer("gpu-operator").workloads()}
    assert "mps-control-daemon" in names


# -- Dynamic Resource Allocation ------------------------------------------------------------------------

def test_dra_replaces_the_device_plugin_and_claims_whole_gpus():
    rec = evaluate("kind-gpu", {"cnai:gpu": {"enabled": True, "count": 2, "allocation": "dra"}})
    assert values_of(rec, "gpu-operator")["devicePlugin"]["enabled"] is False
    dra = values_of(rec, "dra-driver")
    assert dra["gpuResourcesEnabledOverride"] is True
    assert dra["resources"] == {"gpus": {"enabled": True}, "computeDomains": {"enabled": False}}
    assert dra["nvidiaDriverRoot"] == "/"  # kind passes the host's driver through
    assert dra["kubeletPlugin"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert set(dra["kubeletPlugin"]["containers"]["gpus"]["resources"]["requests"]) == {"cpu", "memory"}
    release = rec.get("kubernetes:helm.sh/v3:Release", "dra-driver")
    assert "kubernetes:helm.sh/v3:Release::gpu-operator" in {rec.label(d) for d in release.depends_on}
    templates = {o["metadata"]["namespace"]: o for o in rec.objects() if o["kind"] == "ResourceClaimTemplate"}
    assert set(templates) == {"team-research", "jupyterhub"}
    request = templates["team-research"]["spec"]["spec"]["devices"]["requests"][0]
    assert request == {"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}
    config = yaml.safe_load(values_of(rec, "kueue")["managerConfig"]["controllerManagerConfigYaml"])
    assert config["resources"] == {"deviceClassMappings": [{"name": "nvidia.com/gpu",
                                                            "deviceClassNames": ["gpu.nvidia.com"]}]}
    gpu = next(p for p in values_of(rec, "jupyterhub")["singleuser"]["profileList"] if p["slug"] == "gpu")
    override = gpu["kubespawner_override"]
    assert "extra_resource_limits" not in override
    assert override["extra_pod_config"] == {"resourceClaims": [{"name": "gpu-0", "resourceClaimTemplateName": "gpu"}]}
    assert override["extra_container_config"]["resources"]["claims"] == [{"name": "gpu-0"}]
    assert override["extra_labels"] == {"kueue.x-k8s.io/queue-name": "default"}  # still queued
    quota = next(o for o in rec.objects() if o["kind"] == "ResourceQuota" and o["metadata"]["name"] == "team-quota")
    assert "gpu.nvidia.com.deviceclass.resource.k8s.io/devices" in quota["spec"]["hard"]
    assert not [k for k in quota["spec"]["hard"] if "nvidia.com/gpu" in k and "deviceclass" not in k]


@pytest.mark.parametrize("overrides,message", [
    ({"cnai:kubernetesVersion": "1.33", "cnai:gpu": {"enabled": True, "allocation": "dra"}},
     "cnai:gpu.allocation: dra needs Kubernetes 1.34 or later"),
    ({"cnai:gpu": {"enabled": True, "allocation": "dra", "sharing": {"mode": "time-slicing"}}},
     "cnai:gpu.sharing.mode: time-slicing with allocation dra is not supported"),
    ({"cnai:gpu": {"enabled": True, "allocation": "dra"}, "cnai:layers": {"gpu-operator": {"enabled": False}}},
     "cnai:gpu.allocation: dra needs the gpu-operator layer"),
])
def test_dra_where_it_cannot_work_is_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        run("kind-gpu", overrides)
    assert str(err.value).startswith(message), str(err.value)
