"""Train the KServe example model and publish it in MLflow's artifact layout.

Runs in the MLServer image (it ships scikit-learn and MLflow, so the model is saved with the same
versions that serve it). The run (parameters, metric, model) is logged to the platform's MLflow; a
copy of the model directory goes to a fixed artifact path, `mlflow-artifacts:/$MODEL_PATH`, which
MLflow's proxied artifact store writes to `<mlflow bucket>/$MODEL_PATH`: the example
InferenceService's storageUri. Only MLflow holds write access to the bucket.
"""

import os
import tempfile

import mlflow
import mlflow.sklearn
from mlflow.models import infer_signature
from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

MAX_ITER = 500

features, labels = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=MAX_ITER).fit(features, labels)
accuracy = model.score(features, labels)

mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT", "platform-examples"))
with mlflow.start_run(run_name="iris-logistic-regression") as run, tempfile.TemporaryDirectory() as tmp:
    mlflow.log_param("max_iter", MAX_ITER)
    mlflow.log_metric("train_accuracy", accuracy)
    local = os.path.join(tmp, "model")
    # The signature tells MLServer's MLflow runtime how to decode V2 inputs.
    mlflow.sklearn.save_model(model, local, signature=infer_signature(features, model.predict(features)))
    mlflow.log_artifacts(local, artifact_path="model")
    MlflowArtifactsRepository(f"mlflow-artifacts:/{os.environ['MODEL_PATH']}").log_artifacts(local)
    print(f"run {run.info.run_id}: train_accuracy={accuracy:.3f}; model at mlflow-artifacts:/{os.environ['MODEL_PATH']}")
