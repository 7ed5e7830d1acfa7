"""The native kernel folds exactly as the Python rules do.

The Python `Ledger` is the reference; the kernel (services/scoring/kernel, Rust) must leave every container
of the ledger equal to what the reference leaves: entries, orders, ratings, check-ins, attribution, the
duplicate-detection state, the counters and the change tracking. Checked on simulated counties (shuffled
across partitions and with re-delivered duplicates), on messages mutated into every odd shape the decoder
must hand back to Python (and on invalid ones, which must be reported identically), and on the replay
path that walks librdkafka messages itself.

Without the kernel installed these tests fail; a developer without Rust may run the rest with
`SCORING_KERNEL=python` and `-k "not kernel"`. CI builds the kernel (scripts/bootstrap.sh).
"""

from __future__ import annotations

import importlib
import random
import zlib
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandan_contracts import encode
from sandan_contracts.events import DemandTextsShredded
from sandan_contracts.events.intake import TOPIC as DEMANDS
from sandan_scoring.facts import SKIPPED_TYPES, type_of
from sandan_scoring.fold import Ledger
from sandan_scoring.folding import fold_records, folder
from sandan_scoring.report import Reports
from sandan_scoring.rules import RuleBook
from sandan_scoring.simulate import County
from services.scoring.tests.support import assert_same, fold_both, state

RULES = RuleBook()
Record = tuple[str, bytes | None]

sandan_kernel = importlib.import_module("sandan_kernel")  # a missing kernel fails here; it is never skipped


@cache
def county_log(seed: int, walks: int = 300, party_days: int = 6) -> tuple[Record, ...]:
    log = County(seed, communities=3, units=6, members=40).run(walks, party_days)
    return tuple((topic, raw) for topic, messages in log.items() for _key, raw in messages)


def partitioned(records: tuple[Record, ...], rng: random.Random, duplicates: int) -> list[Record]:
    """A consumption order Kafka could produce: per-partition order kept, partitions interleaved at random,
    some messages delivered again later in their partition (a relay re-publishing after a crash)."""
    parts: dict[tuple[str, int], list[Record]] = {}
    for topic, raw in records:
        key = orjson.loads(raw or b"{}").get("key", "")
        parts.setdefault((topic, zlib.crc32(key.encode()) % 3), []).append((topic, raw))
    for part in parts.values():
        for _ in range(min(duplicates, len(part))):
            i = rng.randrange(len(part))
            part.insert(rng.randrange(i, len(part)) + 1, part[i])
    queues = [list(p) for p in parts.values()]
    out: list[Record] = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


def test_kernel_hashes_entry_ids_as_the_reference_does() -> None:
    import hashlib

    for parts in [("2026.1", "service_completed", "m-00001", "dispatch:1"), ("v", "r", "成员", "x:y:z")]:
        expected = "e-" + hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()
        assert sandan_kernel.entry_id_of(*parts) == expected


@pytest.mark.parametrize("version", ["2026.1", "2026.2"])
@pytest.mark.parametrize("track", [True, False])
def test_kernel_folds_a_county_as_the_reference_does(version: str, track: bool) -> None:
    python, _ = assert_same(list(county_log(11)), version=version, track=track)
    assert len(python.entries) > 500 and python.duplicates == 0  # the county exercised the rules


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), duplicates=st.integers(0, 40), batch=st.sampled_from([1, 7, 200, 5000]))
def test_kernel_equals_reference_under_any_interleaving_and_redelivery(seed: int, duplicates: int,
                                                                        batch: int) -> None:
    records = partitioned(county_log(seed % 3), random.Random(seed), duplicates)
    python, _ = assert_same(records, batch=batch)
    assert python.duplicates >= 0


def restyled(records: tuple[Record, ...], flag: bool) -> list[Record]:
    """The log with every OrderOpened written one way: the flag (`special_care`, tags []) or the tags only."""
    out = []
    for topic, raw in records:
        message = orjson.loads(raw or b"{}")
        if message.get("type") == "OrderOpened":
            data = message["data"]
            care = data.get("special_care", False) or bool(data["care_tags"])
            if flag:
                data["care_tags"], data["special_care"] = [], care
            else:
                data.pop("special_care", None)
                data["care_tags"] = data["care_tags"] or (["disabled"] if care else [])
            raw = orjson.dumps(message)
        out.append((topic, raw))
    return out


