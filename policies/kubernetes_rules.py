"""Rules over what the program deploys into Kubernetes: pins, Pod Security, exposure, tenancy, credentials."""

from __future__ import annotations

import re
from typing import Any

from framework import (
    _EXACT_VERSION,
    _PINNED_REF,
    ENFORCE,
    GPU,
    POD_SECURITY_REASON,
    RELEASE,
    TEAM_LABEL,
    containers,
    env_credentials,
    image_pinned,
    image_refs,
    objects,
    of,
    pod_specs,
    rule,
)


@rule("charts-pinned", "Every Helm release names an exact chart version.")
def charts_pinned(rs):
    for r in of(rs, RELEASE):
        version = str(r.props.get("version") or "")
        if not _EXACT_VERSION.match(version):
            yield r.urn, f"release {r.name}: chart version {version!r} is not an exact version"


@rule("manifests-pinned", "Every install manifest or kustomization URL names a release tag.")
def manifests_pinned(rs):
    for r in of(rs, "kubernetes:yaml/v2:ConfigFile", "kubernetes:kustomize/v2:Directory"):
        url = str(r.props.get("file") or r.props.get("directory") or "")
        if url.startswith(("http://", "https://")) and not _PINNED_REF.search(url):
            yield r.urn, f"{r.name}: {url} is not pinned to a release tag"


@rule("images-pinned", "Images in objects the program creates, custom resources included, carry a tag or digest, "
                       "never `latest`.")
def images_pinned(rs):
    for obj in objects(rs):
        if obj.kind in ("Secret", "ConfigMap"):
            continue
        for path, image in image_refs({k: v for k, v in obj.props.items() if k != "metadata"}):
            if not image_pinned(image):
                yield obj.urn, f"{obj.kind} {obj.meta.get('name')}: {path} image {image!r} is not pinned"


@rule("values-images-pinned", "Images set in Helm values (image strings, repository and tag pairs, notebook "
                              "profile images) carry a tag or digest, never `latest`.")
def values_images_pinned(rs):
    for r in of(rs, RELEASE):
        for path, image in image_refs(r.props.get("values") or {}):
            if not image_pinned(image):
                yield r.urn, f"release {r.name}: values {path} image {image!r} is not pinned"


# -- workloads -----------------------------------------------------------------------------------------

@rule("gpu-requests-as-limits", "Containers request GPUs through limits (extended resources cannot overcommit).")
def gpu_limits(rs):
    for obj in objects(rs):
        for pod in pod_specs(obj):
            for c in containers(pod):
                res = c.get("resources") or {}
                if GPU in (res.get("requests") or {}) and GPU not in (res.get("limits") or {}):
                    yield obj.urn, f"{obj.kind} {obj.meta.get('name')}: {GPU} requested without a limit"


@rule("namespaces-pod-security", "Every namespace enforces Pod Security; below restricted only with a reason "
                                 "the namespace states (team namespaces run baseline).")
def namespaces_pod_security(rs):
    for ns in objects(rs, "Namespace"):
        labels = ns.meta.get("labels") or {}
        level = labels.get(ENFORCE)
        name = ns.meta.get("name")
        if level is None:
            yield ns.urn, f"namespace {name} has no {ENFORCE} label"
        elif level == "baseline" and TEAM_LABEL in labels:
            continue
        elif level != "restricted" and not (ns.meta.get("annotations") or {}).get(POD_SECURITY_REASON):
            yield ns.urn, f"namespace {name} runs {level} without a {POD_SECURITY_REASON} annotation"


@rule("no-load-balancers", "No Service of type LoadBalancer: the platform exposes nothing publicly by default.")
def no_load_balancers(rs):
    for svc in objects(rs, "Service"):
        if (svc.props.get("spec") or {}).get("type") == "LoadBalancer":
            yield svc.urn, f"Service {svc.meta.get('name')} is a LoadBalancer"
    for r in of(rs, RELEASE):
        for path, value in _walk(r.props.get("values") or {}):
            if path.endswith("service.type") and value == "LoadBalancer":
                yield r.urn, f"release {r.name}: {path} is LoadBalancer"


_DRA_GPUS = "gpu.nvidia.com.deviceclass.resource.k8s.io/devices"


@rule("inference-gpus-within-quota", "InferenceServices ask, at their maximum replicas, for no more GPUs than "
                                     "their namespace's ResourceQuota allows (a team cannot outgrow its quota).")
