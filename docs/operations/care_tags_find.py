"""Count the records of an event topic that still carry care tags, per partition (read-only, no consumer group).

Run with the Kafka settings of a service that may read the topic (KAFKA_* variables):
`python docs/operations/care_tags_find.py intake.demands.v1`. See care-tags-on-old-records.md.
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiokafka import AIOKafkaConsumer

from sandan_contracts.legacy import without_care_tags
from sandan_eventbus.kafka import aiokafka_kwargs, partitions_of

TOPIC = sys.argv[1]  # intake.demands.v1, dispatch.orders.v1 or one of their .dlq


def tagged(value: bytes | None) -> bool:
    return without_care_tags(value) is not None  # what the copy would rewrite


async def main() -> None:
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(), enable_auto_commit=False)  # no group: nothing committed
    await consumer.start()
    try:
        parts = await partitions_of(consumer, [TOPIC])
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        left, found = {tp for tp in parts if ends[tp] > await consumer.position(tp)}, {}
        while left:
            for tp, records in (await consumer.getmany(*left, timeout_ms=1000)).items():
                for r in records:
                    if tagged(r.value):
                        seen = found.setdefault(tp.partition, {"partition": tp.partition, "tagged": 0,
                                                               "first_offset": r.offset, "first_ms": r.timestamp})
                        seen.update(tagged=seen["tagged"] + 1, last_offset=r.offset, last_ms=r.timestamp)
                    if r.offset + 1 >= ends[tp]:
                        left.discard(tp)
        for tp in sorted(parts, key=lambda tp: tp.partition):
            print(json.dumps({"topic": TOPIC, "end_offset": ends[tp], **found.get(tp.partition, {
                "partition": tp.partition, "tagged": 0})}))
    finally:
        await consumer.stop()


asyncio.run(main())
