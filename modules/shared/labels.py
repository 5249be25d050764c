"""Labels and annotations more than one layer (or a layer and the tests) agree on."""

from __future__ import annotations

# Namespaces the platform manages carry this label; team NetworkPolicies admit traffic from them.
PLATFORM_LABEL = "platform.cnai.dev/part-of"
TEAM_LABEL = "platform.cnai.dev/team"
# Why a platform namespace enforces less than Pod Security `restricted` (the policy pack requires one).
POD_SECURITY_REASON = "platform.cnai.dev/pod-security-reason"
MANAGED_BY = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "cnai"}

# Kueue: the label a workload names its LocalQueue with, the label of namespaces that may submit to
# the platform's ClusterQueues, and the LocalQueue every such namespace gets (Kueue's default name).
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
QUEUE_NS_LABEL = "platform.cnai.dev/queue"
LOCAL_QUEUE = "default"

# Katib injects its metrics collector into trial pods of namespaces labelled so.
KATIB_INJECTION_LABEL = "katib.kubeflow.org/metrics-collector-injection"

# A Kubeflow profile namespace: Istio sidecars and PodDefaults apply.
KUBEFLOW_PROFILE_LABELS = {"istio-injection": "enabled", "app.kubernetes.io/part-of": "kubeflow-profile"}
