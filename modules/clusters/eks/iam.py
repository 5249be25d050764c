"""IAM documents of an EKS stack: trust policies and each layer's least-privilege policy."""

from __future__ import annotations

import json
from typing import Any

from modules.clusters.contract import WorkloadIdentity


def assume_policy(service: str) -> str:
    """A trust policy letting `service` (EKS, EC2, Pod Identity) assume a role."""
    actions = ["sts:AssumeRole", "sts:TagSession"]
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}]})


_S3_ACTIONS = {
    "ro": ["s3:GetObject", "s3:GetObjectVersion"],
    "rw": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
}
_AUTOSCALING = [
    {"Effect": "Allow", "Resource": "*", "Action": [
        "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
        "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
        "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
        "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
        "eks:DescribeNodegroup"]},
    {"Effect": "Allow", "Resource": "*", "Action": [
        "autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
     "Condition": {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true"}}},
]


def policy_document(ident: WorkloadIdentity, bucket_names: dict[str, str], key_arn: str) -> str:
    """Least privilege for one layer: its buckets (list + object actions by access), the bucket key."""
    statements: list[dict[str, Any]] = []
    for bucket, mode in sorted(ident.buckets.items()):
        arn = f"arn:aws:s3:::{bucket_names[bucket]}"
        statements.append({"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": arn})
        statements.append({"Effect": "Allow", "Action": _S3_ACTIONS[mode], "Resource": f"{arn}/*"})
    if ident.buckets:
        statements.append({"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key_arn})
    if "node-autoscaling" in ident.permissions:
        statements += _AUTOSCALING
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
