"""The data example's first hops: raw data lands in the bucket, Ray Data reads it, PyIceberg writes an Iceberg
table through the lakehouse's REST catalog.

Runs as a RayJob's entrypoint on the head of the job's Ray cluster, with PyIceberg from the job's runtime
environment. The catalog settings and the team's credential come from the environment the platform injects
(`PYICEBERG_CATALOG__LAKE__*`, `LAKEHOUSE_*`: the team namespace's `lakehouse-client` Secret). The raw data
is generated here: 150 flowers of three species (seeded, like the iris measurements), a few KB of CSV.
"""

import io
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import ray
from pyiceberg.catalog import load_catalog

RAW = os.environ["RAW_PATH"]  # bucket/key of the raw CSV
TABLE = f"{os.environ['LAKEHOUSE_NAMESPACE']}.{os.environ.get('TABLE', 'iris')}"
SPECIES = {"setosa": (5.0, 3.4, 1.5, 0.2), "versicolor": (5.9, 2.8, 4.3, 1.3), "virginica": (6.6, 3.0, 5.6, 2.0)}


def filesystem() -> pafs.FileSystem:
    """The bucket's filesystem: S3 (the in-cluster store with the team's keys, or AWS with the pod's identity)
    or GCS (the pod's identity)."""
    if os.environ.get("LAKEHOUSE_STORE", "s3") == "gcs":
        return pafs.GcsFileSystem()
    endpoint = os.environ.get("LAKEHOUSE_S3_ENDPOINT", "")
    kwargs = {"region": os.environ.get("LAKEHOUSE_S3_REGION", "us-east-1")}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs.update(endpoint_override=host, scheme=scheme, force_virtual_addressing=False)
    if os.environ.get("LAKEHOUSE_S3_ACCESS_KEY_ID"):
        kwargs.update(access_key=os.environ["LAKEHOUSE_S3_ACCESS_KEY_ID"],
                      secret_key=os.environ["LAKEHOUSE_S3_SECRET_ACCESS_KEY"])
    return pafs.S3FileSystem(**kwargs)


def raw_csv() -> bytes:
    rng = np.random.default_rng(7)
    rows = []
    for species, means in SPECIES.items():
        for _ in range(50):
            rows.append([round(float(v), 1) for v in rng.normal(means, 0.25)] + [species])
    table = pa.table({name: [r[i] for r in rows] for i, name in enumerate(
        ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])})
    out = io.BytesIO()
    pacsv.write_csv(table, out)
    return out.getvalue()


def main() -> None:
    fs = filesystem()
    with fs.open_output_stream(RAW) as f:  # 1. raw data lands in the bucket
        f.write(raw_csv())
    print(f"raw data written to {RAW}", flush=True)
    ray.init()
    ds = ray.data.read_csv(RAW, filesystem=fs)  # 2. Ray Data reads and cleans it
    ds = ds.filter(lambda row: row["petal_length"] > 0)
    table = pa.concat_tables([ray.get(ref) for ref in ds.to_arrow_refs()])
    catalog = load_catalog("lake")  # 3. PyIceberg writes the table through the REST catalog
    iceberg = catalog.create_table_if_not_exists(TABLE, schema=table.schema)
    iceberg.overwrite(table)
    print(f"CNAI-EXAMPLE table {TABLE} rows={len(iceberg.scan().to_arrow())}", flush=True)


if __name__ == "__main__":
    main()
