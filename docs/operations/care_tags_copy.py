"""Copy an event topic to its `.v2`, every record in its partition, with its key, timestamp and headers, the care
tags removed from the records that carry them (`sandan_contracts.legacy`, tested there). Writes as the topic's
owner: run with that service's Kafka settings (KAFKA_* variables), the service stopped, the new topic empty:
`python docs/operations/care_tags_copy.py intake.demands.v1 intake.demands.v2`. See care-tags-on-old-records.md.
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sandan_contracts.legacy import moved_headers, without_care_tags
from sandan_eventbus.kafka import aiokafka_kwargs, partitions_of

OLD, NEW = sys.argv[1], sys.argv[2]  # e.g. intake.demands.v1 intake.demands.v2 (created empty, same partitions)


async def main() -> None:
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(), enable_auto_commit=False)  # no group: nothing committed
    producer = AIOKafkaProducer(**aiokafka_kwargs(), acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        parts = await partitions_of(consumer, [OLD])
        assert len(await partitions_of(consumer, [NEW])) == len(parts), "create NEW with OLD's partitions"
        assert not any((await consumer.end_offsets(await partitions_of(consumer, [NEW]))).values()), "NEW not empty"
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        left, copied, rewritten = {tp for tp in parts if ends[tp] > await consumer.position(tp)}, 0, 0
        while left:
            for tp, records in (await consumer.getmany(*left, timeout_ms=1000, max_records=500)).items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue  # written after the start: the owner must be stopped during the copy
                    value = without_care_tags(r.value)
                    rewritten += value is not None
                    # same partition, key, timestamp and order; headers name the new topic and the source record
                    await producer.send(NEW, value if value is not None else r.value, key=r.key,
                                        partition=tp.partition, timestamp_ms=r.timestamp,
                                        headers=moved_headers(r.headers, OLD, NEW, tp.partition, r.offset))
                    copied += 1
                    if r.offset + 1 >= ends[tp]:
                        left.discard(tp)
        await producer.flush()
        print(f"copied {copied} records, {rewritten} without their care tags; ends were "
              f"{ {tp.partition: end for tp, end in sorted(ends.items(), key=lambda kv: kv[0].partition)} }")
    finally:
        await producer.stop()
        await consumer.stop()


asyncio.run(main())
