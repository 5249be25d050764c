"""The RAG example's query path: embed a question, retrieve the closest passages from the team's pgvector
database, ask the team's chat model with them (OpenAI-compatible `/chat/completions`), and log the run to MLflow.

Runs in the MLflow server image (psycopg2, mlflow). Waits until the ingestion has stored passages and the chat
model answers.
"""

import json
import os
import time
import urllib.error
import urllib.request

import psycopg2

QUESTION = os.environ.get("QUESTION", "How do teams share GPUs on the platform?")
TOP_K = int(os.environ.get("TOP_K", "3"))
WAIT = float(os.environ.get("MODEL_WAIT_SECONDS", "2700"))


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.load(resp)


def retry(what: str, call):
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return call()
        except (OSError, urllib.error.HTTPError, KeyError, LookupError, psycopg2.Error) as exc:
            if time.monotonic() > deadline:
                raise
            print(f"waiting for {what}: {exc}", flush=True)
            time.sleep(15)


def retrieve(vector: list[float]) -> list[tuple[str, str, float]]:
    with psycopg2.connect(os.environ["PGVECTOR_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT source, chunk, embedding <=> %s::vector AS distance FROM rag_chunks "
                    "ORDER BY distance LIMIT %s", (json.dumps(vector), TOP_K))
        rows = cur.fetchall()
    if not rows:
        raise LookupError("no passages stored yet (the ingestion Job has not run)")
    return rows


def main() -> None:
    embed_url = f"{os.environ['LLM_EMBEDDING_BASE_URL']}/embeddings"
    vector = retry("the embedding model", lambda: post(embed_url, {
        "model": os.environ["LLM_EMBEDDING_MODEL"], "input": [QUESTION]})["data"][0]["embedding"])
    passages = retry("stored passages", lambda: retrieve(vector))
    context = "\n\n".join(f"[{source}] {chunk}" for source, chunk, _ in passages)
    messages = [{"role": "system", "content": "Answer the question in two sentences, using only this context:\n\n"
                 + context},
                {"role": "user", "content": QUESTION}]
    start = time.monotonic()
    chat_url = f"{os.environ['OPENAI_BASE_URL']}/chat/completions"
    reply = retry("the chat model", lambda: post(chat_url, {
        "model": os.environ["LLM_CHAT_MODEL"], "messages": messages, "max_tokens": 128, "temperature": 0}))
    seconds = time.monotonic() - start
    answer = reply["choices"][0]["message"]["content"].strip()
    run_id = None
    if os.environ.get("MLFLOW_TRACKING_URI"):
        import mlflow

        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT", "rag-example"))
        with mlflow.start_run(run_name="rag-query") as run:
            mlflow.log_params({"question": QUESTION, "top_k": TOP_K, "chat_model": os.environ["LLM_CHAT_MODEL"],
                               "embedding_model": os.environ["LLM_EMBEDDING_MODEL"]})
            mlflow.log_metrics({"answer_seconds": seconds, "best_distance": float(passages[0][2])})
            mlflow.log_text(json.dumps({"question": QUESTION, "passages": [p[:2] for p in passages],
                                        "answer": answer}, indent=1), "rag.json")
            run_id = run.info.run_id
    print("CNAI-RAG-RESULT " + json.dumps({"question": QUESTION, "sources": [p[0] for p in passages],
                                           "answer": answer, "seconds": round(seconds, 1), "mlflow_run": run_id}),
          flush=True)


if __name__ == "__main__":
    main()