def test_old_and_new_special_care_fold_to_one_digest_in_kernel_and_reference() -> None:
    """Scoring's rebuild over a log written before `special_care` gives the digest the same log written after
    gives: the flag and the tags mean the same, in the Python rules and in the kernel's decoder."""
    records = county_log(11)
    old, _ = assert_same(restyled(records, flag=False))
    new, _ = assert_same(restyled(records, flag=True))
    assert any(e.rule == "special_care_bonus" for e in new.entries.values())
    assert Reports(new).digest() == Reports(old).digest()


def with_shredded_texts(records: tuple[Record, ...], rng: random.Random) -> list[Record]:
    """The log with DemandTextsShredded (retention or erasure, some twice: both causes can meet) after some of
    intake's facts about a demand, under event ids of their own (intake numbers every event it publishes)."""
    out: list[Record] = []
    numbers = iter(range(900_000, 10_000_000))
    for topic, raw in records:
        out.append((topic, raw))
        message = orjson.loads(raw or b"{}")
        if topic != DEMANDS or rng.random() < 0.4:
            continue
        for cause in rng.sample(["retention", "erasure"], rng.randint(1, 2)):
            n = next(numbers)
            out.append((DEMANDS, encode(DemandTextsShredded(demand_id=message["key"], cause=cause),  # type: ignore[arg-type]
                                        event_id=f"intake:{n}", producer="intake",
                                        occurred_at=datetime.fromisoformat(message["occurred_at"]),
                                        correlation_id=f"intake:{n}", causation_id=None)))
    return out


def test_shredded_texts_interleaved_rebuild_to_the_same_digest_in_kernel_and_reference() -> None:
    """Scoring counts no text: a log with intake's DemandTextsShredded among its facts folds, in the Python
    reference and in the kernel, live (each decoded and judged) or replayed (skipped unparsed), to exactly the
    state and the digest the log without them gives; none of them is reported invalid."""
    records = county_log(11)
    shredded = with_shredded_texts(records, random.Random(11))
    added = len(shredded) - len(records)
    assert added > 100 and b"DemandTextsShredded" in SKIPPED_TYPES
    plain, _ = assert_same(list(records))
    python, native, bad_python, bad_native = fold_both(shredded)
    assert bad_python == bad_native == []
    assert state(python) == state(native) == state(plain)
    assert Reports(python).digest() == Reports(native).digest() == Reports(plain).digest()
    # a replay: the kernel walks the messages and passes over the type the fold never uses
    offsets: dict[tuple[str, int], int] = {}
    messages = []
    for topic, raw in shredded:  # one partition per topic: the log's order kept
        offset = offsets.get((topic, 0), 0)
        offsets[(topic, 0)] = offset + 1
        messages.append(FakeMessage(topic, 0, offset, raw))
    replayed = Ledger(RULES.get("2026.1"), track_changes=False)
    read, finished = folder(replayed, skip=SKIPPED_TYPES).fold_messages(messages, dict(offsets), _fail)
    assert (read, sorted(finished)) == (len(messages), sorted(offsets))
    assert state(replayed)["entries"] == plain.entries
    assert Reports(replayed).digest() == Reports(plain).digest()


