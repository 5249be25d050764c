"""The data example's training hop: read the Iceberg table through Trino, train, log to MLflow, and publish the
model where the example InferenceService serves it from.

Runs in the MLServer image (scikit-learn and MLflow, the versions that serve the model). Trino is reached over
its HTTP protocol with the standard library (POST /v1/statement, then follow nextUri); the table may not exist
yet when the Job starts (the RayJob that writes it runs concurrently), so the query is retried until it
answers. The model goes to `mlflow-artifacts:/$MODEL_PATH` as the KServe example's does.
"""

import json
import os
import tempfile
import time
import urllib.request

import mlflow
import mlflow.sklearn
from mlflow.models import infer_signature
from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository
from sklearn.linear_model import LogisticRegression

TRINO = os.environ["LAKEHOUSE_TRINO_URI"].rstrip("/")
TABLE = f"lake.{os.environ['LAKEHOUSE_NAMESPACE']}.{os.environ.get('TABLE', 'iris')}"
WAIT = float(os.environ.get("TABLE_WAIT_SECONDS", "1200"))
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def query(sql: str) -> list[list]:
    headers = {"X-Trino-User": "data-example", "Content-Type": "text/plain"}
    req = urllib.request.Request(f"{TRINO}/v1/statement", data=sql.encode(), headers=headers, method="POST")
    rows: list[list] = []
    while True:
        with urllib.request.urlopen(req, timeout=60) as resp:
            doc = json.load(resp)
        if "error" in doc:
            raise RuntimeError(doc["error"].get("message", str(doc["error"])))
        rows += doc.get("data", [])
        if "nextUri" not in doc:
            return rows
        req = urllib.request.Request(doc["nextUri"], headers={"X-Trino-User": "data-example"})


def read_table() -> list[list]:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return query(f"SELECT {', '.join(FEATURES)}, species FROM {TABLE}")
        except (OSError, RuntimeError) as exc:  # Trino starting, or the table not written yet
            if time.monotonic() > deadline:
                raise
            print(f"waiting for {TABLE}: {exc}", flush=True)
            time.sleep(10)


def main() -> None:
    rows = read_table()
    features = [[float(v) for v in r[:4]] for r in rows]
    labels = [r[4] for r in rows]
    model = LogisticRegression(max_iter=500).fit(features, labels)
    accuracy = model.score(features, labels)
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT", "platform-examples"))
    with mlflow.start_run(run_name="lakehouse-iris") as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_param("table", TABLE)
        mlflow.log_metric("rows", len(rows))
        mlflow.log_metric("train_accuracy", accuracy)
        local = os.path.join(tmp, "model")
        mlflow.sklearn.save_model(model, local, signature=infer_signature(features, model.predict(features)))
        mlflow.log_artifacts(local, artifact_path="model")
        MlflowArtifactsRepository(f"mlflow-artifacts:/{os.environ['MODEL_PATH']}").log_artifacts(local)
        print(f"CNAI-EXAMPLE run {run.info.run_id}: {len(rows)} rows from {TABLE}, train_accuracy={accuracy:.3f}",
              flush=True)


if __name__ == "__main__":
    main()
