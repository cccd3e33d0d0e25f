"""Kafka EventLog (aiokafka): one topic, keyed records, idempotent acks=all producer.

The partition is chosen here with `partition_for`, so a key lands where the
embedded adapter puts it whatever client wrote it. `start()` creates the topic
(infinite retention, no compaction) or adopts the partition count it already has.
Offsets of consumers live in the read model, never in Kafka: auto-commit is off.

An append (metadata, send and every ack: aiokafka puts no limit on `send` itself) and an
end-offsets request are bounded by `timeout` (RUNLEDGER_KAFKA_TIMEOUT); past it they raise
`LogUnavailable` naming the brokers. A read has its own bound (READ_TIMEOUT). The producer's
`request_timeout_ms` is the same bound, so a batch the brokers never took expires in the
producer instead of landing long after the caller was told 503.

The producer is idempotent: the broker keeps, per producer id and partition, the next
sequence number it expects. When the two fall out of step the broker refuses every later
batch to that partition (OUT_OF_ORDER_SEQUENCE_NUMBER; older brokers may answer
UNKNOWN_PRODUCER_ID or a fenced epoch instead). aiokafka causes such a gap itself: a batch
whose partition had no leader for longer than `request_timeout_ms` (a broker restart) is
failed after its sequence numbers were counted. An append refused that way replaces the
producer (a new producer id starts from 0) and sends again once, within the same bound.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (InvalidProducerEpoch, KafkaConnectionError, KafkaError, OutOfOrderSequenceNumber,
                             ProducerClosed, ProducerFenced, TopicAlreadyExistsError, UnknownProducerId, for_code)

from .log import LogUnavailable, Message, OnPartitions, Position, Record, partition_for

log = logging.getLogger("runledger.kafka")

TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete",
                "message.timestamp.type": "LogAppendTime"}  # the broker's clock bounds producers' (projections/domain/clock.py)
READ_TIMEOUT = 30.0
# The broker no longer accepts this producer's sequence numbers (see the module's docstring).
OUT_OF_STEP = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)


def default_min_insync_replicas(replication_factor: int) -> int:
    """Replicas that must hold a record before an `acks=all` append is acknowledged: 2 from a
    replication factor of 3 up (one broker may then be lost with nothing acknowledged lost,
    and appends go on while one is away), 1 below (a single copy is all there is)."""
    return max(1, min(2, replication_factor - 1))


class KafkaEventLog:
    def __init__(self, bootstrap: str, topic: str = "runledger.events", partitions: int = 6,
                 replication_factor: int = 1, *, min_insync_replicas: int | None = None,
                 client_id: str = "runledger", session_timeout_ms: int = 10_000, timeout: float = 10.0):
        self.bootstrap = bootstrap
        self.timeout = timeout
        self.topic = topic
        self._partitions = partitions
        self._replication_factor = replication_factor
        self._min_insync = min_insync_replicas or default_min_insync_replicas(replication_factor)
        self._client_id = client_id
        self._session_timeout_ms = session_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._retired: set[asyncio.Task] = set()  # replaced producers, stopping
        self.producers_replaced = 0
        self._reader: AIOKafkaConsumer | None = None
        self._reader_lock = asyncio.Lock()

    @property
    def partitions(self) -> int:
        return self._partitions

    async def start(self) -> None:
        self._partitions = await self._ensure_topic()
        self._producer = await self._new_producer()

    async def _new_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, client_id=self._client_id,
            enable_idempotence=True, acks="all", request_timeout_ms=int(self.timeout * 1000),
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()  # its connections, however far it got
            raise
        return producer

    async def close(self) -> None:
        for client in (self._producer, self._reader):
            if client is not None:
                await client.stop()
        self._producer = self._reader = None
        if self._retired:
            await asyncio.gather(*self._retired, return_exceptions=True)

    async def append(self, messages: Sequence[Message]) -> list[Position]:
        """All sends are queued first (the producer batches them), then every ack is awaited,
        within `timeout`. Not atomic across partitions: on error some messages may be on the
        log. Resending is safe, because events carry their identity and the fold ignores
        duplicates."""
        return await self._bounded(self._append(messages), "append")

    async def _append(self, messages: Sequence[Message]) -> list[Position]:
        refused = None
        for _ in range(2):  # the second time through a new producer
            producer = self._producer
            try:
                return await self._send(producer, messages)
            except ProducerClosed as exc:
                if producer is self._producer:
                    raise  # the log was closed, not a producer replaced under this append
                refused = exc
            except OUT_OF_STEP as exc:
                log.warning("Kafka (%s) refused the producer's sequence numbers (%r): a new producer",
                            self.bootstrap, exc)
                # shielded: an append timing out meanwhile does not leave a producer half started
                await asyncio.shield(self._replace_producer(producer))
                refused = exc
        raise LogUnavailable("Kafka", f"Kafka ({self.bootstrap}) refused an append, sent again through a "
                                      f"new producer: {refused!r}") from refused

    async def _replace_producer(self, failed: AIOKafkaProducer) -> None:
        """A new producer in place of `failed`, once however many appends saw it fail. The old
        one is stopped in the background: its own pending batches fail the same way, and their
        appends send again through the new one."""
        async with self._producer_lock:
            if self._producer is not failed:
                return
            producer = await self._new_producer()
            if self._producer is not failed:  # the log was closed meanwhile
                await producer.stop()
                return
            self._producer = producer
            self.producers_replaced += 1
        task = asyncio.create_task(self._stop_retired(failed))
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def _stop_retired(self, producer: AIOKafkaProducer) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await producer.stop()
        except Exception as exc:  # a broker away: its connections are dropped with it
            log.info("a replaced Kafka producer did not stop cleanly: %r", exc)

    async def _send(self, producer: AIOKafkaProducer, messages: Sequence[Message]) -> list[Position]:
        acks = []
        for message in messages:
            partition = partition_for(message.key, self._partitions)
            acks.append(await producer.send(
                self.topic, value=message.value, key=message.key.encode(), partition=partition))
        results = await asyncio.gather(*acks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [Position(meta.partition, meta.offset) for meta in results]

    async def _bounded(self, work, what: str):
        try:
            async with asyncio.timeout(self.timeout):
                return await work
        except TimeoutError:
            raise LogUnavailable("Kafka", f"Kafka ({self.bootstrap}) did not answer an {what} within "
                                          f"{self.timeout:g}s" + ("; it may still land" if what == "append" else "")
                                 ) from None
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) and not isinstance(exc, KafkaConnectionError):
                raise
            raise LogUnavailable("Kafka", f"Kafka ({self.bootstrap}) refused an {what}: {exc}") from exc

    async def read(self, partition: int, from_offset: int, max_records: int = 500) -> list[Record]:
        """Bounded by READ_TIMEOUT (a range of large records may take longer than `timeout`)."""
        self._check_partition(partition)
        tp = TopicPartition(self.topic, partition)
        async with self._reader_lock:
            reader = await self._ensure_reader()
            end = (await reader.end_offsets([tp]))[tp]
            if from_offset >= end:
                return []
            reader.assign([tp])
            reader.seek(tp, from_offset)
            try:
                return await _read_until(reader, tp, min(end, from_offset + max_records))
            finally:
                reader.assign([])  # stop fetching in the background

    async def end_offsets(self) -> dict[int, int]:
        return await self._bounded(self._end_offsets(), "end-offsets request")

    async def _end_offsets(self) -> dict[int, int]:
        reader = await self._ensure_reader()
        tps = [TopicPartition(self.topic, p) for p in range(self._partitions)]
        ends = await reader.end_offsets(tps)
        return {tp.partition: ends[tp] for tp in tps}

    def consumer(self) -> KafkaConsumer:
        return KafkaConsumer(self)

    def _client_options(self) -> dict:
        """read_committed: records of aborted (or still open) transactions of an outside
        transactional producer are never delivered; their offsets and the transaction
        markers are gaps, which the projector steps over (offsets increase, not contiguously)."""
        return dict(bootstrap_servers=self.bootstrap, client_id=self._client_id,
                    enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed")

    async def _ensure_reader(self) -> AIOKafkaConsumer:
        if self._reader is None:
            reader = AIOKafkaConsumer(**self._client_options(), fetch_max_wait_ms=100)
            await reader.start()
            self._reader = reader
        return self._reader

    async def _ensure_topic(self) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=self._client_id)
        await admin.start()
        try:
            existing = await _partition_count(admin, self.topic)
            if existing is None:
                existing = await self._create_topic(admin)
        finally:
            await admin.close()
        if existing != self._partitions:
            log.info("topic %s has %s partitions (asked for %s): adopting it", self.topic, existing,
                     self._partitions)
        return existing

    async def _create_topic(self, admin: AIOKafkaAdminClient) -> int:
        config = {**TOPIC_CONFIG, "min.insync.replicas": str(self._min_insync)}
        topic = NewTopic(self.topic, self._partitions, self._replication_factor, topic_configs=config)
        response = await admin.create_topics([topic])
        for _name, code, *message in response.topic_errors:
            error = for_code(code)
            if code and error is not TopicAlreadyExistsError:  # losing a creation race is fine
                raise error(f"creating topic {self.topic}: {message[0] if message else ''}")
        log.info("created topic %s (%s partitions, replication factor %s, min.insync.replicas %s, infinite "
                 "retention)", self.topic, self._partitions, self._replication_factor, self._min_insync)
        for _ in range(100):  # wait until the metadata shows every partition
            count = await _partition_count(admin, self.topic)
            if count:
                return count
            await asyncio.sleep(0.1)
        raise KafkaError(f"topic {self.topic} was created but does not show in the metadata")

    def _check_partition(self, partition: int) -> None:
        if not 0 <= partition < self._partitions:
            raise ValueError(f"partition {partition} out of range 0..{self._partitions - 1}")


async def _partition_count(admin: AIOKafkaAdminClient, topic: str) -> int | None:
    """The topic's partition count; None if absent. Asks for every topic, so a broker with
    auto-creation on does not create ours with its defaults."""
    for described in await admin.describe_topics():
        if described["topic"] == topic and described["error_code"] == 0:
            partitions = described["partitions"]
            if partitions and all(p["leader"] >= 0 for p in partitions):
                return len(partitions)
            return 0
    return None


async def _read_until(reader: AIOKafkaConsumer, tp: TopicPartition, stop: int) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + READ_TIMEOUT
    next_offset = -1
    while next_offset < stop and time.monotonic() < deadline:
        batch = await reader.getmany(tp, timeout_ms=500, max_records=max(1, stop - max(next_offset, 0)))
        for message in batch.get(tp, ()):
            if message.offset >= stop:
                break
            records.append(_record(message))
            next_offset = message.offset + 1
        next_offset = max(next_offset, await reader.position(tp))  # past gaps (markers, aborted records)
    if next_offset < stop and not records:
        raise KafkaError(f"reading {tp.topic}[{tp.partition}]: no records within {READ_TIMEOUT:g}s")
    return records


def _record(message) -> Record:
    key = message.key.decode(errors="replace") if message.key is not None else ""
    return Record(message.partition, message.offset, key, message.value or b"", message.timestamp)


class KafkaConsumer:
    """A LogConsumer over AIOKafkaConsumer, started on first use (assign and seek are sync)."""

    def __init__(self, log_: KafkaEventLog):
        self._log = log_
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned: set[int] = set()
        self._pending_seeks: dict[int, int] = {}
        self._group: str | None = None
        self._listener: _Listener | None = None

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self._log.topic, partition)

    def assign(self, partitions: Iterable[int]) -> None:
        partitions = set(partitions)
        for partition in partitions:
            self._log._check_partition(partition)
        self._assigned = partitions
        self._pending_seeks = dict.fromkeys(partitions, 0)
        if self._consumer is not None:
            self._consumer.assign([self._tp(p) for p in partitions])
            self._apply_seeks()

    async def subscribe(self, group: str, on_assigned: OnPartitions, on_revoked: OnPartitions) -> None:
        self._group = group
        self._listener = _Listener(self._log.topic, on_assigned, on_revoked)
        self._consumer = AIOKafkaConsumer(
            **self._log._client_options(), group_id=group,
            session_timeout_ms=self._log._session_timeout_ms,
            heartbeat_interval_ms=max(1000, self._log._session_timeout_ms // 4),
        )
        await self._consumer.start()
        self._consumer.subscribe([self._log.topic], listener=self._listener)

    def seek(self, partition: int, offset: int) -> None:
        if partition not in self.assignment():
            raise ValueError(f"partition {partition} is not assigned")
        if self._consumer is None:
            self._pending_seeks[partition] = offset
        else:
            self._consumer.seek(self._tp(partition), offset)

    def assignment(self) -> set[int]:
        if self._group is None:
            return set(self._assigned)
        if self._consumer is None:
            return set()
        return {tp.partition for tp in self._consumer.assignment() if tp.topic == self._log.topic}

    async def poll(self, timeout: float, max_records: int = 500) -> list[Record]:
        if self._consumer is None:
            if self._group is not None:
                raise RuntimeError("the consumer is closed")
            await self._start_assigned()
        if self._listener is not None:
            self._listener.raise_failure()
        batches = await self._consumer.getmany(timeout_ms=int(timeout * 1000), max_records=max_records)
        return [_record(m) for tp in sorted(batches, key=lambda tp: tp.partition) for m in batches[tp]]

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        if self._listener is not None:
            await self._listener.release(consumer.assignment())
        await consumer.stop()  # leaves the group, so the others rebalance at once

    async def _start_assigned(self) -> None:
        self._consumer = AIOKafkaConsumer(**self._log._client_options())
        await self._consumer.start()
        self._consumer.assign([self._tp(p) for p in self._assigned])
        self._apply_seeks()

    def _apply_seeks(self) -> None:
        for partition, offset in self._pending_seeks.items():
            self._consumer.seek(self._tp(partition), offset)
        self._pending_seeks = {}


class _Listener(ConsumerRebalanceListener):
    """Calls our callbacks with partition numbers. aiokafka only logs a failing callback
    and goes on fetching; we keep the error and raise it from the next poll instead."""

    def __init__(self, topic: str, on_assigned: OnPartitions, on_revoked: OnPartitions):
        self._topic = topic
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._failure: BaseException | None = None
        self._held: set[int] = set()

    async def on_partitions_revoked(self, revoked) -> None:
        await self.release(revoked)

    async def on_partitions_assigned(self, assigned) -> None:
        partitions = {tp.partition for tp in assigned if tp.topic == self._topic}
        try:
            await self._on_assigned(partitions)
            self._held = partitions
        except Exception as exc:
            log.exception("on_assigned failed for partitions %s", sorted(partitions))
            self._failure = exc

    async def release(self, tps) -> None:
        partitions = {tp.partition for tp in tps if tp.topic == self._topic} & self._held
        if not partitions:
            return
        self._held -= partitions
        try:
            await self._on_revoked(partitions)
        except Exception as exc:
            log.exception("on_revoked failed for partitions %s", sorted(partitions))
            self._failure = exc

    def raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