# ---- odd shapes: every one must end exactly where the Python decoder puts it ------------------------------
MUTATIONS: list[tuple[bytes, bytes]] = [
    (b'"stars":5', b'"stars":5.0'), (b'"stars":5', b'"stars":true'), (b'"stars":5', b'"stars":9'),
    (b'"stars":5', b'"stars":"5"'), (b'"hours":2.0', b'"hours":true'), (b'"hours":2.0', b'"hours":2'),
    (b'"hours":2.0', b'"hours":0'), (b'"hours":2.0', b'"hours":99'), (b'"hours":2.0', b'"hours":1e999'),
    (b'"schema_version":1', b'"schema_version":1.0'), (b'"schema_version":1', b'"schema_version":true'),
    (b'"schema_version":1', b'"schema_version":2'), (b'Z"', b'+00:00"'), (b'Z"', b'+08:00"'), (b'Z"', b'"'),
    (b'.', b','), (b'T', b' '), (b'"care_tags":[]', b'"care_tags":{}'), (b'"care_tags":[]', b'"care_tags":["x"]'),
    (b'"special_care":false', b'"special_care":true'), (b'"special_care":false', b'"special_care":null'),
    (b'"special_care":true', b'"special_care":1'), (b'"special_care":true', b'"special_care":"true"'),
    (b',"special_care":false', b''), (b',"special_care":true', b''),
    (b'"member_id":"', b'"member_id":"\\u6210'), (b'"member_id":"', b'"member_id":"\\ud800'),
    (b'"member_id":"', b'"member_id":"\xe6\x88\x90'), (b'"correlation_id":"', b'"correlation_id":null,"x":"'),
    (b'"data":{', b'"data":{"extra":123456789012345678901234,'), (b'"data":{', b'"data":{"x":-9223372036854775809,'),
    (b'"event_id":"', b'"event_id":"\xc2\xb2:'), (b'"event_id":"', b'"event_id":":'),
    (b'"event_id":"dispatch:', b'"event_id":"dispatch:\xd9\xa1'), (b'"event_id":"dispatch:', b'"event_id":"dispatch:x'),
    (b'"event_id":"intake:', b'"event_id":"intake:0'), (b'"key":"', b'"key":"other-'), (b'"key":"', b'"key":1,"k":"'),
    (b'"type":"', b'"type":"Unknown'), (b'"type":"', b'"type":["'), (b'"data":{', b'"data":[{'),
    (b'"member_id":', b'"member_id":null,"y":'), (b'"previous_member_id":"', b'"previous_member_id":""'),
    (b'"status":"', b'"status":"x'), (b'"order_id":"', b'"order_id":"o'), (b'{', b'{"type":"X",'),
    (b'"due_at":"2026', b'"due_at":"2026-13'), (b'"occurred_at":"', b'"occurred_at":"+'), (b'}', b'}}'),
    (b'"demand_id":"', b'"demand_id":"\\"'), (b'"member_id":"m-', b'"member_id":"m-\\/'),
    (b'"key":"', b'"type":"OrderOffered","key":"'), (b'"data":{', b'"data":{"order_id":"dup",'),
    (b'"schema_version":1', b'"schema_version":1,"schema_version":1'),
]


def type_last(raw: bytes) -> bytes:
    """The same envelope with `type` written after `data` (valid JSON; not how the encoder writes it)."""
    start = raw.index(b'"type":"')
    end = raw.index(b'"', start + 8) + 1
    return raw[:start] + raw[end + 1:-1] + b"," + raw[start:end] + b"}"


def mutate(raw: bytes, rng: random.Random) -> bytes | None:
    roll = rng.random()
    if roll < 0.02:
        return None  # a tombstone
    if roll < 0.04:
        return raw[: rng.randrange(len(raw))]  # truncated
    if roll < 0.10:
        return type_last(raw)
    candidates = [(a, b) for a, b in MUTATIONS if a in raw]
    if not candidates:
        return raw
    a, b = rng.choice(candidates)
    return raw.replace(a, b, 1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 100_000), share=st.floats(0.05, 0.6))
def test_kernel_hands_every_odd_message_to_the_reference(seed: int, share: float) -> None:
    rng = random.Random(seed)
    records: list[Record] = []
    for topic, raw in county_log(seed % 2, walks=80, party_days=3):
        value = mutate(raw, rng) if raw is not None and rng.random() < share else raw
        records.append((topic, value))
    assert_same(records, batch=rng.choice([1, 13, 400]))


