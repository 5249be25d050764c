"""The llm layer: models declared in config served by KServe's Hugging Face runtime in team namespaces (the CPU
path on kind, vLLM on GPU stacks, DRA claims), cached on a PVC a download Job fills, queued by Kueue, scaled by
KEDA or to zero with Knative; the endpoints teams and notebooks get; the token only as a secret; the guardrails
of the policy pack; the RAG example's wiring."""

from __future__ import annotations

import pytest
import yaml

from engine.registry import LAYERS
from modules.shared.config import ConfigError
from tests.conftest import evaluate, values_of
from tests.test_schemas import validate_object
from tools.harness import normalize, run

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def layers(stack: str, **extra) -> dict:
    config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    merged = dict(config.get("cnai:layers") or {})
    merged["llm"] = {"enabled": True}
    merged.update(extra)
    return merged


def llm(stack: str = "kind", extra: dict | None = None, **layer_options):
    return evaluate(stack, {"cnai:layers": layers(stack, **layer_options), **(extra or {})})


def isvcs(rec) -> dict[str, dict]:
    return {o["metadata"]["name"]: normalize(o, reveal=True) for o in rec.objects() if o["kind"] == "InferenceService"
            and o["metadata"]["namespace"].startswith("team-")}


def by(rec, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: normalize(o, reveal=True) for o in rec.objects() if o["kind"] == kind}


