"""Smoke: LLM serving, scaling and the RAG example (docs/first-llm.md).

Each model's cache was filled by its download Job and its InferenceService is Ready; the chat model answers an
OpenAI-compatible chat completion and the embedding model returns vectors; with KEDA, the ScaledObject KServe
made for a scaling model is Ready with the configured bounds; the RAG example ingested the shipped documents
and answered its question from the right document, logged to MLflow. On kind these are the tiny CPU models.
Client requests run in-cluster from a pinned image; Jobs are deleted afterwards.

Over 300 lines: serving, scaling and RAG share their discovery of models and their in-cluster clients.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.smoke.helpers import client_job, client_result, conditions, run_job

pytestmark = pytest.mark.smoke

# POST json to a URL until it answers (the model may still be loading); prints one result line.
_POST = '''
import json, sys, time, urllib.error, urllib.request
url, body, seconds = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3])
deadline, error = time.time() + seconds, ""
while time.time() < deadline:
    try:
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as resp:
            print("CNAI-SMOKE-RESULT " + json.dumps({"status": resp.status, "response": json.load(resp)}), flush=True)
            sys.exit(0)
    except Exception as exc:
        error = f"{type(exc).__name__}: {getattr(exc, 'read', lambda: b'')()[:500]!r} {exc}"
    time.sleep(10)
print("CNAI-SMOKE-RESULT " + json.dumps({"error": error}), flush=True)
sys.exit(1)
'''


@pytest.fixture(scope="module")
def llm(platform):
    layer = platform.enabled_layer("llm")
    models = layer.models()
    if not models:
        pytest.skip(f"cnai:layers.llm.models is empty in stack {platform.stack}")
    return layer


def _models(llm, task: str) -> list[tuple[Any, str]]:
    return [(m, ns) for ns, models in llm._by_team().items() for m in models if m.task == task]


def _ready(platform, ns: str, name: str) -> None:
    def ready():
        isvc = platform.custom.get_namespaced_custom_object("serving.kserve.io", "v1beta1", ns, "inferenceservices",
                                                            name, _request_timeout=30)
        cond = conditions(isvc).get("Ready") or {}
        return cond.get("status") == "True", f"Ready={cond.get('status')} ({cond.get('reason')}: {cond.get('message')})"

    platform.wait_until(ready, f"InferenceService {ns}/{name} Ready", interval=15,
                        diagnose=lambda: "\n".join([platform.events(ns), platform.pods_report(
                            ns, f"serving.kserve.io/inferenceservice={name}", "kserve-container", tail=60)]))


def _post(platform, jobs, ns: str, url: str, body: dict, what: str) -> dict:
    from modules.shared.versions import VERSIONS

    job = client_job("llm-client", VERSIONS.images["python"], ["python", "-c", _POST, url, json.dumps(body), "900"],
                     65534, deadline=1200)
    r = client_result(run_job(platform, jobs, ns, job, what), what)
    assert "response" in r, f"{what}: {r.get('error')}"
    return r["response"]


def test_model_caches_were_filled(platform, llm):
    for ns, models in llm._by_team().items():
        for m in models:
            jobs = [j.metadata.name for j in platform.batch.list_namespaced_job(ns, _request_timeout=30).items
                    if j.metadata.name.startswith(f"llm-{m.name}-download-")]
            assert jobs, f"no download Job for model {ns}/{m.name}"

            def done(name=sorted(jobs)[-1]):
                j = platform.batch.read_namespaced_job(name, ns, _request_timeout=30)
                cond = {c.type for c in j.status.conditions or [] if c.status == "True"}
                assert "Failed" not in cond, f"download Job {ns}/{name} failed:\n" + platform.pods_report(
                    ns, f"job-name={name}", tail=60)
                return "Complete" in cond, f"active={j.status.active}"

            platform.wait_until(done, f"model {ns}/{m.name} downloaded into its cache", interval=15)


def test_the_chat_model_answers_an_openai_chat_completion(platform, llm, jobs):
    chats = _models(llm, "chat")
    if not chats:
        pytest.skip("no chat model in cnai:layers.llm.models")
    m, ns = chats[0]
    _ready(platform, ns, m.name)
    body = {"model": m.name, "messages": [{"role": "user", "content": "Say hello in one word."}], "max_tokens": 16}
    resp = _post(platform, jobs, ns, f"{llm._endpoint(m, ns)}/chat/completions", body, f"chat completion from {m.name}")
    content = resp["choices"][0]["message"]["content"]
    assert isinstance(content, str) and content.strip(), f"empty completion: {resp}"
    assert resp.get("model") in (m.name, None), resp


def test_the_embedding_model_returns_vectors(platform, llm, jobs):
    embeds = _models(llm, "embedding")
    if not embeds:
        pytest.skip("no embedding model in cnai:layers.llm.models")
    m, ns = embeds[0]
    _ready(platform, ns, m.name)
    resp = _post(platform, jobs, ns, f"{llm._endpoint(m, ns)}/embeddings",
                 {"model": m.name, "input": ["GPUs are shared fairly.", "Tables live in Iceberg."]},
                 f"embeddings from {m.name}")
    vectors = [d["embedding"] for d in resp["data"]]
    assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 100, resp


def test_scaling_models_have_a_ready_scaled_object(platform, llm):
    scaling = [(m, ns) for ns, models in llm._by_team().items() for m in models
               if llm._autoscaling(m, ns)[0].get("serving.kserve.io/autoscalerClass") == "keda"]
    if not scaling:
        pytest.skip("no model scales with KEDA here (the keda and observability layers, maxReplicas > minReplicas)")
    for m, ns in scaling:
        name = f"{m.name}-predictor"

        def ready(name=name, m=m, ns=ns):
            so = platform.custom.get_namespaced_custom_object("keda.sh", "v1alpha1", ns, "scaledobjects", name,
                                                              _request_timeout=30)
            spec = so["spec"]
            assert (spec.get("minReplicaCount"), spec.get("maxReplicaCount")) == (m.minReplicas, m.maxReplicas), spec
            cond = conditions(so).get("Ready") or {}
            return cond.get("status") == "True", f"Ready={cond.get('status')} ({cond.get('message')})"

        platform.wait_until(ready, f"ScaledObject {ns}/{name} Ready", interval=10)


def test_the_rag_example_answers_from_the_right_document(platform, llm):
    if not llm.options.ragExample or platform.layer("vectors") is None:
        pytest.skip("the RAG example needs the vectors layer and cnai:layers.llm.ragExample")
    ns = next((ns for ns, models in llm._by_team().items() if {m.task for m in models} >= {"chat", "embedding"}),
              None)
    if ns is None:
        pytest.skip("no team has both a chat and an embedding model")

    def job_logs(step: str) -> str:
        names = sorted(j.metadata.name for j in platform.batch.list_namespaced_job(ns, _request_timeout=30).items
                       if j.metadata.name.startswith(f"rag-{step}-"))
        assert names, f"no rag-{step} Job in {ns}"

        def done():
            j = platform.batch.read_namespaced_job(names[-1], ns, _request_timeout=30)
            cond = {c.type for c in j.status.conditions or [] if c.status == "True"}
            assert "Failed" not in cond, platform.pods_report(ns, f"job-name={names[-1]}", tail=80)
            return "Complete" in cond, f"active={j.status.active}"

        platform.wait_until(done, f"RAG {step} Job in {ns}", interval=15)
        pods = platform.core.list_namespaced_pod(ns, label_selector=f"job-name={names[-1]}", _request_timeout=30).items
        ok = [p for p in pods if p.status.phase == "Succeeded"]
        return "\n".join(platform.pod_logs(ns, p.metadata.name, tail=100) for p in ok)

    def result(logs: str) -> dict:
        lines = [line.split("CNAI-RAG-RESULT ", 1)[1] for line in logs.splitlines() if "CNAI-RAG-RESULT " in line]
        assert lines, logs[-2000:]
        return json.loads(lines[-1])

    ingest = result(job_logs("ingest"))
    assert ingest["documents"] == 3 and ingest["stored"] >= ingest["chunks"] > 0, ingest
    query = result(job_logs("query"))
    assert query["sources"][0] == "gpu-sharing.md", f"the question about GPUs retrieved {query['sources']}"
    assert query["answer"], query
    if platform.layer("mlflow") is not None:
        assert query["mlflow_run"], f"the run was not logged to MLflow: {query}"