def test_type_after_data_is_read_the_same() -> None:
    records = [(t, type_last(r)) for t, r in county_log(5, walks=60, party_days=3) if r is not None]
    assert orjson.loads(records[0][1])["type"]  # still a valid envelope
    _, native = assert_same(records)
    assert len(native.entries) > 100


def test_each_mutation_alone_agrees() -> None:
    base = list(county_log(5, walks=60, party_days=3))
    for a, b in MUTATIONS:
        records = [(t, r.replace(a, b) if r is not None else r) for t, r in base]
        python, native, bad_python, bad_native = fold_both(records)
        assert bad_native == bad_python, (a, b)
        assert state(native) == state(python), (a, b)


# ---- the replay path: the kernel walks librdkafka messages itself -------------------------------------------
@dataclass
class FakeMessage:
    """What confluent_kafka.Message offers the replay."""

    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None
    _error: object = None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> object:
        return self._error


def test_kernel_replay_stops_at_targets_and_skips_unused_types() -> None:
    records = list(county_log(3, walks=120, party_days=4))
    rng = random.Random(3)
    messages, offsets = [], {}
    for topic, raw in records:
        part = rng.randrange(2)
        offset = offsets.get((topic, part), 0)
        offsets[(topic, part)] = offset + 1
        messages.append(FakeMessage(topic, part, offset, raw))
    stops = {k: max(1, n - 5) for k, n in offsets.items()}  # the last few of each partition are past the target
    expected = Ledger(RULES.get("2026.1"), track_changes=False)
    wanted = [(m.topic(), m.value()) for m in messages if m.offset() < stops[(m.topic(), m.partition())]]
    fold_records(expected, [(t, v) for t, v in wanted if type_of(v or b"") not in SKIPPED_TYPES], native=False)

    ledger = Ledger(RULES.get("2026.1"), track_changes=False)
    native = folder(ledger, skip=SKIPPED_TYPES)
    read, finished, remaining = 0, [], dict(stops)
    for start in range(0, len(messages), 97):
        n, done = native.fold_messages(messages[start:start + 97], remaining, _fail)
        read += n
        finished += done
        for key in done:
            del remaining[key]
    assert read == len(wanted)
    assert sorted(finished) == sorted(stops)
    assert state(ledger) == state(expected)


def _fail(error: object) -> None:
    raise AssertionError(error)


def test_kernel_replay_reports_a_message_error() -> None:
    errors: list[object] = []
    ledger = Ledger(RULES.get("2026.1"), track_changes=False)
    native = folder(ledger)
    read, finished = native.fold_messages([FakeMessage("dispatch.orders.v1", 0, 0, None, "broker down")],
                                          {("dispatch.orders.v1", 0): 5}, errors.append)
    assert (read, finished, errors) == (0, [], ["broker down"])


def test_partitions_are_shared_evenly_and_never_emptily() -> None:
    from sandan_scoring.fastreplay import share_partitions

    sizes = {("a", 0): 100, ("a", 1): 60, ("b", 0): 50, ("b", 1): 10, ("c", 0): 0}
    two = share_partitions(sizes, 2)
    assert sorted(p for s in two for p in s) == sorted(sizes)
    assert sorted(sum(sizes[p] for p in s) for s in two) == [110, 110]
    assert len(share_partitions({("a", 0): 5}, 3)) == 1
    assert share_partitions({}, 2) == [[]]


def test_a_reused_event_id_is_folded_as_the_reference_does() -> None:
    from datetime import UTC, datetime

    from sandan_contracts import encode
    from sandan_contracts import events as c

    def check_in(activity: str, day: int) -> Record:
        event = c.MemberCheckedIn(activity_id=activity, community_id="c1", member_id="m1", unit_id="u1")
        return event.TOPIC, encode(event, event_id="dispatch:7", producer="dispatch", correlation_id="x",
                                   occurred_at=datetime(2026, 4, day, tzinfo=UTC), causation_id=None)

    python, _ = assert_same([check_in("a1", 1), check_in("a2", 2), check_in("a3", 3)])
    assert len(python.entries) == 1 and len(python.checkins) == 3
