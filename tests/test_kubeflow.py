"""Kubeflow layers: Trainer release, runtimes applied explicitly, TrainJobs admitted through Kueue."""

from __future__ import annotations

from tests.conftest import evaluate, values_of


def test_trainer_runtimes_come_from_the_pinned_overlay_not_the_chart_hook():
    rec = evaluate("kind")
    v = values_of(rec, "trainer")
    assert v["runtimes"]["defaultEnabled"] is False and v["jobset"]["install"] is True
    overlay = rec.get("kubernetes:kustomize/v2:Directory", "trainer-runtimes")
    assert overlay.inputs["directory"] == \
        "https://github.com/kubeflow/trainer.git//manifests/overlays/runtimes?ref=v2.3.0"
    assert "kubernetes:helm.sh/v3:Release::trainer" in {rec.label(d) for d in overlay.depends_on}


def test_example_trainjob_is_queued_by_kueue_in_a_team_namespace():
    rec = evaluate("kind")
    reg = rec.get("kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob", "trainjob-team-research-example-torch")
    job = reg.inputs
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "default"
    assert job["spec"]["suspend"] is True
    assert job["spec"]["runtimeRef"]["name"] == "torch-distributed"
    assert set(reg.ignore_changes) == {"spec.suspend", "spec.runtimePatches"}
    deps = {rec.label(d) for d in reg.depends_on}
    assert "kubernetes:kustomize/v2:Directory::trainer-runtimes" in deps  # the runtime exists first
    # ... and the team's LocalQueue exists first (the TrainJob waits for the kueue layer's objects)
    lq = next(r for r in rec.by_type("kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue")
              if r.inputs["metadata"]["namespace"] == "team-research")
    assert lq.urn in reg.depends_on


def test_without_kueue_the_example_runs_unsuspended():
    rec = evaluate("kind", {"cnai:layers": {"kueue": {"enabled": False}}})
    job = rec.get("kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob", "trainjob-team-research-example-torch").inputs
    assert job["spec"]["suspend"] is False and "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]


def test_team_members_may_create_trainjobs():
    role = next(o for o in evaluate("kind").objects() if o["metadata"]["name"] == "cnai-trainer-edit")
    assert role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "trainjobs" in role["rules"][0]["resources"] and "create" in role["rules"][0]["verbs"]


def test_local_kustomizations_pin_the_versions_table():
    import yaml

    from modules.shared.versions import ROOT, VERSIONS
    from tools.kustomize_check import remote_refs

    for key, man in VERSIONS.manifests.items():
        if not man.kustomize or man.url.startswith("http"):
            continue
        doc = yaml.safe_load((ROOT / man.url / "kustomization.yaml").read_text())
        refs = [m["ref"] for m in remote_refs(doc)]
        assert refs and all(ref == man.version for ref in refs), f"{man.url}: refs {refs} != {man.version}"


def test_kubeflow_namespace_is_created_once_with_every_layers_labels():
    rec = evaluate("kind")
    spaces = [r for r in rec.by_type("kubernetes:core/v1:Namespace") if r.inputs["metadata"]["name"] == "kubeflow"]
    assert len(spaces) == 1
    labels = spaces[0].inputs["metadata"]["labels"]
    assert labels["katib.kubeflow.org/metrics-collector-injection"] == "enabled"
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    katib = rec.get("kubernetes:kustomize/v2:Directory", "katib")
    assert spaces[0].urn in katib.depends_on  # Katib waits for the namespace Pipelines created
    assert "kubernetes:kustomize/v2:Directory::trainer-runtimes" in {rec.label(d) for d in katib.depends_on}


def test_katib_example_runs_in_a_team_namespace_with_the_collector():
    rec = evaluate("kind")
    exp = next(o for o in rec.objects() if o["kind"] == "Experiment")
    assert exp["metadata"]["namespace"] == "team-research" and exp["spec"]["maxTrialCount"] == 2
    team = next(o for o in rec.objects() if o["kind"] == "Namespace" and o["metadata"]["name"] == "team-research")
    assert team["metadata"]["labels"]["katib.kubeflow.org/metrics-collector-injection"] == "enabled"
    image = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert ":" in image and not image.endswith(":latest")


def test_notebooks_know_the_pipelines_endpoint():
    env = values_of(evaluate("kind"), "jupyterhub")["singleuser"]["extraEnv"]
    assert env["KF_PIPELINES_ENDPOINT"] == "http://ml-pipeline.kubeflow.svc.cluster.local:8888"


def test_kustomize_check_points_every_remote_entry_at_the_local_copy():
    """tools/kustomize_check builds the local kustomizations from a local upstream copy; it must
    recognise every remote entry they have, or a pin bump would go unchecked."""
    import yaml

    from modules.shared.versions import ROOT, VERSIONS
    from tools.kustomize_check import localize, remote_refs

    for key, man in VERSIONS.manifests.items():
        if not man.kustomize or man.url.startswith("http"):
            continue
        doc = yaml.safe_load((ROOT / man.url / "kustomization.yaml").read_text())
        entries = doc.get("resources", []) + doc.get("components", [])
        refs = remote_refs(doc)
        assert len(refs) == len([e for e in entries if e.startswith("https://")]), key
        local = localize(doc, {m["repo"]: "../../src" for m in refs})
        after = local.get("resources", []) + local.get("components", [])
        assert len(after) == len(entries) and not [e for e in after if e.startswith("https://")], key
        assert {f"../../src/{m['path']}" for m in refs} <= set(after)
