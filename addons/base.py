"""The layer contract: every other file in addons/ declares one `Layer` subclass with the same shape.

A layer declares
- `name`, `component` (its ComponentResource type is `cnai:addons:<component>`), `description`, and
  `core` (on unless a stack turns it off; every other layer is opt-in);
- ordering, in one vocabulary: `requires` (hard: must be enabled, deployed first) and `after` (soft:
  only when that layer is on; `"objects"` = its peer-phase objects wait, `"install"` = its charts too);
  each object it creates says its `phase` (see `modules.shared.parts.Phase`);
- its pinned sources by versions.yaml key: `chart` (+ `extra_charts` when `releases()` installs several),
  `manifests`;
- `offers`: the typed interfaces (`modules.shared.offers`) it implements for other layers, which find
  it with `self.peers.get(Interface)`; a layer never imports another layer's module;
- what it needs from the platform: `databases` / `buckets` (the postgres and object-store layers
  create them), `service_accounts()` and `cluster_requests()` (handed to the cluster module),
  `queue` (the Kueue ClusterQueue its namespace's pods queue in), `team_namespace(team)` (labels it needs on
  team namespaces);
- `Options`: its config model (`cnai:layers.<name>`), a `LayerOptions` subclass;
- builders: `values()` / `releases()`, `objects()`, `workloads()` (what its pods request, from the same
  tables as its values), `outputs()`. They read `self.caps` (the cluster's capabilities), `self.profile`
  (settings such as `size`, `replicas`, `ha`) and `self.options`; never the environment's or profile's name.
The engine (`engine/`) instantiates layers, checks them and deploys them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Iterator, Mapping, TypeVar

from modules.clusters.contract import Capabilities, Request, WorkloadIdentity
from modules.shared import k8s
from modules.shared.config import ConfigError, LayerOptions, PlatformSpec, Team
from modules.shared.labels import PLATFORM_LABEL, POD_SECURITY_REASON
from modules.shared.offers import TeamDirectory
from modules.shared.parts import AfterScope, KubeObject, Release, Workload, deep_merge
from modules.shared.profiles import PROFILES, Profile

T = TypeVar("T")


class Peers:
    """The enabled layers (this one included), found by the interfaces they offer, never by name."""

    def __init__(self, layers: tuple[Layer, ...] = ()):
        self._layers = layers

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._layers)

    def get(self, offer: type[T]) -> T | None:
        """The enabled layer that offers `offer`, or None."""
        return next((layer for layer in self._layers if offer in layer.offers), None)  # type: ignore[return-value]

    def need(self, offer: type[T]) -> T:
        """The enabled layer that offers `offer`; the engine's requirement checks make it present."""
        found = self.get(offer)
        if found is None:
            raise LookupError(f"no enabled layer offers {offer.__name__}")
        return found


