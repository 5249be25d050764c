"""GKE cluster module (pulumi-gcp): network, cluster, node pools, buckets and identities.

- Network: a custom-mode VPC with a subnet carrying secondary ranges for pods and services
  (VPC-native), private nodes reaching out through Cloud NAT; or an adopted network/subnetwork.
- Regional cluster on a release channel with the stack's Kubernetes version as the minimum, Workload
  Identity, Shielded nodes, private nodes, authorized networks for the control plane, deletion
  protection in production. The default node pool is removed; pools are managed separately.
- Node pools: a system pool and GPU pools (accelerator type and count, spot, autoscaling from zero,
  `nvidia.com/gpu=present:NoSchedule` taint). GKE's node auto-scaling knows a pool's shape while it is
  empty, so no separate autoscaler runs. GPU drivers are installed by GKE (`gpuDriver: gke`) or by the
  GPU operator (`operator`, Ubuntu nodes); either way GKE's own device plugin is switched off so the
  operator's (time-slicing, MIG, GFD) is the only one, and the GPU operator layer follows the choice
  through capabilities (driver root, containerd config source, critical-pod quota).
- GCS buckets (uniform access, versioning, public access prevention, protected in production) and
  one Google service account per layer that uses buckets, bound to that layer's Kubernetes service
  accounts through Workload Identity and granted only on its buckets.
- Cloud SQL for PostgreSQL when the postgres layer asks for a managed database: private IP only
  (private services access peering with the VPC), TLS required, daily backups with point-in-time
  recovery, a regional standby and deletion protection in production. The admin password is
  generated; the postgres layer creates the per-layer roles and databases.
"""

from modules.clusters.gke.capabilities import capabilities, validate
from modules.clusters.gke.resources import create

__all__ = ["capabilities", "create", "validate"]
