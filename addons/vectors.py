"""vectors: vector search for team workloads, with pgvector in the platform's PostgreSQL.

Each team gets a database `vectors_<team>` (dashes become underscores), owned by a login role with the same
name, with the `vector` extension created in it. The postgres layer does the work: it creates the role, the
database and its generated password (`database_needs()`), and the extension (`database_extensions()`). With
CloudNativePG it lists the extension in the `Database` and runs the cluster on the `standard` image (the
`minimal` one has no pgvector). With RDS or Cloud SQL its roles Job creates the extension as the admin.

Each team namespace gets Secret `pgvector` with the connection settings (`host`, `port`, `dbname`, `user`,
`password`, `sslmode`, `uri`). `VectorStore.client_env()` exposes them as `PGVECTOR_*` variables. The layer
runs no pods. Why pgvector rather than a vector database such as Qdrant: docs/layers/vectors.md.
"""

from __future__ import annotations

from typing import Any

from addons.base import Layer
from modules.shared.config import Team
from modules.shared.k8s import secret
from modules.shared.labels import MANAGED_BY
from modules.shared.markers import Generated, Template
from modules.shared.offers import Database, VectorStore
from modules.shared.parts import KubeObject

SECRET = "pgvector"  # in every team namespace
EXTENSION = "vector"  # pgvector's SQL name
PREFIX = "vectors_"
# The CloudNativePG cluster serves TLS with its own CA, RDS and Cloud SQL require TLS: encrypt, without
# verifying the server's certificate (its CA is not distributed to team namespaces).
SSLMODE = "require"
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
# Secret key of each client variable (`VectorStore.client_env()`).
ENV = {"PGVECTOR_HOST": "host", "PGVECTOR_PORT": "port", "PGVECTOR_DATABASE": "dbname", "PGVECTOR_USER": "user",
       "PGVECTOR_PASSWORD": "password", "PGVECTOR_URL": "uri"}


def team_database(team: Team) -> str:
    """The team's database and role: a PostgreSQL identifier, so dashes become underscores (team names are
    DNS labels of at most 50 characters: no underscores, so no two teams collide, and at most 58 characters)."""
    return PREFIX + team.name.replace("-", "_")


class Vectors(Layer):
    name = "vectors"
    component = "Vectors"
    description = "Vector search for teams: a pgvector database and role per team in the platform's PostgreSQL."
    requires = ("postgres",)
    after = {"teams": "objects"}  # the Secrets go into team namespaces
    offers = (VectorStore,)
    default_namespace = None  # nothing of its own runs: the databases live in the postgres layer's cluster

    # -- what it offers ------------------------------------------------------------------------------
    @property
    def client_secret(self) -> str:
        return SECRET

    def team_database(self, team: Team) -> str:
        return team_database(team)

    def client_env(self) -> list[dict[str, Any]]:
        return [{"name": env, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key, "optional": True}}}
                for env, key in ENV.items()]

    # -- what it needs from the postgres layer -------------------------------------------------------
    def database_needs(self) -> tuple[str, ...]:
        return tuple(team_database(t) for t in self.teams())

    def database_extensions(self) -> dict[str, tuple[str, ...]]:
        return {db: (EXTENSION,) for db in self.database_needs()}

    # -- objects ---------------------------------------------------------------------------------------
    def objects(self) -> list[KubeObject]:
        pg = self.peers.need(Database)
        managed = isinstance(pg.host, Generated)  # the managed instance's address is known at deploy time only
        out = []
        for team in self.teams():
            db, ns = team_database(team), team.namespace
            uri = Template.of(f"postgresql://{db}:${{password}}@${{host}}:{pg.port}/{db}?sslmode={SSLMODE}",
                              password=pg.password(db), host=pg.host) if managed else \
                Template.of(f"postgresql://{db}:${{password}}@{pg.host}:{pg.port}/{db}?sslmode={SSLMODE}",
                            password=pg.password(db))
            # Generated passwords are alphanumeric: the URI needs no percent-encoding.
            data = {"host": pg.host, "port": str(pg.port), "dbname": db, "user": db, "password": pg.password(db),
                    "sslmode": SSLMODE, "uri": uri}
            out.append(KubeObject(secret(SECRET, ns, data), phase="after-peers"))
            if managed:
                out.append(KubeObject(self._egress_policy(ns, pg.port), phase="after-peers"))
        return out

    @staticmethod
    def _egress_policy(namespace: str, port: int) -> dict[str, Any]:
        """Team namespaces deny egress outside the cluster's platform namespaces; RDS and Cloud SQL sit at a private
        address the layers do not know (the capabilities carry no CIDR for it): allow PostgreSQL's port to the
        private ranges."""
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "allow-pgvector", "namespace": namespace, "labels": dict(MANAGED_BY)},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                         "egress": [{"to": [{"ipBlock": {"cidr": c}} for c in PRIVATE_RANGES],
                                     "ports": [{"protocol": "TCP", "port": port}]}]}}

    def outputs(self) -> dict[str, Any]:
        return {"secret": SECRET, "databases": list(self.database_needs())}
