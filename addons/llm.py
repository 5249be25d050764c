"""llm: open LLMs and embedding models behind OpenAI-compatible APIs, served by KServe's Hugging Face runtime in
team namespaces, plus the RAG example.

A team declares models in config (`cnai:layers.llm.models`: name, source, task, GPUs, context length,
replicas). For each, in the team's namespace:
- a PVC `llm-<name>` that caches the model, filled by a download Job (KServe's storage initializer: `hf://`
  with the token from Secret `hf-token`, or the platform's `models` bucket), so a restart does not download again;
- an InferenceService `<name>` on `kserve-huggingfaceserver` reading the cache (`pvc://`): on GPUs the vLLM
  backend, on CPU the Hugging Face backend (`--backend=huggingface`: the tiny CPU models of the kind path).
  Standard mode: queued by Kueue like every team pod, scaled by KEDA when the keda layer is on (vLLM's waiting
  requests on GPUs, CPU use on CPU); Knative mode (`minReplicas: 0`): scale to zero behind the activator.
- ConfigMap `llm-endpoints` with the team's chat and embedding endpoints (`OPENAI_BASE_URL`, ...).
The RAG example (with the vectors layer) ingests a few documents into the team's pgvector database and answers
a question with retrieved passages, logged to MLflow.

Over 300 lines: the models' objects (cache, download, server, scaling, endpoints) and the RAG example that uses
them share one set of names; apart, they would have to be kept in step across files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from addons.base import Layer
from modules.clusters.contract import GPU_TAINT
from modules.shared.config import ConfigError, DnsLabel, LayerOptions, Quantity, Strict, Team
from modules.shared.gpus import GPU_CLAIM_TEMPLATE
from modules.shared.k8s import resources, secret
from modules.shared.labels import MANAGED_BY
from modules.shared.offers import (
    BucketStore,
    EventAutoscaling,
    LlmServing,
    Metrics,
    ModelServing,
    Queueing,
    Tracking,
    VectorStore,
)
from modules.shared.parts import KubeObject, Workload
from modules.shared.versions import VERSIONS

ASSETS = Path(__file__).parent / "assets"
RUNTIME = "kserve-huggingfaceserver"
ENDPOINTS = "llm-endpoints"
HF_SECRET = "hf-token"
RAG = "rag-example"
RAG_DOCS = ASSETS / "rag-docs"
STORE_PREFIX = "store:"
SOURCE = r"^(hf://[A-Za-z0-9._-]+/[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?|store:[A-Za-z0-9._/-]+)$"
STORAGE_UID = 1000  # USER of the storage-initializer and huggingfaceserver images
MLFLOW_UID = 1001  # the MLflow server image's user (the RAG Jobs)
_RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

# Requests per model pod: (cpu, memory, memory limit), by profile size, task and device. vLLM keeps the weights and
# the KV cache on the GPU; host memory holds the process and the weights while they load.
_SIZES = {
    "small": {("chat", "cpu"): ("1", "2560Mi", "4Gi"), ("embedding", "cpu"): ("500m", "1Gi", "2Gi"),
              ("chat", "gpu"): ("1", "4Gi", "6Gi"), ("embedding", "gpu"): ("500m", "2Gi", "3Gi")},
    "large": {("chat", "cpu"): ("2", "4Gi", "6Gi"), ("embedding", "cpu"): ("1", "2Gi", "3Gi"),
              ("chat", "gpu"): ("4", "16Gi", "24Gi"), ("embedding", "gpu"): ("1", "4Gi", "8Gi")},
}


class LlmModel(Strict):
    name: DnsLabel = Field(description="InferenceService name, and the `model` clients ask for")
    source: str = Field(pattern=SOURCE, description="`hf://<owner>/<model>[:<revision>]` or `store:<path>` (the "
                                                    "platform's `models` bucket)")
    task: Literal["chat", "embedding"] = "chat"
    team: str = Field("", description="team whose namespace serves it (default: the first team)")
    gpus: int = Field(0, ge=0, le=8, description="GPUs per replica: 0 serves on CPU with the Hugging Face backend, "
                                                 "1+ with vLLM")
    gpuResource: str = Field("", description="the GPU resource `gpus` counts, where the cluster advertises several "
                                             "(MIG all-balanced: nvidia.com/mig-<profile>); default: the smallest")
    maxModelLen: int | None = Field(None, ge=128, le=1_048_576, description="context length (tokens)")
    minReplicas: int = Field(1, ge=0, le=100, description="0: scale to zero (KServe in Knative mode)")
    maxReplicas: int = Field(1, ge=1, le=100)
    cpu: Quantity | None = Field(None, description="CPU per replica (default by task and device)")
    memory: Quantity | None = Field(None, description="memory per replica (default by task and device)")
    cacheSize: Quantity = Field("10Gi", description="the model cache PVC")
    cacheStorageClass: str = Field("", pattern=r"^[a-z0-9.-]*$",
                                   description="StorageClass of the cache (default: the cluster's)")
    cacheAccessMode: Literal["ReadWriteOnce", "ReadWriteMany"] = Field(
        "ReadWriteOnce", description="ReadWriteMany (with a class that offers it) lets replicas on several nodes "
                                     "share the cache")
    args: tuple[str, ...] = Field((), strict=False, description="extra server arguments (vLLM engine flags on GPUs)")


class LlmOptions(LayerOptions):
    models: tuple[LlmModel, ...] | None = Field(
        None, strict=False,
        description="models to serve (null: a chat model, on a GPU when the cluster has one, else a tiny CPU one, "
                    "and a CPU embedding model, in the first team's namespace; `[]`: none)")
    waitingPerReplica: int = Field(
        4, ge=1, le=1000,
        description="KEDA scales a GPU model out when vLLM has more waiting requests than this per replica")
    ragExample: bool = Field(True, description="the RAG example in the chat model's team namespace (with the "
                                               "vectors layer and an embedding model in that team)")


def _hf(source: str) -> str:
    return source if source.startswith("hf://") else ""


class Llm(Layer):
    name = "llm"
    component = "Llm"
    description = "Open LLMs and embedding models behind OpenAI-compatible APIs (KServe), and a RAG example."
    requires = ("kserve",)
    # Models, caches and endpoints go into team namespaces; their pods queue in the team's Kueue queue; the RAG
    # example needs the vectors layer's Secrets and MLflow; KEDA scales on Prometheus.
    after = {"teams": "objects", "kueue": "objects", "kserve": "objects", "vectors": "objects", "mlflow": "objects",
             "keda": "objects", "observability": "objects"}
    offers = (LlmServing,)
    Options = LlmOptions
    default_namespace = None  # everything lives in team namespaces

    # -- the models ------------------------------------------------------------------------------
    def models(self) -> list[LlmModel]:
        if self.options.models is not None:
            return list(self.options.models)
        gpu = bool(self.caps.gpus)
        chat = VERSIONS.models["chat-gpu" if gpu else "chat-cpu"]
        return [LlmModel(name="chat", source=f"hf://{chat}", task="chat", gpus=1 if gpu else 0,
                         maxModelLen=4096 if gpu else 512),
                # Up to two replicas: with KEDA, every stack shows a model scaling out on its load.
                LlmModel(name="embed", source=f"hf://{VERSIONS.models['embedding']}", task="embedding",
                         maxReplicas=2)]

    def _team(self, model: LlmModel) -> Team:
        teams = self.teams()
        return next(t for t in teams if t.name == model.team) if model.team else teams[0]

    def _by_team(self) -> dict[str, list[LlmModel]]:
        out: dict[str, list[LlmModel]] = {}
        for m in self.models():
            out.setdefault(self._team(m).namespace, []).append(m)
        return out

    def validate(self) -> None:
        models, teams = self.models(), {t.name for t in self.teams()}
        if models and not teams:
            raise ConfigError("cnai:layers.llm.models: models are served in team namespaces; enable the teams layer "
                              "and list a team in cnai:teams")
        seen: set[tuple[str, str]] = set()
        for i, m in enumerate(models):
            where = f"cnai:layers.llm.models[{i}]"
            if m.team and m.team not in teams:
                raise ConfigError(f"{where}.team: no team {m.team!r}; teams: {', '.join(sorted(teams))}")
            key = (self._team(m).name, m.name)
            if key in seen:
                raise ConfigError(f"{where}.name: {m.name!r} is declared twice for team {key[0]}")
            seen.add(key)
            if m.gpus and not self.caps.gpus:
                raise ConfigError(f"{where}.gpus: {m.gpus} GPU(s) but the cluster has none; use gpus: 0 (CPU) or "
                                  "enable cnai:gpu")
            self.caps.check_gpu_resources(f"{where}.gpuResource", [m.gpuResource] if m.gpuResource else [])
            if m.gpuResource and not m.gpus:
                raise ConfigError(f"{where}.gpuResource: {m.gpuResource} but gpus is 0; set gpus: 1 or more")
            if m.minReplicas > m.maxReplicas:
                raise ConfigError(f"{where}.minReplicas: {m.minReplicas} is above maxReplicas {m.maxReplicas}")
            serving = self.peers.get(ModelServing)
            if m.minReplicas == 0 and not (serving and serving.knative):
                raise ConfigError(f"{where}.minReplicas: 0 (scale to zero) needs KServe in Knative mode "
                                  "(cnai:layers.kserve.deploymentMode: Knative); Standard mode has no activator to "
                                  "wake a model on its first request")
            if m.source.startswith(STORE_PREFIX) and self.peers.get(BucketStore) is None:
                raise ConfigError(f"{where}.source: store: paths need the object-store layer")

    # -- credentials -----------------------------------------------------------------------------
    def bucket_needs(self) -> dict[str, str]:
        """The platform's `models` bucket, read-only, when a model comes from it (`store:` sources)."""
        models = self.options.models or ()
        return {"models": "ro"} if any(m.source.startswith(STORE_PREFIX) for m in models) else {}

    def service_accounts(self) -> tuple[tuple[str, str], ...]:
        return tuple((ns, "llm-models") for ns in sorted(self._by_team()))

    def provided_credentials(self) -> dict[str, str]:
        token = self.spec.hfToken
        return {"hf-token": token.get_secret_value()} if token else {}

    # -- per model ---------------------------------------------------------------------------------
    def _size(self, m: LlmModel) -> tuple[str, str, str]:
        cpu, memory, limit = _SIZES[self.profile.size][(m.task, "gpu" if m.gpus else "cpu")]
        memory = m.memory or memory
        return m.cpu or cpu, memory, limit if not m.memory else memory

    def _args(self, m: LlmModel) -> list[str]:
        args = [f"--model_name={m.name}"]
        if m.task == "embedding":
            args += ["--task=text_embedding", "--backend=huggingface"]
        elif m.gpus:
            # vLLM: its metrics carry model_name = the served name, which the scaler and dashboard select on.
            args += ["--backend=vllm", f"--served-model-name={m.name}", "--gpu-memory-utilization=0.90"]
        else:
            args += ["--backend=huggingface", "--dtype=bfloat16"]  # as KServe's CPU tests serve Qwen2
        if m.maxModelLen:
            args.append(f"--max_model_len={m.maxModelLen}")
        return args + list(m.args)

    def _autoscaling(self, m: LlmModel, ns: str) -> tuple[dict[str, str], dict[str, Any]]:
        """(annotations, predictor fields) for scaling: Knative's autoscaler to zero, KEDA on a Prometheus signal,
        or fixed replicas (no HPA: kind has no metrics-server)."""
        serving = self.peers.get(ModelServing)
        if serving is not None and serving.knative:
            # The activator holds requests while a replica starts; a cold model needs minutes, not seconds.
            return {"serving.kserve.io/deploymentMode": "Knative",
                    "serving.knative.dev/progress-deadline": "30m"}, {}
        annotations = {"serving.kserve.io/deploymentMode": "Standard"}
        metrics = self.peers.get(Metrics)
        if m.maxReplicas == m.minReplicas or self.peers.get(EventAutoscaling) is None or metrics is None:
            annotations["serving.kserve.io/autoscalerClass"] = "none"
            return annotations, {}
        annotations["serving.kserve.io/autoscalerClass"] = "keda"
        pods = f'namespace="{ns}",pod=~"{m.name}-predictor-.*"'
        if m.gpus and m.task == "chat":
            query = f'sum(vllm:num_requests_waiting{{namespace="{ns}",model_name="{m.name}"}})'
            target = str(self.options.waitingPerReplica)
        else:  # the Hugging Face backend has no request metrics: the model containers' CPU use, in cores
            query = f'sum(rate(container_cpu_usage_seconds_total{{{pods},container="kserve-container"}}[2m]))'
            target = str(self._cpu_cores(m) * 0.8)
        metric = {"type": "External", "external": {
            "metric": {"backend": "prometheus", "serverAddress": metrics.prometheus_url, "query": query},
            "target": {"type": "Value", "value": target}}}
        return annotations, {"autoScaling": {"metrics": [metric]}}

    def _cpu_cores(self, m: LlmModel) -> float:
        cpu = self._size(m)[0]
        return int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)

    def _isvc(self, m: LlmModel, ns: str) -> dict[str, Any]:
        cpu, memory, limit = self._size(m)
        res = resources(cpu, memory, limit)
        c = self.caps
        predictor: dict[str, Any] = {"minReplicas": m.minReplicas, "maxReplicas": m.maxReplicas,
                                     "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}
        model: dict[str, Any] = {
            "modelFormat": {"name": "huggingface"}, "runtime": RUNTIME,
            "storageUri": f"pvc://llm-{m.name}/model", "args": self._args(m),
            # The model is on the cache volume: no download at start, even if the hub is unreachable.
            "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "HF_HOME", "value": "/tmp/hf"}],
        }
        if m.gpus:
            predictor["deploymentStrategy"] = {"type": "Recreate"}  # a rollout would need twice the GPUs
            predictor["tolerations"] = [dict(t) for t in c.gpu_tolerations] or [GPU_TAINT]
            if c.gpu_nodes_labelled:
                predictor["nodeSelector"] = dict(c.gpu_node_selector)
            if c.gpu_allocation == "dra":
                claims = [f"gpu-{i}" for i in range(m.gpus)]
                predictor["resourceClaims"] = [{"name": n, "resourceClaimTemplateName": GPU_CLAIM_TEMPLATE}
                                               for n in claims]
                res["claims"] = [{"name": n} for n in claims]
                # KServe picks the -gpu image from GPU limits; claims are not limits.
                model["runtimeVersion"] = f"{VERSIONS.chart('kserve-resources').version}-gpu"
            else:
                gpu = m.gpuResource or c.gpu_resource
                res["requests"][gpu] = str(m.gpus)
                res["limits"][gpu] = str(m.gpus)
        model["resources"] = res
        annotations, scaling = self._autoscaling(m, ns)
        predictor.update(scaling)
        if annotations["serving.kserve.io/deploymentMode"] == "Standard":
            # The port the platform's PodMonitor scrapes (vLLM's and the server's metrics share 8080).
            model["ports"] = [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
        predictor["model"] = model
        labels = dict(MANAGED_BY)
        queueing = self.peers.get(Queueing)
        if queueing and annotations["serving.kserve.io/deploymentMode"] == "Standard":
            labels.update(queueing.workload_labels())  # KServe copies it to the Deployment: Kueue admits each pod
        return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                "metadata": {"name": m.name, "namespace": ns, "labels": labels, "annotations": annotations},
                "spec": {"predictor": predictor}}

    def _download(self, m: LlmModel, ns: str) -> dict[str, Any]:
        digest = hashlib.sha256(m.source.encode()).hexdigest()[:8]
        env: list[dict[str, Any]] = [{"name": "HF_HOME", "value": "/tmp/hf"}]
        source = m.source
        if source.startswith(STORE_PREFIX):
            store = self.peers.need(BucketStore).access(self.name)
            source = store.url("models", source[len(STORE_PREFIX):])
            env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": "llm-models-s3", "key": k}}}
                    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if store.static_keys]
            env += [{"name": k, "value": v} for k, v in store.env().items() if not k.startswith("AWS_ACCESS")
                    and not k.startswith("AWS_SECRET")]
        else:  # the token of a gated or private model, when the stack has one
            env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": HF_SECRET, "key": "HF_TOKEN",
                                                                           "optional": True}}})
        queueing = self.peers.get(Queueing)
        labels = {**MANAGED_BY, **(queueing.workload_labels() if queueing else {})}
        return {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"llm-{m.name}-download-{digest}", "namespace": ns, "labels": labels,
                         # Large models take long: the server starts when the cache is full, the deploy does not wait.
                         "annotations": {"pulumi.com/skipAwait": "true"}},
            "spec": {"backoffLimit": 6, "activeDeadlineSeconds": 7200, "template": {"spec": {
                "restartPolicy": "OnFailure",
                "serviceAccountName": "llm-models",
                "securityContext": {"runAsNonRoot": True, "runAsUser": STORAGE_UID, "fsGroup": STORAGE_UID,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "download", "image": VERSIONS.images["kserve-storage-initializer"],
                                "args": [source, "/cache/model"], "env": env,
                                "resources": resources("100m", "256Mi", "2Gi"), "securityContext": dict(_RESTRICTED),
                                "volumeMounts": [{"name": "cache", "mountPath": "/cache"},
                                                 {"name": "tmp", "mountPath": "/tmp"}]}],
                "volumes": [{"name": "cache", "persistentVolumeClaim": {"claimName": f"llm-{m.name}"}},
                            {"name": "tmp", "emptyDir": {}}],
            }}},
        }

    def _endpoint(self, m: LlmModel, ns: str) -> str:
        return f"http://{m.name}-predictor.{ns}.svc.cluster.local/openai/v1"

    # -- what it offers ----------------------------------------------------------------------------
    @property
    def endpoints_config(self) -> str:
        return ENDPOINTS

    def client_env(self) -> list[dict[str, Any]]:
        keys = ("OPENAI_BASE_URL", "LLM_CHAT_MODEL", "LLM_EMBEDDING_BASE_URL", "LLM_EMBEDDING_MODEL")
        return [{"name": k, "valueFrom": {"configMapKeyRef": {"name": ENDPOINTS, "key": k, "optional": True}}}
                for k in keys]

    def _endpoints(self, ns: str, models: list[LlmModel]) -> dict[str, str]:
        data = {}
        chat = next((m for m in models if m.task == "chat"), None)
        embed = next((m for m in models if m.task == "embedding"), None)
        if chat:
            data.update(OPENAI_BASE_URL=self._endpoint(chat, ns), LLM_CHAT_MODEL=chat.name)
        if embed:
            data.update(LLM_EMBEDDING_BASE_URL=self._endpoint(embed, ns), LLM_EMBEDDING_MODEL=embed.name)
        return data

    # -- objects -----------------------------------------------------------------------------------
    def objects(self) -> list[KubeObject]:
        out: list[KubeObject] = []
        store = self.peers.get(BucketStore)
        access = store.access(self.name) if store and any(
            m.source.startswith(STORE_PREFIX) for m in self.models()) else None
        for ns, models in sorted(self._by_team().items()):
            labels = dict(MANAGED_BY)
            sa = {"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": "llm-models", "namespace": ns, "labels": labels}}
            if access is not None and access.annotations:
                sa["metadata"]["annotations"] = dict(access.annotations)
            out.append(KubeObject(sa, phase="after-peers"))
            if access is not None and access.static_keys:
                out.append(KubeObject(secret("llm-models-s3", ns, {"AWS_ACCESS_KEY_ID": access.access_key,
                                                                   "AWS_SECRET_ACCESS_KEY": access.secret_key}),
                                      phase="after-peers"))
            if self.spec.hfToken is not None:
                from modules.shared.markers import Generated

                out.append(KubeObject(secret(HF_SECRET, ns, {"HF_TOKEN": Generated(self.name, "hf-token")}),
                                      phase="after-peers"))
            out.append(KubeObject({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": ENDPOINTS, "namespace": ns, "labels": labels},
                                   "data": self._endpoints(ns, models)}, phase="after-peers"))
            for m in models:
                pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                       "metadata": {"name": f"llm-{m.name}", "namespace": ns, "labels": labels},
                       "spec": {"accessModes": [m.cacheAccessMode],
                                "storageClassName": m.cacheStorageClass or self.caps.default_storage_class,
                                "resources": {"requests": {"storage": m.cacheSize}}}}
                out.append(KubeObject(pvc, phase="after-peers"))
                out.append(KubeObject(self._download(m, ns), phase="after-all", ignore_changes=("spec.suspend",),
                                      wait_for=(f"PersistentVolumeClaim/{ns}/llm-{m.name}",
                                                f"ServiceAccount/{ns}/llm-models")))
                out.append(KubeObject(self._isvc(m, ns), phase="after-all",
                                      wait_for=(f"PersistentVolumeClaim/{ns}/llm-{m.name}",)))
        return out + self._rag()

    # -- the RAG example -------------------------------------------------------------------------------
    def _rag(self) -> list[KubeObject]:
        vectors = self.peers.get(VectorStore)
        if not (self.options.ragExample and vectors):
            return []
        for ns, models in sorted(self._by_team().items()):
            endpoints = self._endpoints(ns, models)
            if "OPENAI_BASE_URL" in endpoints and "LLM_EMBEDDING_BASE_URL" in endpoints:
                return self._rag_objects(ns, vectors)
        return []

    def rag_files(self) -> dict[str, str]:
        files = {f"doc-{p.name}": p.read_text() for p in sorted(RAG_DOCS.glob("*.md"))}
        for name in ("rag-ingest.py", "rag-query.py", "rag-example.ipynb"):
            files[name] = (ASSETS / name).read_text()
        return files

    def _rag_objects(self, ns: str, vectors) -> list[KubeObject]:
        labels = dict(MANAGED_BY)
        files = self.rag_files()
        digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:8]
        queueing = self.peers.get(Queueing)
        queued = {**labels, **(queueing.workload_labels() if queueing else {})}
        env = [*vectors.client_env(), *self.client_env(), {"name": "HOME", "value": "/tmp"},
               {"name": "RAG_DOCS", "value": "/rag"}]
        tracking = self.peers.get(Tracking)
        if tracking:
            env.append({"name": "MLFLOW_TRACKING_URI", "value": tracking.tracking_uri})
        out = [KubeObject({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": RAG, "namespace": ns, "labels": labels}, "data": files},
                          phase="after-all")]
        admin = tracking.admin_password() if tracking else None
        if admin is not None:  # MLflow with logins: the example logs as its admin
            out.append(KubeObject(secret(f"{RAG}-mlflow", ns, {"MLFLOW_TRACKING_USERNAME": "admin",
                                                               "MLFLOW_TRACKING_PASSWORD": admin}), phase="after-all"))
        for step in ("ingest", "query"):
            container: dict[str, Any] = {
                "name": step, "image": VERSIONS.images["mlflow-server"], "command": ["python", f"/rag/rag-{step}.py"],
                "env": env, "resources": resources("100m", "256Mi", "1Gi"), "securityContext": dict(_RESTRICTED),
                "volumeMounts": [{"name": "rag", "mountPath": "/rag"}, {"name": "tmp", "mountPath": "/tmp"}]}
            if admin is not None:
                container["envFrom"] = [{"secretRef": {"name": f"{RAG}-mlflow"}}]
            job = {"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": {"name": f"rag-{step}-{digest}", "namespace": ns, "labels": queued,
                                # Both wait for the models (minutes on a laptop); the deploy does not wait for them.
                                "annotations": {"pulumi.com/skipAwait": "true"}},
                   "spec": {"backoffLimit": 3, "activeDeadlineSeconds": 3600, "template": {"spec": {
                       "restartPolicy": "OnFailure",
                       "securityContext": {"runAsNonRoot": True, "runAsUser": MLFLOW_UID,
                                           "seccompProfile": {"type": "RuntimeDefault"}},
                       "containers": [container],
                       "volumes": [{"name": "rag", "configMap": {"name": RAG}}, {"name": "tmp", "emptyDir": {}}]}}}}
            out.append(KubeObject(job, phase="after-all", ignore_changes=("spec.suspend",),
                                  wait_for=(f"ConfigMap/{ns}/{RAG}",)))
        return out

    # -- footprint ---------------------------------------------------------------------------------
    def workloads(self) -> list[Workload]:
        # The model servers run in team namespaces (their team's quota); KServe creates them from the
        # InferenceServices.
        out = []
        for m in self.models():
            cpu, memory, _ = self._size(m)
            out.append(Workload(f"model {m.name}", cpu, memory, max(m.minReplicas, 0), rendered=False))
        return out

    def outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for ns, models in self._by_team().items():
            for m in models:
                out[m.name] = {"namespace": ns, "task": m.task, "openai": self._endpoint(m, ns),
                               "source": m.source, "gpus": m.gpus}
        return {"models": out}