def inference_gpus_within_quota(rs):
    hard: dict[str, dict[str, Any]] = {}
    for q in objects(rs, "ResourceQuota"):
        for key, value in ((q.props.get("spec") or {}).get("hard") or {}).items():
            hard.setdefault(q.meta.get("namespace", ""), {})[key] = value
    for isvc in objects(rs, "InferenceService"):
        predictor = (isvc.props.get("spec") or {}).get("predictor") or {}
        model = predictor.get("model") or {}
        limits = (model.get("resources") or {}).get("limits") or {}
        replicas = int(predictor.get("maxReplicas") or predictor.get("minReplicas") or 1)
        asked = {f"requests.{k}": int(v) for k, v in limits.items() if k.startswith("nvidia.com/")}
        if predictor.get("resourceClaims"):
            asked[_DRA_GPUS] = len(predictor["resourceClaims"])
        ns = isvc.meta.get("namespace", "")
        for key, per_pod in asked.items():
            allowed = hard.get(ns, {}).get(key)
            if allowed is None or per_pod * replicas > int(allowed):
                yield isvc.urn, (f"InferenceService {ns}/{isvc.meta.get('name')}: {per_pod} GPU(s) x {replicas} "
                                 f"replica(s) but the namespace's quota allows {allowed if allowed else 'none'} "
                                 f"({key})")


@rule("inference-runtime-pinned", "InferenceServices name their serving runtime (no auto-selection by model format) "
                                  "and any runtime version override is an exact version.")
def inference_runtime_pinned(rs):
    for isvc in objects(rs, "InferenceService"):
        model = (((isvc.props.get("spec") or {}).get("predictor") or {}).get("model") or {})
        name = f"InferenceService {isvc.meta.get('namespace', '')}/{isvc.meta.get('name')}"
        if not model.get("runtime"):
            yield isvc.urn, f"{name}: names no runtime (KServe would pick one by model format)"
        version = model.get("runtimeVersion")
        if version is not None and (not version or version == "latest" or not re.search(r"\d", str(version))):
            yield isvc.urn, f"{name}: runtimeVersion {version!r} is not an exact version"


def _walk(value: Any, prefix: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix, value


@rule("teams-isolated", "Every team namespace has a quota, a limit range, a default-deny policy and a queue.")
def teams_isolated(rs):
    kueue = any(r.type.startswith("kubernetes:kueue.x-k8s.io/") for r in rs)
    by_ns: dict[str, set[tuple[str, str]]] = {}
    for o in objects(rs):
        by_ns.setdefault(o.meta.get("namespace", ""), set()).add((o.kind, o.meta.get("name")))
    for ns in objects(rs, "Namespace"):
        if TEAM_LABEL not in (ns.meta.get("labels") or {}):
            continue
        have = by_ns.get(ns.meta.get("name"), set())
        kinds = {k for k, _ in have}
        missing = [k for k in ("ResourceQuota", "LimitRange") if k not in kinds]
        if ("NetworkPolicy", "default-deny") not in have:
            missing.append("NetworkPolicy default-deny")
        if kueue and "LocalQueue" not in kinds:
            missing.append("LocalQueue")
        if missing:
            yield ns.urn, f"team namespace {ns.meta.get('name')} lacks {', '.join(missing)}"


@rule("credentials-in-secrets", "Helm values carry no password, secret key or token literals.")
def credentials_in_secrets(rs):
    suspicious = re.compile(r"^(password|adminPassword|secretKey|secretAccessKey|awsSecretAccessKey|"
                            r"client_secret|clientSecret|apiToken|secretToken|cookieSecret|token)$", re.I)
    # Under a Secret reference (`secret: {name, <field>: <key>}`, `existingSecret`, `secretKeyRef`), such a
    # field names a key of the Secret, it is not the credential (Polaris' `storage.secret.awsSecretAccessKey`).
    reference = re.compile(r"^(secret|existing\w*secret|secretref|secretkeyref)$", re.I)
    for r in of(rs, RELEASE):
        for path, value in _walk(r.props.get("values") or {}):
            parts = path.split(".")
            if suspicious.match(parts[-1]) and isinstance(value, str) and value and \
                    not any(reference.match(p) for p in parts[:-1]):
                yield r.urn, f"release {r.name}: {path} holds a literal credential; use a Secret reference"


@rule("env-credentials-in-secrets", "Environment variables named like credentials (*_PASSWORD, *_TOKEN, "
                                    "*SECRET*) take their value from a Secret, in objects and in Helm values.")
def env_credentials_in_secrets(rs):
    for obj in objects(rs):
        if obj.kind == "Secret":
            continue
        for path, name in env_credentials({k: v for k, v in obj.props.items() if k != "metadata"}):
            yield obj.urn, f"{obj.kind} {obj.meta.get('name')}: {path} sets {name} to a literal; use a Secret"
    for r in of(rs, RELEASE):
        for path, name in env_credentials(r.props.get("values") or {}):
            yield r.urn, f"release {r.name}: values {path} sets {name} to a literal; use a Secret reference"


# -- cloud -----------------------------------------------------------------------------------------------
