"""EKS cluster module (pulumi-aws): network, control plane, node groups, buckets and identities.

- Network: a VPC over the configured availability zones (>= 2) with public subnets for load balancers,
  private subnets for nodes and NAT (one gateway, or one per zone); or an adopted VPC and subnets.
- Control plane at the stack's Kubernetes version, API access (public CIDRs / private) from config,
  control-plane logs, secrets envelope-encrypted with a KMS key, access entries for admin principals,
  deletion protection in production.
- Managed node groups: a system group and GPU groups (AL2023 NVIDIA AMI: driver and toolkit on the
  image), IMDSv2 required with hop limit 1, encrypted gp3 root volumes, GPU label and
  `nvidia.com/gpu=present:NoSchedule` taint. GPU groups may scale from zero: Cluster Autoscaler learns
  their labels, taint and GPU count from node-template tags on the groups' Auto Scaling groups.
- EBS CSI driver (add-on) with a default encrypted gp3 StorageClass; EKS Pod Identity agent.
- S3 buckets for the layers that use buckets: KMS-encrypted, versioned, public access blocked,
  protected (and not force-destroyed) in production. Each such layer gets an IAM role allowed only
  on its buckets, associated with its ServiceAccounts through EKS Pod Identity: no static keys, and
  no annotations the layers need to know about.
- RDS for PostgreSQL when the postgres layer asks for a managed database: private subnets only,
  reachable from the cluster's security group alone, KMS-encrypted, automated backups with
  point-in-time recovery, Multi-AZ and deletion protection (plus a final snapshot) in production.
  The admin password is generated; the postgres layer creates the per-layer roles and databases.
"""

from modules.clusters.eks.capabilities import capabilities, validate
from modules.clusters.eks.resources import create

__all__ = ["capabilities", "create", "validate"]
