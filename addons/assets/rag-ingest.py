"""The RAG example's ingestion: chunk the documents shipped with the example, embed them with the team's
embedding model (OpenAI-compatible `/embeddings`), and store chunks and vectors in the team's pgvector database.

Runs in the MLflow server image (psycopg2). Idempotent: a chunk already stored is kept. The embedding model may
still be downloading when the Job starts, so its endpoint is polled until it answers.
"""

import json
import os
import pathlib
import time
import urllib.error
import urllib.request

import psycopg2

DOCS = pathlib.Path(os.environ.get("RAG_DOCS", "/rag"))
WAIT = float(os.environ.get("MODEL_WAIT_SECONDS", "2700"))
MAX_CHARS = 800


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.load(resp)


def embed(texts: list[str]) -> list[list[float]]:
    base, model = os.environ["LLM_EMBEDDING_BASE_URL"], os.environ["LLM_EMBEDDING_MODEL"]
    deadline = time.monotonic() + WAIT
    while True:
        try:
            data = post(f"{base}/embeddings", {"model": model, "input": texts})["data"]
            return [d["embedding"] for d in sorted(data, key=lambda d: d["index"])]
        except (OSError, urllib.error.HTTPError, KeyError) as exc:  # the model still downloading or loading
            if time.monotonic() > deadline:
                raise
            print(f"waiting for {base}: {exc}", flush=True)
            time.sleep(15)


def chunks(text: str) -> list[str]:
    """Paragraphs, merged up to MAX_CHARS (headings stay with what follows)."""
    out, current = [], ""
    for para in (p.strip() for p in text.split("\n\n") if p.strip()):
        if current and len(current) + len(para) > MAX_CHARS:
            out.append(current)
            current = ""
        current = f"{current}\n\n{para}".strip()
    return out + ([current] if current else [])


def main() -> None:
    docs = {p.name.removeprefix("doc-"): p.read_text() for p in sorted(DOCS.glob("doc-*.md"))}
    rows = [(source, chunk) for source, text in docs.items() for chunk in chunks(text)]
    vectors = embed([chunk for _, chunk in rows])
    dim = len(vectors[0])
    with psycopg2.connect(os.environ["PGVECTOR_URL"]) as conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cur.execute(f"CREATE TABLE IF NOT EXISTS rag_chunks (id bigserial PRIMARY KEY, source text NOT NULL, "
                    f"chunk text NOT NULL, embedding vector({dim}) NOT NULL, UNIQUE (source, chunk))")
        for (source, chunk), vector in zip(rows, vectors):
            cur.execute("INSERT INTO rag_chunks (source, chunk, embedding) VALUES (%s, %s, %s::vector) "
                        "ON CONFLICT (source, chunk) DO NOTHING", (source, chunk, json.dumps(vector)))
        cur.execute("SELECT count(*) FROM rag_chunks")
        stored = cur.fetchone()[0]
    print("CNAI-RAG-RESULT " + json.dumps({"documents": len(docs), "chunks": len(rows), "stored": stored,
                                           "dimension": dim}), flush=True)


if __name__ == "__main__":
    main()
