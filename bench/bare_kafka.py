"""Yardsticks on the bare Kafka client: the fastest a Python process reads or writes the topic.

`consume`: aiokafka assigned to every partition, `getmany` + `orjson.loads` of each value,
nothing stored. `produce`: the same encoded events sent with an idempotent acks=all
producer (the settings of events/kafka_log.py), every ack awaited.
"""
from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from events.log import Message, partition_for


async def consume(bootstrap: str, topic: str, partitions: int, expected: int) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20)
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        started, seen = time.perf_counter(), 0
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def produce(bootstrap: str, topic: str, partitions: int, messages: list[Message]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        started = time.perf_counter()
        acks = [await producer.send(topic, value=m.value, key=m.key.encode(),
                                    partition=partition_for(m.key, partitions)) for m in messages]
        await asyncio.gather(*acks)
        return time.perf_counter() - started
    finally:
        await producer.stop()