class Layer:
    name: ClassVar[str]
    component: ClassVar[str]
    description: ClassVar[str]
    core: ClassVar[bool] = False  # on unless the stack turns it off (the foundation); others are opt-in
    requires: ClassVar[tuple[str, ...]] = ()
    after: ClassVar[Mapping[str, AfterScope]] = {}
    chart: ClassVar[str | None] = None
    extra_charts: ClassVar[tuple[str, ...]] = ()  # further charts `releases()` may install (docs, tests)
    manifests: ClassVar[tuple[str, ...]] = ()
    offers: ClassVar[tuple[type, ...]] = ()
    # Its pods queue through Kueue in a ClusterQueue of this name; its namespace gets a LocalQueue.
    queue: ClassVar[str] = ""
    # Kueue integrations its custom resources need beyond Kueue's default frameworks, and the feature gates
    # they are behind (the kueue layer turns both on while this layer is enabled).
    queue_frameworks: ClassVar[tuple[str, ...]] = ()
    queue_feature_gates: ClassVar[tuple[str, ...]] = ()
    databases: ClassVar[tuple[str, ...]] = ()  # PostgreSQL databases (one role each, same name)
    buckets: ClassVar[dict[str, str]] = {}  # object-store buckets it uses -> "rw" | "ro"
    Options: ClassVar[type[LayerOptions]] = LayerOptions
    default_namespace: ClassVar[str | None] = None
    # Why `cnai:layers.<name>.namespace` cannot move the layer (its upstream manifests hard-code the
    # namespace); empty: the namespace can be overridden.
    namespace_fixed: ClassVar[str] = ""
    pod_security: ClassVar[str] = "restricted"
    pod_security_reason: ClassVar[str] = ""

    def __init__(self, spec: PlatformSpec):
        self.spec = spec
        self.profile: Profile = PROFILES[spec.profile]
        self.options = spec.layer(self.name)
        self.peers = Peers()  # set by the engine once every enabled layer exists
        self.caps: Capabilities = None  # type: ignore[assignment]  # bound by the engine after the cluster's
        self.shared_namespace: dict[str, Any] | None = None  # merged manifest when layers share a namespace

    # -- what the layer needs from the platform (known before the cluster's capabilities) ---------
    def bucket_needs(self) -> dict[str, str]:
        """Buckets this layer uses with these options -> "rw" | "ro"."""
        return dict(self.buckets)

    def database_needs(self) -> tuple[str, ...]:
        """PostgreSQL databases this layer uses with these options (a role of the same name owns each)."""
        return self.databases

    def database_extensions(self) -> dict[str, tuple[str, ...]]:
        """PostgreSQL extensions this layer needs in its databases (database -> extension names, e.g. `vector`)."""
        return {}

    def service_accounts(self) -> tuple[tuple[str, str], ...]:
        """(namespace, ServiceAccount) pairs its cloud-reaching pods run as."""
        return ()

    def identity(self) -> WorkloadIdentity | None:
        """What the cloud must grant this layer's pods (None: nothing)."""
        buckets = self.bucket_needs()
        return WorkloadIdentity(self.name, self.service_accounts(), buckets) if buckets else None

    def identities(self) -> list[WorkloadIdentity]:
        """Every identity this layer's pods use: its own, plus any it hands to other namespaces' pods
        (named `<layer>-<purpose>`; the object store and the clouds give each its own keys or role)."""
        identity = self.identity()
        return [identity] if identity else []

    def cluster_requests(self) -> list[Request]:
        """Typed requests to the cluster module (workload identities, a managed database, GPU devices)."""
        return list(self.identities())

    def lakehouse_namespaces(self) -> tuple[str, ...]:
        """Iceberg namespaces this layer needs in the lakehouse catalog (the lakehouse layer creates them)."""
        return ()

    def team_namespace(self, team: Team) -> tuple[dict[str, str], dict[str, str]]:
        """Labels and annotations this layer needs on every team namespace (the teams layer adds them)."""
        return {}, {}

    # -- teams -----------------------------------------------------------------------------------
    def teams(self) -> tuple[Team, ...]:
        """The teams this layer serves: `cnai:teams` when the teams layer is enabled, else none."""
        directory = self.peers.get(TeamDirectory)
        return directory.all_teams() if directory else ()

    def first_team_namespace(self) -> str | None:
        """Where a layer's example runs: the first team's namespace (None without teams)."""
        teams = self.teams()
        return teams[0].namespace if teams else None

    # -- builders --------------------------------------------------------------------------------
    def check_namespace(self) -> None:
        """An overridden namespace must be one the layer can really move to."""
        wanted = self.options.namespace
        if not wanted or wanted == self.default_namespace:
            return
        if self.default_namespace is None:
            raise ConfigError(f"cnai:layers.{self.name}.namespace: the {self.name} layer has no namespace of its "
                              "own to move; remove namespace")
        if self.namespace_fixed:
            raise ConfigError(f"cnai:layers.{self.name}.namespace: {self.namespace_fixed}, so it cannot move to "
                              f"{wanted!r}; remove namespace")

    def validate(self) -> None:
        """Cross-field checks beyond the Options model, with the capabilities bound; raise ConfigError
        with one line naming the key."""

    @property
    def namespace(self) -> str | None:
        return self.options.namespace or self.default_namespace

    def values(self) -> dict[str, Any]:
        return {}

    def releases(self) -> list[Release]:
        """Helm releases in install order; by default the layer's one `chart` with `values()`."""
        return [Release(self.chart, self.name, self.values())] if self.chart else []

    def install_manifests(self) -> tuple[str, ...]:
        """The `manifests` this cluster gets, in order (a layer may pick variants by capability)."""
        return self.manifests

    def credentials(self) -> list[str]:
        """Names of credentials this layer generates (random, secret); others read them as Generated."""
        return []

    def provided_credentials(self) -> dict[str, str]:
        """Credentials given in (secret) config rather than generated, by name; read as Generated too."""
        return {}

    def workloads(self) -> list[Workload]:
        return []

    def objects(self) -> list[KubeObject]:
        return []

    def release_timeout(self) -> int:
        return self.profile.helm_timeout

    def outputs(self) -> dict[str, Any]:
        return {}

    @classmethod
    def chart_keys(cls) -> tuple[str, ...]:
        """Every versions.yaml chart this layer may install."""
        return ((cls.chart,) if cls.chart else ()) + cls.extra_charts

    # -- derived ---------------------------------------------------------------------------------
    def value_overrides(self) -> list[tuple[Release, str, dict[str, Any]]]:
        """Each release with the stack's overrides for it and the config key they sit at: the overrides
        apply to the one release of a single-chart layer, and are keyed by release name otherwise."""
        built = self.releases()
        overrides = self.options.values
        where = f"cnai:layers.{self.name}.values"
        if len(built) == 1:
            return [(built[0], where, overrides)]
        names = [r.name for r in built]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            allowed = f"one of {', '.join(names)}" if names else "nothing: this layer installs no chart here"
            raise ConfigError(f"{where}.{unknown[0]}: values are keyed by release, allowed: {allowed}")
        for name, value in overrides.items():
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{name}: must be a mapping of the {name} chart's values")
        return [(r, f"{where}.{r.name}", overrides.get(r.name, {})) for r in built]

    def final_releases(self) -> list[Release]:
        """Releases with the stack's `cnai:layers.<name>.values` merged on top."""
        return [replace(r, values=deep_merge(r.values, o)) for r, _, o in self.value_overrides()]

    def final_values(self) -> dict[str, Any]:
        """Values of the layer's main (last) release, overrides included."""
        releases = self.final_releases()
        return releases[-1].values if releases else {}

    def namespace_manifest(self) -> dict[str, Any] | None:
        if self.shared_namespace is not None:
            return self.shared_namespace
        if not self.namespace:
            return None
        return self.platform_namespace(self.namespace, self.pod_security, self.namespace_labels())

    def platform_namespace(self, name: str, level: str, labels: dict[str, str] | None = None,
                           reason: str = "") -> dict[str, Any]:
        """A namespace this layer owns: the platform label (team NetworkPolicies admit it) and the Pod
        Security `level`, plus `labels`; below `restricted`, the reason why (default: the layer's)."""
        reason = reason or self.pod_security_reason
        if level != "restricted" and not reason:
            raise TypeError(f"layer {self.name}: namespace {name} runs {level} without a pod_security_reason")
        annotations = {POD_SECURITY_REASON: reason} if level != "restricted" else None
        return k8s.namespace(name, {PLATFORM_LABEL: self.name, **k8s.pod_security(level), **(labels or {})},
                             annotations)

    def namespace_labels(self) -> dict[str, str]:
        """Extra labels of the layer's namespace (what other components select it by)."""
        return {}

    def all_objects(self) -> list[KubeObject]:
        """Every object the layer creates directly: its namespace, its releases' follow-ups, its objects."""
        ns = self.namespace_manifest()
        then = [KubeObject(m) for r in self.releases() for m in r.then]
        return ([KubeObject(ns)] if ns else []) + then + self.objects()


__all__ = ["Layer", "Peers"]