def test_kind_serves_tiny_models_on_cpu_with_the_hugging_face_backend():
    rec = llm()
    chat, embed = isvcs(rec)["chat"], isvcs(rec)["embed"]
    model = chat["spec"]["predictor"]["model"]
    assert model["runtime"] == "kserve-huggingfaceserver" and model["modelFormat"] == {"name": "huggingface"}
    assert model["args"] == ["--model_name=chat", "--backend=huggingface", "--dtype=bfloat16", "--max_model_len=512"]
    assert model["storageUri"] == "pvc://llm-chat/model"  # the cache, not the hub
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in model["env"]
    assert "nvidia.com/gpu" not in model["resources"]["limits"]
    assert embed["spec"]["predictor"]["model"]["args"][1:] == ["--task=text_embedding", "--backend=huggingface"]
    assert chat["metadata"]["namespace"] == "team-research"
    assert chat["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "default"  # queued like every team pod
    assert chat["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "Standard",
                                               "serving.kserve.io/autoscalerClass": "none"}
    genai = isvcs(evaluate("kind-genai"))["embed"]  # the GenAI laptop stack has KEDA: the embedder scales 1 -> 2
    assert genai["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "keda"
    assert (genai["spec"]["predictor"]["minReplicas"], genai["spec"]["predictor"]["maxReplicas"]) == (1, 2)
    for obj in rec.objects():
        if obj["metadata"].get("namespace") == "team-research" and obj["kind"] in (
                "InferenceService", "PersistentVolumeClaim", "Job", "ConfigMap", "ServiceAccount"):
            validate_object("1.36", normalize(obj, reveal=True))


def test_models_are_cached_by_a_download_job_and_never_download_at_start():
    rec = llm()
    pvc = by(rec, "PersistentVolumeClaim")["llm-chat"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"
    job = next(j for n, j in by(rec, "Job").items() if n.startswith("llm-chat-download-"))
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "docker.io/kserve/storage-initializer:v0.20.0"
    assert c["args"] == ["hf://Qwen/Qwen2-0.5B-Instruct", "/cache/model"]
    token = next(e for e in c["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "HF_TOKEN", "optional": True}
    assert job["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    embed = next(j for n, j in by(rec, "Job").items() if n.startswith("llm-embed-download-"))
    assert embed["spec"]["template"]["spec"]["containers"][0]["args"][0] == \
        "hf://sentence-transformers/all-MiniLM-L6-v2:8b3219a92973c328a8e22fadcfa821b5dc75636a"  # pinned revision


def test_gpu_stacks_serve_with_vllm_on_gpus():
    for stack in ("kind-gpu", "eks", "gke", "existing"):
        chat = isvcs(llm(stack))["chat"]
        model, predictor = chat["spec"]["predictor"]["model"], chat["spec"]["predictor"]
        assert "--backend=vllm" in model["args"] and "--served-model-name=chat" in model["args"], stack
        gpu = next(k for k in model["resources"]["limits"] if k.startswith("nvidia.com/"))
        assert model["resources"]["limits"][gpu] == model["resources"]["requests"][gpu] == "1"
        assert predictor["deploymentStrategy"] == {"type": "Recreate"}
        assert any(t["key"] == "nvidia.com/gpu" for t in predictor["tolerations"])
    existing = isvcs(llm("existing"))["chat"]["spec"]["predictor"]["model"]["resources"]["limits"]
    assert "nvidia.com/gpu" in existing  # MIG single strategy: slices are nvidia.com/gpu


def test_a_model_picks_its_mig_slice_where_the_cluster_advertises_several():
    mig = {"enabled": True, "count": 8, "model": "NVIDIA-A100-SXM4-80GB",
           "sharing": {"mode": "mig", "migStrategy": "mixed", "migProfile": "all-balanced"}}
    teams = [{"name": "research", "owner": "r@example.com",
              "quota": {"gpuResources": {"nvidia.com/mig-3g.40gb": 2, "nvidia.com/mig-1g.10gb": 4}}}]
    models = [{"name": "chat", "source": "hf://Qwen/Qwen2.5-7B-Instruct", "gpus": 1,
               "gpuResource": "nvidia.com/mig-3g.40gb", "maxReplicas": 2},
              {"name": "small", "source": "hf://Qwen/Qwen2.5-1.5B-Instruct", "gpus": 1}]
    rec = llm("existing", {"cnai:gpu": mig, "cnai:teams": teams}, llm={"enabled": True, "models": models})
    limits = {n: i["spec"]["predictor"]["model"]["resources"]["limits"] for n, i in isvcs(rec).items()}
    assert limits["chat"]["nvidia.com/mig-3g.40gb"] == "1" and "nvidia.com/gpu" not in limits["chat"]
    assert limits["small"]["nvidia.com/mig-1g.10gb"] == "1"  # the default: the smallest slice
    with pytest.raises(ConfigError, match=r"^cnai:layers.llm.models\[0\].gpuResource: the cluster advertises no "
                                          "nvidia.com/mig-7g.80gb; its GPU resources: nvidia.com/mig-1g.10gb, "):
        run("existing", {"cnai:gpu": mig, "cnai:teams": teams, "cnai:layers": layers("existing", llm={
            "enabled": True, "models": [{**models[0], "gpuResource": "nvidia.com/mig-7g.80gb"}]})})


def test_dra_gpus_come_as_claims_and_the_gpu_image_is_asked_for():
    rec = llm("kind-gpu", {"cnai:gpu": {"enabled": True, "count": 2, "allocation": "dra"}})
    predictor = isvcs(rec)["chat"]["spec"]["predictor"]
    assert predictor["resourceClaims"] == [{"name": "gpu-0", "resourceClaimTemplateName": "gpu"}]
    assert predictor["model"]["resources"]["claims"] == [{"name": "gpu-0"}]
    assert predictor["model"]["runtimeVersion"] == "v0.20.0-gpu"
    assert "nvidia.com/gpu" not in predictor["model"]["resources"]["limits"]


@pytest.mark.skipif("keda" not in LAYERS, reason="the keda layer is not in this checkout")
def test_keda_scales_gpu_models_on_waiting_requests_and_cpu_models_on_cpu():
    models = [{"name": "chat", "source": "hf://Qwen/Qwen2.5-1.5B-Instruct", "gpus": 1, "maxReplicas": 3},
              {"name": "embed", "source": "hf://sentence-transformers/all-MiniLM-L6-v2", "task": "embedding",
               "maxReplicas": 2}]
    rec = evaluate("kind-gpu", {"cnai:layers": layers("kind-gpu", llm={"enabled": True, "models": models},
                                                      keda={"enabled": True})})
    chat, embed = isvcs(rec)["chat"], isvcs(rec)["embed"]
    assert chat["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "keda"
    metric = chat["spec"]["predictor"]["autoScaling"]["metrics"][0]["external"]
    assert metric["metric"]["query"] == 'sum(vllm:num_requests_waiting{namespace="team-research",model_name="chat"})'
    assert metric["metric"]["serverAddress"].endswith(":9090") and metric["target"] == {"type": "Value", "value": "4"}
    cpu = embed["spec"]["predictor"]["autoScaling"]["metrics"][0]["external"]["metric"]["query"]
    assert cpu.startswith("sum(rate(container_cpu_usage_seconds_total{")
    validate_object("1.36", chat)
    kserve = rec.get("kubernetes:helm.sh/v3:Release", "kserve-crd")  # KServe's first release: its controller
    assert any(rec.label(d).endswith("Release::keda") for d in kserve.depends_on)  # starts after KEDA's CRDs


def test_scale_to_zero_needs_knative():
    models = [{"name": "chat", "source": "hf://Qwen/Qwen2-0.5B-Instruct", "minReplicas": 0}]
    with pytest.raises(ConfigError, match=r"^cnai:layers.llm.models\[0\].minReplicas: 0 \(scale to zero\) needs "
                                          "KServe in Knative mode"):
        run("kind", {"cnai:layers": layers("kind", llm={"enabled": True, "models": models})})
    rec = evaluate("kind", {"cnai:layers": layers("kind", llm={"enabled": True, "models": models},
                                                  kserve={"deploymentMode": "Knative"})})
    chat = isvcs(rec)["chat"]
    assert chat["spec"]["predictor"]["minReplicas"] == 0
    assert chat["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    assert "kueue.x-k8s.io/queue-name" not in chat["metadata"]["labels"]  # Knative revisions are not queued
    assert "ports" not in chat["spec"]["predictor"]["model"]


def test_the_token_is_a_secret_and_never_plain_text():
    with pytest.raises(ConfigError, match="^cnai:hfToken: is a credential"):
        run("kind", {"cnai:layers": layers("kind"), "cnai:hfToken": "hf_plain"})
    rec = llm(extra={"cnai:hfToken": {"secure": "v1:encrypted"}})
    token = rec.get("kubernetes:core/v1:Secret", "secret-team-research-hf-token")
    assert normalize(token.inputs)["stringData"] == "[secret]"


def test_teams_and_notebooks_get_the_endpoints():
    rec = llm()
    endpoints = by(rec, "ConfigMap")["llm-endpoints"]["data"]
    assert endpoints == {"OPENAI_BASE_URL": "http://chat-predictor.team-research.svc.cluster.local/openai/v1",
                         "LLM_CHAT_MODEL": "chat", "LLM_EMBEDDING_MODEL": "embed",
                         "LLM_EMBEDDING_BASE_URL": "http://embed-predictor.team-research.svc.cluster.local/openai/v1"}
    env = values_of(rec, "jupyterhub")["singleuser"]["extraEnv"]
    assert env["OPENAI_BASE_URL"] == {"valueFrom": {"configMapKeyRef": {"name": "llm-endpoints",
                                                                        "key": "OPENAI_BASE_URL", "optional": True}}}
    mounts = values_of(rec, "jupyterhub")["singleuser"]["storage"]["extraVolumeMounts"]
    assert {"name": "rag-example", "mountPath": "/opt/cnai/examples/rag", "readOnly": True} in mounts


def test_models_from_the_object_store_read_the_models_bucket():
    models = [{"name": "chat", "source": "store:qwen2-0.5b"}]
    rec = evaluate("kind", {"cnai:layers": layers("kind", llm={"enabled": True, "models": models})})
    job = next(j for n, j in by(rec, "Job").items() if n.startswith("llm-chat-download-"))
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][0] == "s3://models/qwen2-0.5b"
    assert {e["name"] for e in c["env"]} >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"}
    identities = {i.layer: i for i in rec.platform.requests.identities}
    assert identities["llm"].buckets == {"models": "ro"}


@pytest.mark.parametrize("models,message", [
    ([{"name": "chat", "source": "hf://a/b", "team": "nobody"}], r"models\[0\].team: no team 'nobody'"),
    ([{"name": "chat", "source": "hf://a/b", "gpus": 1}], r"models\[0\].gpus: 1 GPU\(s\) but the cluster has none"),
    ([{"name": "chat", "source": "hf://a/b"}, {"name": "chat", "source": "hf://c/d"}],
     r"models\[1\].name: 'chat' is declared twice"),
    ([{"name": "chat", "source": "hf://a/b", "minReplicas": 3, "maxReplicas": 2}],
     r"models\[0\].minReplicas: 3 is above maxReplicas 2"),
    ([{"name": "chat", "source": "https://example.com/model"}], r"models\[0\].source"),
    ([{"name": "chat", "source": "hf://a/b", "gpuResource": "nvidia.com/gpu"}],
     r"models\[0\].gpuResource: the cluster advertises no nvidia.com/gpu; its GPU resources: none"),
])
def test_bad_models_are_refused_in_one_line(models, message):
    with pytest.raises(ConfigError, match=f"^cnai:layers.llm.{message}"):
        run("kind", {"cnai:layers": layers("kind", llm={"enabled": True, "models": models})})


def test_the_policy_pack_keeps_models_within_the_team_gpu_quota():
    from tests.test_policies import resources, run_rules

    models = [{"name": "big", "source": "hf://a/b", "gpus": 2, "maxReplicas": 3}]
    results = run_rules(resources("kind-gpu", {"cnai:layers": layers("kind-gpu", llm={"enabled": True,
                                                                                      "models": models})}))
    assert results["inference-gpus-within-quota"] and "2 GPU(s) x 3 replica(s)" in \
        results["inference-gpus-within-quota"][0][1]
    fine = run_rules(resources("kind-gpu", {"cnai:layers": layers("kind-gpu")}))
    assert not {name: v for name, v in fine.items() if v}  # the default models comply with every rule


def test_llm_dashboard_reads_vllm_metrics():
    from addons.observability import DASHBOARDS

    dashboard = DASHBOARDS["cnai-llm"]
    for metric in ("vllm:generation_tokens_total", "vllm:time_to_first_token_seconds_bucket",
                   "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        assert metric in dashboard
