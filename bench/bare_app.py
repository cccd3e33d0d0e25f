"""The bare yardstick server: FastAPI on the same uvicorn settings as `runledger serve`.

    python -m bench.bare_app --port P --bodies DIR [--kafka HOST:PORT --topic T --partitions N]

`GET /body/{name}` returns the bytes of DIR/{name}.json (a runledger answer saved
earlier), nothing else. `POST /ingest` parses the same body as `POST /v1/ledger/events`
with orjson and appends each event's bytes to Kafka with an idempotent acks=all producer,
awaiting every ack: HTTP in, Kafka out, with nothing of runledger in between.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

import orjson
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response

from events.log import partition_for


def create_app(bodies: Path, kafka: str | None, topic: str, partitions: int) -> FastAPI:
    saved = {p.stem: p.read_bytes() for p in bodies.glob("*.json")}
    producer: dict[str, AIOKafkaProducer] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if kafka:
            producer["p"] = AIOKafkaProducer(bootstrap_servers=kafka, enable_idempotence=True, acks="all")
            await producer["p"].start()
        yield
        if producer:
            await producer["p"].stop()

    app = FastAPI(lifespan=lifespan)

    @app.get("/body/{name}")
    async def body(name: str) -> Response:
        return Response(saved[name], media_type="application/json")

    @app.post("/ingest", status_code=202)
    async def ingest(request: Request) -> Response:
        events = orjson.loads(await request.body())["events"]
        acks = [await producer["p"].send(topic, orjson.dumps(e), key=e["run_id"].encode(),
                                         partition=partition_for(e["run_id"], partitions)) for e in events]
        metas = await asyncio.gather(*acks)
        return Response(orjson.dumps({"positions": [f"{m.partition}:{m.offset}" for m in metas]}),
                        status_code=202, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bodies", type=Path, required=True)
    parser.add_argument("--kafka")
    parser.add_argument("--topic", default="bench.bare")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    app = create_app(args.bodies, args.kafka, args.topic, args.partitions)
    # the settings of services/server.py
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
