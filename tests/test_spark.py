"""The spark layer: the Spark Operator watching the team namespaces, Kueue's SparkApplication integration
(alpha) switched on only while the layer is, the example SparkPi queued in the first team with restricted
security contexts, the drivers' way to the Kubernetes API, and the Iceberg catalog settings that reach
Spark by environment reference only. The lakehouse is a stub here (the Protocol), and the real layer when
it is in the registry.

Over 300 lines: the stub lakehouse and the checks it drives (Iceberg settings per store, the job identity,
no credential in the SparkApplication) belong next to the same checks against the real layer."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from addons.base import Peers
from engine.registry import LAYERS
from modules.shared import upstream
from modules.shared.config import ConfigError
from modules.shared.labels import LOCAL_QUEUE, QUEUE_LABEL
from modules.shared.offers import Lakehouse
from modules.shared.versions import VERSIONS
from tests.conftest import evaluate, needs_upstream, values_of
from tests.test_schemas import validate_object
from tools.harness import normalize

ROOT = Path(__file__).resolve().parents[1]
RELEASE = "kubernetes:helm.sh/v3:Release"
APP = "kubernetes:sparkoperator.k8s.io/v1beta2:SparkApplication"
FRAMEWORK = "sparkoperator.k8s.io/sparkapplication"
GATE = "SparkApplicationIntegration"
RESTRICTED = {"runAsUser": 185, "runAsGroup": 185, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def layers_with(stack: str, **layers: dict) -> dict:
    """`cnai:layers` of the stack file with `layers` set (an override replaces the whole key)."""
    config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    merged = dict(config.get("cnai:layers") or {})
    merged.update(layers)
    return merged


def spark(stack: str = "kind", extra: dict | None = None, **layers: dict):
    merged = layers_with(stack, spark={"enabled": True, **layers.pop("spark", {})}, **layers)
    return evaluate(stack, {"cnai:layers": merged, **(extra or {})})


def app(rec) -> dict:
    found = [normalize(o, reveal=True) for o in rec.objects() if o["kind"] == "SparkApplication"]
    assert len(found) == 1, f"{len(found)} SparkApplications"
    return found[0]


def kueue_config(rec) -> tuple[dict, list]:
    v = values_of(rec, "kueue")
    return yaml.safe_load(v["managerConfig"]["controllerManagerConfigYaml"]), v["controllerManager"]["featureGates"]


class FakeLakehouse:
    """The lakehouse as the Protocol describes it: a REST catalog, a client Secret and ServiceAccount per team."""

    offers = (Lakehouse,)
    catalog_uri = "http://polaris.lakehouse.svc.cluster.local:8181/api/catalog"
    warehouse = "lake"
    trino_uri = "http://trino.lakehouse.svc.cluster.local:8080"
    client_secret = client_service_account = "lakehouse-client"

    def __init__(self, s3_env: bool = True):
        self.s3_env = s3_env

    def team_schema(self, team) -> str:
        return team.name

    def client_env(self) -> list[dict]:
        def ref(key: str) -> dict:
            return {"valueFrom": {"secretKeyRef": {"name": "lakehouse-client", "key": key, "optional": True}}}

        env = [{"name": "LAKEHOUSE_CATALOG_URI", "value": self.catalog_uri},
               {"name": "LAKEHOUSE_CREDENTIAL", **ref("credential")}]
        if self.s3_env:
            env += [{"name": "LAKEHOUSE_S3_REGION", "value": "us-east-1"},
                    {"name": "LAKEHOUSE_S3_ENDPOINT", "value": "http://seaweedfs-s3.object-store:8333"},
                    {"name": "LAKEHOUSE_S3_ACCESS_KEY_ID", **ref("s3-access-key-id")},
                    {"name": "LAKEHOUSE_S3_SECRET_ACCESS_KEY", **ref("s3-secret-access-key")}]
        return env


def with_fake_lakehouse(rec, lakehouse: FakeLakehouse):
    """The planned spark layer of `rec`, seeing `lakehouse` among its peers (a copy: recordings are cached)."""
    layer = copy.copy(rec.platform.enabled_layer("spark"))
    layer.peers = Peers((*layer.peers, lakehouse))
    return layer


# -- the operator ---------------------------------------------------------------------------------

def test_operator_watches_the_team_namespaces_with_explicit_requests():
    for stack, replicas in (("kind", 1), ("existing", 2)):
        rec = spark(stack)
        v = values_of(rec, "spark")
        teams = [t.namespace for t in rec.spec.teams]
        assert v["spark"]["jobNamespaces"] == teams and teams
        assert v["fullnameOverride"] == "spark-operator"
        for part in ("controller", "webhook"):
            assert v[part]["replicas"] == replicas
            assert set(v[part]["resources"]["requests"]) == {"cpu", "memory"} and v[part]["resources"]["limits"]
            assert v[part]["podDisruptionBudget"]["enable"] is (replicas > 1)
        # Without the lakehouse, the chart's own job ServiceAccount, bound to its Role in each team namespace.
        assert v["spark"]["serviceAccount"] == {"create": True} and v["spark"]["rbac"] == {"create": True}
        assert rec.outputs["layer:spark"]["jobServiceAccount"] == "spark-operator-spark"


def test_the_release_installs_after_the_team_namespaces_exist():
    rec = spark()
    release = rec.get(RELEASE, "spark")
    assert release.inputs["namespace"] == "spark-operator"
    waits = {rec.label(u) for u in rec.waits_for(release)}
    assert "kubernetes:core/v1:Namespace::namespace-team-research" in waits  # the chart renders Roles there


def test_metrics_and_pod_monitor_only_with_prometheus():
    rec = spark()
    assert values_of(rec, "spark")["prometheus"] == {"metrics": {"enable": True}, "podMonitor": {"create": False}}
    monitor = next(normalize(o) for o in rec.objects() if o["kind"] == "PodMonitor"
                   and o["metadata"]["namespace"] == "spark-operator")
    validate_object(rec.spec.kubernetesVersion, monitor)
    # The chart's selector labels: chart name and release name, on the controller's and the webhook's pods.
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "spark-operator",
                                                          "app.kubernetes.io/instance": "spark"}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    off = spark(observability={"enabled": False})
    assert values_of(off, "spark")["prometheus"]["metrics"]["enable"] is False
    assert not [o for o in off.objects()
                if o["kind"] == "PodMonitor" and o["metadata"]["namespace"] == "spark-operator"]


def test_footprint_is_the_controller_and_the_webhook():
    for stack in ("kind", "existing"):
        rec = spark(stack)
        layer, v = rec.platform.enabled_layer("spark"), values_of(rec, "spark")
        loads = {w.name: w for w in layer.workloads()}
        assert set(loads) == {"spark-operator-controller", "spark-operator-webhook"}
        for name, part in (("spark-operator-controller", "controller"), ("spark-operator-webhook", "webhook")):
            requests = v[part]["resources"]["requests"]
            assert (loads[name].cpu, loads[name].memory, loads[name].count) == (
                requests["cpu"], requests["memory"], v[part]["replicas"])
            assert loads[name].rendered


@needs_upstream
@pytest.mark.parametrize("stack", ["kind", "existing", "eks", "gke"])
def test_every_values_key_exists_upstream(stack):
    facts = upstream.chart_facts("spark-operator")
    assert facts is not None, "spark-operator is not in the upstream copy"
    rec = spark(stack)
    assert upstream.unknown_keys(values_of(rec, "spark"), facts["keys"]) == []
    lake = with_fake_lakehouse(rec, FakeLakehouse())
    assert upstream.unknown_keys(lake.values(), facts["keys"]) == []


# -- Kueue -----------------------------------------------------------------------------------------

def test_kueue_turns_the_spark_integration_on_only_while_spark_is_on():
    config, gates = kueue_config(evaluate("kind"))
    assert FRAMEWORK not in config["integrations"]["frameworks"] and gates == []
    config, gates = kueue_config(spark())
    assert FRAMEWORK in config["integrations"]["frameworks"]
    assert "batch/job" in config["integrations"]["frameworks"]  # the chart's defaults stay
    assert gates == [{"name": GATE, "enabled": True}]


def test_example_is_queued_in_the_first_team_and_valid_against_the_crd():
    rec = spark()
    sa = app(rec)
    validate_object(rec.spec.kubernetesVersion, sa)
    assert sa["metadata"]["namespace"] == rec.spec.teams[0].namespace
    assert sa["metadata"]["labels"][QUEUE_LABEL] == LOCAL_QUEUE
    spec = sa["spec"]
    assert spec["suspend"] is True and spec["mode"] == "cluster"  # Kueue admits cluster mode only
    assert "dynamicAllocation" not in spec  # refused by Kueue unless the job is elastic
    assert spec["mainApplicationFile"] == "local:///opt/spark/examples/src/main/python/pi.py"
    assert spec["image"] == VERSIONS.images["spark"] and spec["sparkVersion"] == "4.0.4"
    for role in ("driver", "executor"):
        assert spec[role]["securityContext"] == RESTRICTED
        assert spec[role]["podSecurityContext"]["runAsNonRoot"] is True
        assert spec[role]["serviceAccount"] == "spark-operator-spark"
        assert spec[role]["coreRequest"]  # what Kueue counts as the pod's CPU
        assert spec[role]["annotations"] == {"sidecar.istio.io/inject": "false"}  # no sidecar outliving Spark
        assert [e["name"] for e in spec[role]["env"]] == ["MLFLOW_TRACKING_URI"]  # mlflow is on, no lakehouse
    assert spec["executor"]["instances"] == 1
    reg = rec.get(APP, f"sparkapplication-{sa['metadata']['namespace']}-example-spark-pi")
    assert "spec.suspend" in reg.ignore_changes and "spec.driver.template" in reg.ignore_changes
    waits = {rec.label(u) for u in rec.waits_for(reg)}
    assert any(w.startswith("kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue::") for w in waits)
    assert f"{RELEASE}::spark" in waits


def test_without_kueue_the_example_runs_unqueued():
    rec = spark(kueue={"enabled": False})
    spec = app(rec)
    assert QUEUE_LABEL not in spec["metadata"]["labels"] and spec["spec"]["suspend"] is False


def test_no_example_when_turned_off():
    rec = spark(spark={"example": False})
    assert not [o for o in rec.objects() if o["kind"] == "SparkApplication"]
    assert "exampleSparkApplication" not in rec.outputs["layer:spark"]


def test_outputs_show_the_example_and_its_ui():
    out = spark().outputs["layer:spark"]
    assert out["exampleSparkApplication"] == "team-research/example-spark-pi"
    assert "port-forward svc/example-spark-pi-ui-svc 4040:4040" in out["sparkUi"]
    assert out["operatorNamespace"] == "spark-operator" and out["jobNamespaces"] == ["team-research"]


# -- RBAC and networking -----------------------------------------------------------------------------

def test_team_groups_may_manage_spark_applications():
    role = next(normalize(o) for o in spark().objects() if o["kind"] == "ClusterRole"
                and o["metadata"]["name"] == "cnai-spark-edit")
    assert role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert role["rules"][0]["apiGroups"] == ["sparkoperator.k8s.io"]
    assert set(role["rules"][0]["resources"]) == {"sparkapplications", "scheduledsparkapplications"}


def test_drivers_may_reach_the_api_server_from_every_team_namespace():
    rec = spark("existing")
    policies = {o["metadata"]["namespace"]: normalize(o) for o in rec.objects()
                if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "allow-spark-driver-api"}
    assert set(policies) == {t.namespace for t in rec.spec.teams}
    for p in policies.values():
        validate_object(rec.spec.kubernetesVersion, p)
        assert p["spec"]["podSelector"]["matchLabels"]["spark-role"] == "driver"
        assert p["spec"]["policyTypes"] == ["Egress"]
        assert {port["port"] for port in p["spec"]["egress"][0]["ports"]} == {443, 6443}
    cidrs = spark(spark={"apiServerCidrs": ["203.0.113.10/32"]})
    p = next(o for o in cidrs.objects() if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].startswith("allow-s"))
    assert p["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "203.0.113.10/32"}}]
    none = spark(spark={"apiServerCidrs": []})
    assert not [o for o in none.objects() if o["metadata"]["name"] == "allow-spark-driver-api"]


@pytest.mark.parametrize("layers,message", [
    ({"spark": {"apiServerCidrs": ["10.0.0.0/33"]}}, "cnai:layers.spark.apiServerCidrs[0]: '10.0.0.0/33'"),
    ({"spark": {"image": "not an image"}}, "cnai:layers.spark.image"),
    ({"teams": {"enabled": False}}, "cnai:layers.spark.enabled: the Spark Operator runs SparkApplications in team"),
])
def test_bad_input_is_one_line_naming_the_key(layers, message):
    with pytest.raises(ConfigError) as err:
        spark(**layers)
    assert message in str(err.value) and "\n" not in str(err.value)


# -- the image and the lakehouse -----------------------------------------------------------------

def test_image_option_reaches_the_example_and_the_outputs():
    image = "localhost/cnai/spark:4.0.4-iceberg1.10.1"
    rec = spark(spark={"image": image})
    assert app(rec)["spec"]["image"] == image and rec.outputs["layer:spark"]["image"] == image


def test_dockerfile_adds_iceberg_to_the_pinned_spark_image():
    text = (ROOT / "images" / "spark" / "Dockerfile").read_text()
    assert "FROM ${SPARK_IMAGE}" in text and "USER spark" in text
    for artifact in ("iceberg-spark-runtime-4.0_2.13", "iceberg-aws-bundle", "iceberg-gcp-bundle"):
        assert artifact in text
    assert "sha1sum -c" in text and "${ICEBERG_VERSION}" in text
    assert VERSIONS.images["spark"].split("@")[0].rsplit(":", 1)[1].startswith("4.0.")  # the runtime is Spark 4.0.s
    assert VERSIONS.components["iceberg"]


def test_iceberg_conf_names_the_catalog_and_keeps_credentials_in_the_environment():
    layer = with_fake_lakehouse(spark(), FakeLakehouse())
    conf = layer.iceberg_conf()
    c = "spark.sql.catalog.lake"
    assert conf["spark.sql.extensions"] == "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
    assert conf[c] == "org.apache.iceberg.spark.SparkCatalog" and conf[f"{c}.type"] == "rest"
    assert conf[f"{c}.uri"] == FakeLakehouse.catalog_uri and conf[f"{c}.warehouse"] == "lake"
    assert conf[f"{c}.scope"] == "PRINCIPAL_ROLE:ALL"
    assert conf[f"{c}.io-impl"] == "org.apache.iceberg.aws.s3.S3FileIO"
    # Iceberg's REST catalog resolves `env:NAME` values from the pod's environment.
    assert conf[f"{c}.credential"] == "env:LAKEHOUSE_CREDENTIAL"
    assert conf[f"{c}.s3.access-key-id"] == "env:LAKEHOUSE_S3_ACCESS_KEY_ID"
    assert conf[f"{c}.s3.secret-access-key"] == "env:LAKEHOUSE_S3_SECRET_ACCESS_KEY"
    assert conf[f"{c}.s3.endpoint"] == "env:LAKEHOUSE_S3_ENDPOINT" and conf[f"{c}.s3.path-style-access"] == "true"
    # On a cloud's own S3 with workload identity: no endpoint, no keys, the SDK's credential chain.
    bare = with_fake_lakehouse(spark(), FakeLakehouse(s3_env=False)).iceberg_conf()
    assert not [k for k in bare if ".s3." in k]
    gcs = with_fake_lakehouse(spark("gke"), FakeLakehouse(s3_env=False)).iceberg_conf()
    assert gcs[f"{c}.io-impl"] == "org.apache.iceberg.gcp.gcs.GCSFileIO"
    assert with_fake_lakehouse(spark(), FakeLakehouse()).iceberg_conf() == conf
    assert spark().platform.enabled_layer("spark").iceberg_conf() == {}


def test_example_with_the_lakehouse_runs_as_its_client_and_reads_its_secret():
    rec = spark()
    layer = with_fake_lakehouse(rec, FakeLakehouse())
    sa = layer.example(rec.spec.teams[0].namespace)
    validate_object(rec.spec.kubernetesVersion, sa)
    assert sa["spec"]["sparkConf"] == layer.iceberg_conf()
    for role in ("driver", "executor"):
        assert sa["spec"][role]["serviceAccount"] == "lakehouse-client"
        names = {e["name"]: e for e in sa["spec"][role]["env"]}
        assert names["LAKEHOUSE_CREDENTIAL"]["valueFrom"]["secretKeyRef"]["name"] == "lakehouse-client"
    v = layer.values()["spark"]
    assert v["serviceAccount"] == {"create": False, "name": "lakehouse-client"} and v["rbac"] == {"create": True}


def no_plaintext_credentials(sa: dict) -> None:
    for key, value in sa["spec"].get("sparkConf", {}).items():
        if any(word in key for word in ("credential", "secret", "access-key", "password", "token")):
            assert value.startswith("env:"), f"sparkConf {key} carries a value, not an env reference"
    for role in ("driver", "executor"):
        for e in sa["spec"][role].get("env", []):
            if any(word in e["name"] for word in ("CREDENTIAL", "SECRET", "ACCESS_KEY", "PASSWORD", "TOKEN")):
                assert "value" not in e and "secretKeyRef" in e["valueFrom"], e["name"]


@pytest.mark.skipif("lakehouse" not in LAYERS, reason="the lakehouse layer is not in this checkout")
@pytest.mark.parametrize("stack", ["kind", "eks", "gke"])
def test_with_the_lakehouse_layer_the_example_reaches_iceberg(stack):
    rec = spark(stack, lakehouse={"enabled": True})
    lake = rec.platform.enabled_layer("lakehouse")
    sa = app(rec)
    validate_object(rec.spec.kubernetesVersion, sa)
    no_plaintext_credentials(sa)
    conf = sa["spec"]["sparkConf"]
    assert conf[f"spark.sql.catalog.{lake.warehouse}.uri"] == lake.catalog_uri
    assert sa["spec"]["driver"]["serviceAccount"] == lake.client_service_account
    store = rec.platform.caps.cloud_storage
    gcs = store is not None and store.kind == "gcs"
    io = "org.apache.iceberg.gcp.gcs.GCSFileIO" if gcs else "org.apache.iceberg.aws.s3.S3FileIO"
    assert conf[f"spark.sql.catalog.{lake.warehouse}.io-impl"] == io
    waits = {rec.label(u) for u in rec.waits_for(rec.get(APP, f"sparkapplication-{sa['metadata']['namespace']}-"
                                                              "example-spark-pi"))}
    assert f"kubernetes:core/v1:ServiceAccount::serviceaccount-{sa['metadata']['namespace']}-lakehouse-client" in waits


@pytest.mark.parametrize("stack", ["eks", "gke"])
def test_clouds_plan_with_the_layer_on(stack):
    rec = spark(stack)
    sa = app(rec)
    validate_object(rec.spec.kubernetesVersion, sa)
    no_plaintext_credentials(sa)
    assert values_of(rec, "spark")["spark"]["jobNamespaces"] == [t.namespace for t in rec.spec.teams]
