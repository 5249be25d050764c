"""Model lifecycle layers (object-store, postgres, mlflow, kserve, feast): wiring, credentials, clouds.

Over 300 lines: the lifecycle layers (object store, PostgreSQL, MLflow, KServe, Feast) are
checked together, as they are wired together.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from engine.program import load_spec, resolve
from engine.registry import CLUSTERS
from modules.clusters.contract import CloudStorage, ClusterRequests
from tests.conftest import evaluate, secret_data, values_of
from tools.harness import mock_bcrypt, mock_password, normalize, stack_config

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"


def generated(rec) -> dict[str, str]:
    return {r.name: mock_password(r.name) for r in rec.by_type("random:index/randomPassword:RandomPassword")}


# -- credentials -----------------------------------------------------------------------------------

def test_generated_credentials_never_appear_in_plaintext(recording):
    passwords = generated(recording)
    assert passwords, "no credentials generated"
    masked = json.dumps([normalize(r.inputs) for r in recording.registrations] + [normalize(recording.outputs)])
    leaked = [name for name, pw in passwords.items() if pw in masked]
    assert not leaked, f"generated credentials visible outside secrets: {leaked}"
    # ... and they do reach the objects that need them; a Kubeflow user's password goes to its owner
    # (a secret stack output) and Dex gets only its bcrypt hash.
    revealed = json.dumps([normalize(r.inputs, reveal=True) for r in recording.registrations])
    for name, pw in passwords.items():
        if name.startswith("kubeflow-platform-user-"):
            assert mock_bcrypt(name) in revealed and pw not in revealed
            assert pw in json.dumps(normalize(recording.outputs, reveal=True))
        else:
            assert pw in revealed, name


def test_consumers_get_the_credentials_their_provider_generated():
    rec = evaluate("kind")
    pw = generated(rec)
    assert secret_data(rec, "mlflow", "mlflow-db") == {"username": "mlflow", "password": pw["postgres-role-mlflow"]}
    assert secret_data(rec, "postgres", "platform-db-mlflow")["password"] == pw["postgres-role-mlflow"]
    s3 = secret_data(rec, "mlflow", "mlflow-s3")
    config = json.loads(secret_data(rec, "object-store", "object-store-s3-config")["seaweedfs_s3_config"])
    ids = {i["name"]: i for i in config["identities"]}
    assert ids["mlflow"]["credentials"] == [{"accessKey": s3["AWS_ACCESS_KEY_ID"],
                                             "secretKey": pw["object-store-mlflow-secret-key"]}]
    assert s3["AWS_SECRET_ACCESS_KEY"] == pw["object-store-mlflow-secret-key"]
    feast = secret_data(rec, "feast", "feast-env")
    assert feast["POSTGRES_PASSWORD"] == pw["postgres-role-feast"]
    assert feast["AWS_SECRET_ACCESS_KEY"] == pw["object-store-feast-secret-key"]


def test_each_layer_identity_may_touch_only_its_buckets():
    rec = evaluate("kind")
    config = json.loads(secret_data(rec, "object-store", "object-store-s3-config")["seaweedfs_s3_config"])
    actions = {i["name"]: set(i["actions"]) for i in config["identities"]}
    assert actions["mlflow"] == {"Read:mlflow", "Write:mlflow", "List:mlflow", "Tagging:mlflow"}
    assert actions["kserve"] == {"Read:mlflow", "List:mlflow"}  # serving reads models, never writes
    assert actions["feast"] == {"Read:feast", "Write:feast", "List:feast", "Tagging:feast"}
    assert actions["postgres"] == {f"{a}:postgres-backups" for a in ("Read", "Write", "List", "Tagging")}
    buckets = {b["name"] for b in values_of(rec, "object-store")["allInOne"]["s3"]["createBuckets"]}
    assert buckets == {"mlflow", "feast", "postgres-backups"}


def test_feature_store_config_references_env_not_passwords():
    rec = evaluate("kind")
    stores = secret_data(rec, "feast", "feast-data-stores")
    assert "${POSTGRES_PASSWORD}" in stores["sql"] and "${POSTGRES_PASSWORD}" in stores["postgres"]
    yaml.safe_load(stores["postgres"])  # a feature_store.yaml section the operator merges
    assert not any(pw in json.dumps(stores) for pw in generated(rec).values())


# -- wiring and order ------------------------------------------------------------------------------

def deps_layers(rec, reg) -> set[str]:
    """Layers of everything `reg` waits for, directly or through what it waits for."""
    by_urn = {r.urn: r for r in rec.registrations}
    return {rec.layer_of(by_urn[u]) for u in rec.waits_for(reg)}


def test_layers_wait_only_for_what_they_use():
    rec = evaluate("kind")
    assert {"postgres", "object-store"} <= deps_layers(rec, rec.get(RELEASE, "mlflow"))
    assert "cert-manager" in deps_layers(rec, rec.get(RELEASE, "kserve-crd"))
    assert "mlflow" not in deps_layers(rec, rec.get(RELEASE, "kserve-crd"))  # the chart does not wait for MLflow
    job = rec.get("kubernetes:batch/v1:Job", "job-kserve-examples-example-iris-train")
    assert "mlflow" in deps_layers(rec, job)  # the example logs to MLflow
    fs = rec.get("kubernetes:feast.dev/v1:FeatureStore", "featurestore-feast-platform")
    assert "kubernetes:yaml/v2:ConfigFile::feast-operator" in {rec.label(d) for d in fs.depends_on}
    assert {"postgres", "object-store"} <= deps_layers(rec, fs)
    for name in ("object-store", "cert-manager"):
        assert deps_layers(rec, rec.get(RELEASE, name)) <= {name, None}, f"{name} waits for another layer"
    assert deps_layers(rec, rec.get(RELEASE, "postgres")) <= {"postgres", "cert-manager", None}


def test_kserve_charts_install_in_order():
    rec = evaluate("kind")
    labels = lambda name: {rec.label(d) for d in rec.get(RELEASE, name).depends_on}  # noqa: E731
    assert f"{RELEASE}::kserve-crd" in labels("kserve-resources")
    assert f"{RELEASE}::kserve-resources" in labels("kserve-runtime-configs")
    isvc = rec.get("kubernetes:serving.kserve.io/v1beta1:InferenceService",
                   "inferenceservice-kserve-examples-example-iris")
    assert {f"{RELEASE}::kserve-runtime-configs", "kubernetes:batch/v1:Job::job-kserve-examples-example-iris-train"} \
        <= {rec.label(d) for d in isvc.depends_on}


def test_knative_mode_adds_its_prerequisites_before_the_controller():
    rec = evaluate("kind", {"cnai:layers": {"kserve": {"deploymentMode": "Knative"}}})
    ks = rec.get("kubernetes:operator.knative.dev/v1beta1:KnativeServing",
                 "knativeserving-knative-serving-knative-serving")
    assert ks.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Ready"
    assert ks.inputs["spec"]["ingress"]["kourier"] == {"enabled": True, "service-type": "ClusterIP"}
    resources = {rec.label(d) for d in rec.get(RELEASE, "kserve-resources").depends_on}
    assert f"kubernetes:operator.knative.dev/v1beta1:KnativeServing::{ks.name}" in resources
    assert values_of(rec, "kserve-resources")["kserve"]["controller"]["deploymentMode"] == "Knative"
    assert rec.get(RELEASE, "knative-operator").inputs["namespace"] == "knative-operator"
    assert "knative-operator" not in {r.name for r in evaluate("kind").by_type(RELEASE)}


def test_mlflow_is_wired_to_postgres_and_the_object_store():
    v = values_of(evaluate("kind"), "mlflow")
    assert v["backendStore"]["postgres"] == {"enabled": True, "host": "platform-db-rw.postgres.svc.cluster.local",
                                             "port": 5432, "database": "mlflow"}
    assert v["backendStore"]["databaseMigration"] is True
    assert v["artifactRoot"]["proxiedArtifactStorage"] is True
    assert v["artifactRoot"]["s3"]["bucket"] == "mlflow"
    assert v["extraEnvVars"]["MLFLOW_S3_ENDPOINT_URL"] == \
        "http://object-store-seaweedfs-all-in-one.object-store.svc.cluster.local:8333"
    assert "mlflow.mlflow.svc.cluster.local:*" in v["serverAllowedHosts"] and "*" not in v["serverAllowedHosts"]


def test_example_inference_service_serves_what_the_job_publishes():
    rec = evaluate("kind")
    objects = {(o["kind"], o["metadata"]["name"]): o for o in rec.objects()}
    job = objects[("Job", "example-iris-train")]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    isvc = objects[("InferenceService", "example-iris")]
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == f"s3://mlflow/{env['MODEL_PATH']}"
    assert env["MLFLOW_TRACKING_URI"] == normalize(rec.outputs["layer:mlflow"])["trackingUri"]
    assert isvc["spec"]["predictor"]["model"]["modelFormat"] == {"name": "mlflow"}
    assert isvc["spec"]["predictor"]["serviceAccountName"] == "kserve-models"
    sa = objects[("ServiceAccount", "kserve-models")]
    assert sa["secrets"] == [{"name": "kserve-s3"}]


def test_every_team_namespace_gets_the_serving_account():
    rec = evaluate("existing")
    teams = {t.namespace for t in rec.spec.teams}
    accounts = {o["metadata"]["namespace"] for o in rec.objects()
                if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "kserve-models"}
    assert teams and teams <= accounts


def test_production_protects_the_database_and_runs_it_highly_available():
    rec = evaluate("existing")
    cluster = rec.get("kubernetes:postgresql.cnpg.io/v1:Cluster", "cluster-postgres-platform-db")
    assert cluster.inputs["spec"]["instances"] == 3
    layer = next(x for x in rec.platform.layers if x.name == "postgres")
    obj = next(o for o in layer.objects() if o.manifest["kind"] == "Cluster")
    assert obj.protect
    laptop = next(x for x in evaluate("kind").platform.layers if x.name == "postgres")
    assert not next(o for o in laptop.objects() if o.manifest["kind"] == "Cluster").protect


# -- cloud capabilities (the cluster modules of the cloud stacks fill these in) --------------------

S3 = CloudStorage(kind="s3", region="eu-west-1",
                  buckets={"mlflow": "acme-ml-mlflow", "feast": "acme-ml-feast", "postgres-backups": "acme-ml-pg"},
                  identities={n: {"eks.amazonaws.com/role-arn": f"arn:aws:iam::123456789012:role/cnai-{n}"}
                              for n in ("mlflow", "kserve", "feast", "postgres")})
GCS = CloudStorage(kind="gcs", region="europe-west4",
                   buckets={"mlflow": "acme-ml-mlflow", "feast": "acme-ml-feast", "postgres-backups": "acme-ml-pg"},
                   identities={n: {"iam.gke.io/gcp-service-account": f"cnai-{n}@acme.iam.gserviceaccount.com"}
                               for n in ("mlflow", "kserve", "feast", "postgres")})


def cloud_layers(storage: CloudStorage):
    spec = load_spec(stack_config("kind")[0], "kind")
    caps = dataclasses.replace(CLUSTERS["kind"].capabilities(spec, ClusterRequests()), cloud_storage=storage)
    return {layer.name: layer for layer in resolve(spec, caps).layers}


def manifests(layer) -> dict:
    return {(o.manifest["kind"], o.manifest["metadata"]["name"]): o.manifest for o in layer.objects()}


@pytest.mark.parametrize("storage", [S3, GCS], ids=["s3", "gcs"])
def test_clouds_use_workload_identity_and_no_static_keys(storage):
    layers = cloud_layers(storage)
    assert layers["object-store"].releases() == [] and layers["object-store"].credentials() == []
    mlflow = layers["mlflow"].final_values()
    assert mlflow["serviceAccount"]["annotations"] == storage.identities["mlflow"]
    assert ("mlflow-s3" not in json.dumps(mlflow)) and ("MLFLOW_S3_ENDPOINT_URL" not in json.dumps(mlflow))
    assert ("Secret", "mlflow-s3") not in manifests(layers["mlflow"])
    assert manifests(layers["kserve"])[("ServiceAccount", "kserve-models")]["metadata"]["annotations"].items() \
        >= storage.identities["kserve"].items()
    assert ("Secret", "kserve-s3") not in manifests(layers["kserve"])
    feast_env = manifests(layers["feast"])[("Secret", "feast-env")]["stringData"]
    assert "AWS_SECRET_ACCESS_KEY" not in feast_env
    assert manifests(layers["feast"])[("ServiceAccount", "feast-platform")]["metadata"]["annotations"] == \
        storage.identities["feast"]
    pg = manifests(layers["postgres"])
    assert ("Secret", "platform-db-backup-s3") not in pg
    assert pg[("Cluster", "platform-db")]["spec"]["serviceAccountTemplate"]["metadata"]["annotations"] == \
        storage.identities["postgres"]
    scheme = "gs" if storage.kind == "gcs" else "s3"
    isvc = manifests(layers["kserve"])[("InferenceService", "example-iris")]
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == f"{scheme}://acme-ml-mlflow/examples/iris"
    backup = pg[("ObjectStore", "platform-db-backups")]["spec"]["configuration"]
    assert backup["destinationPath"] == f"{scheme}://acme-ml-pg"
    if storage.kind == "gcs":
        assert mlflow["artifactRoot"]["gcs"] == {"enabled": True, "bucket": "acme-ml-mlflow", "path": ""}
        assert backup["googleCredentials"] == {"gkeEnvironment": True}
    else:
        assert mlflow["artifactRoot"]["s3"] == {"enabled": True, "bucket": "acme-ml-mlflow", "path": ""}
        assert backup["s3Credentials"] == {"inheritFromIAMRole": True}
        assert "endpointURL" not in backup


# -- external S3 (existing clusters pointing at a service they already have) -------------------------

EXTERNAL = {"cnai:layers": {"object-store": {"external": {
    "endpoint": "https://s3.example.com", "accessKeyId": "AKIAEXAMPLE", "bucketPrefix": "acme-"}}},
    "cnai:objectStoreSecretAccessKey": {"secure": "v1:encrypted"}}


def test_external_s3_replaces_the_in_cluster_store():
    from tools.harness import run

    rec = run("existing", EXTERNAL)
    assert "object-store" not in {r.name for r in rec.by_type(RELEASE)}
    assert not [r for r in rec.by_type("random:index/randomPassword:RandomPassword")
                if r.name.startswith("object-store")]
    s3 = secret_data(rec, "mlflow", "mlflow-s3")
    assert s3 == {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "offline-plan-dummy-secret"}
    v = values_of(rec, "mlflow")
    assert v["artifactRoot"]["s3"]["bucket"] == "acme-mlflow"
    assert v["extraEnvVars"]["MLFLOW_S3_ENDPOINT_URL"] == "https://s3.example.com"
    sa_secret = next(o for o in rec.objects() if o["kind"] == "Secret" and o["metadata"]["name"] == "kserve-s3")
    assert sa_secret["metadata"]["annotations"]["serving.kserve.io/s3-usehttps"] == "1"
    masked = json.dumps([normalize(r.inputs) for r in rec.registrations])
    assert "offline-plan-dummy-secret" not in masked  # the configured key stays a secret


def test_external_s3_secret_key_must_be_an_encrypted_config_value():
    from tools.harness import run

    with pytest.raises(Exception, match="cnai:objectStoreSecretAccessKey: is a credential; store it encrypted"):
        run("existing", {**EXTERNAL, "cnai:objectStoreSecretAccessKey": "plain-text"})
    with pytest.raises(Exception, match="cnai:objectStoreSecretAccessKey: is required"):
        run("existing", {"cnai:layers": EXTERNAL["cnai:layers"]})


def test_mlflow_auth_keeps_users_in_postgres_and_the_example_logs_in():
    from tools.harness import run

    rec = run("kind", {"cnai:layers": {"mlflow": {"auth": True}}})
    pw = generated(rec)
    auth = values_of(rec, "mlflow")["auth"]
    assert auth["postgres"]["database"] == "mlflow_auth" and auth["postgres"]["enabled"] is True
    assert "sqliteFullPath" not in auth
    assert secret_data(rec, "mlflow", "mlflow-auth-db")["password"] == pw["postgres-role-mlflow_auth"]
    db = next(o for o in rec.objects() if o["kind"] == "Database" and o["spec"]["name"] == "mlflow_auth")
    assert db["metadata"]["name"] == "platform-db-mlflow-auth-db"  # Kubernetes names have no underscore
    creds = secret_data(rec, "kserve-examples", "example-iris-mlflow")
    assert creds == {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": pw["mlflow-admin-password"]}


def _feature_store(rec):
    fs = rec.get("kubernetes:feast.dev/v1:FeatureStore", "featurestore-feast-platform")
    return normalize(fs.inputs, reveal=True)["spec"]


def test_feast_offline_store_reads_buckets_with_the_cloud_credential_chain():
    """The dask file store reads s3:// and gs:// through fsspec, which takes static keys on kind and
    Pod Identity / Workload Identity on the clouds; the image option puts s3fs/gcsfs on every server."""
    spec = _feature_store(evaluate("kind"))
    assert spec["services"]["offlineStore"]["persistence"] == {"file": {"type": "dask"}}
    assert "initImage" not in spec["services"]  # default: the operator's upstream image
    image = "registry.example/feast-feature-server:0.66.0-fsspec"
    rec = evaluate("kind", {"cnai:layers": {"feast": {"image": image}}})
    services = _feature_store(rec)["services"]
    assert services["initImage"] == image
    assert {services[s]["server"]["image"] for s in ("onlineStore", "offlineStore")} == {image}
    assert services["registry"]["local"]["server"]["image"] == image
    env = secret_data(rec, "feast", "feast-env")
    assert env["AWS_ENDPOINT_URL"].startswith("http") and "AWS_SECRET_ACCESS_KEY" in env
    assert not [k for k in env if k.startswith("DUCKDB_")]
    outputs = rec.outputs["layer:feast"]
    assert outputs["offlineBucket"] == "s3://feast"
    assert outputs["fileSourceS3EndpointOverride"] == env["AWS_ENDPOINT_URL"]
    eks = evaluate("eks")
    env = secret_data(eks, "feast", "feast-env")
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ENDPOINT_URL" not in env  # Pod Identity
    assert "fileSourceS3EndpointOverride" not in eks.outputs["layer:feast"]


def test_feast_image_dockerfile_builds_on_the_pinned_upstream_image():
    from modules.shared.versions import ROOT, VERSIONS
    text = (ROOT / "images" / "feast" / "Dockerfile").read_text()
    assert "FROM ${FEAST_IMAGE}" in text and "s3fs==${v}" in text and "gcsfs==${v}" in text
    make = (ROOT / "Makefile").read_text()
    assert 'VERSIONS.images["feast-feature-server"]' in make
    assert VERSIONS.images["feast-feature-server"].endswith(":" + VERSIONS.manifest("feast-operator").version)
