//! The fast decoder: the same checks as `sandan_scoring.facts.read_fact`'s fast path (every field of the
//! envelope and of each type the fold reads, against the contract's limits), for the canonical shape the
//! contract's encoder writes. It is deliberately narrower: whatever it does not accept (returns None for)
//! goes to the Python decoder, which is the reference and judges every other shape. Fast, never lenient:
//! nothing the contract refuses is folded here.

use std::borrow::Cow;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::clock::{parse_utc, Utc};

type Str<'a> = Cow<'a, str>;

/// The envelope, read in one pass: when `type` comes before `data` (as the encoder writes it), `data` is
/// decoded straight into that type's fields; otherwise it is kept raw and decoded afterwards.
struct Envelope<'a> {
    event_id: Str<'a>,
    kind: Str<'a>,
    schema_version: u64,
    occurred_at: Str<'a>,
    producer: Str<'a>,
    key: Str<'a>,
    correlation_id: Str<'a>,
    causation_id: Option<Str<'a>>,
    actor: Option<Str<'a>>,
    data: Data<'a>,
}

enum Data<'a> {
    Decoded(Option<(Body<'a>, Str<'a>)>),
    Raw(&'a RawValue),
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

fn once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.replace(value).is_some() {
        return Err(E::duplicate_field(name));
    }
    Ok(())
}

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an event envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut event_id, mut kind, mut occurred_at): (Option<Str>, Option<Str>, Option<Str>) = (None, None, None);
        let (mut key, mut correlation_id, mut producer): (Option<Str>, Option<Str>, Option<Str>) = (None, None, None);
        let (mut causation_id, mut actor): (Option<Option<Str>>, Option<Option<Str>>) = (None, None);
        let (mut schema_version, mut data): (Option<u64>, Option<Data>) = (None, None);
        while let Some(name) = map.next_key::<Str<'de>>()? {
            match name.as_ref() {
                "event_id" => once(&mut event_id, map.next_value()?, "event_id")?,
                "type" => once(&mut kind, map.next_value::<Str<'de>>()?, "type")?,
                "schema_version" => once(&mut schema_version, map.next_value()?, "schema_version")?,
                "occurred_at" => once(&mut occurred_at, map.next_value()?, "occurred_at")?,
                "key" => once(&mut key, map.next_value()?, "key")?,
                "correlation_id" => once(&mut correlation_id, map.next_value()?, "correlation_id")?,
                "producer" => once(&mut producer, map.next_value()?, "producer")?,
                "causation_id" => once(&mut causation_id, map.next_value()?, "causation_id")?,
                "actor" => once(&mut actor, map.next_value()?, "actor")?,
                "data" => {
                    let value = match kind.as_deref() {
                        Some(k) => Data::Decoded(map.next_value_seed(BodySeed(k))?),
                        None => Data::Raw(map.next_value()?),
                    };
                    once(&mut data, value, "data")?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let missing = <A::Error as de::Error>::missing_field;
        Ok(Envelope {
            event_id: event_id.ok_or_else(|| missing("event_id"))?,
            kind: kind.ok_or_else(|| missing("type"))?,
            schema_version: schema_version.ok_or_else(|| missing("schema_version"))?,
            occurred_at: occurred_at.ok_or_else(|| missing("occurred_at"))?,
            producer: producer.ok_or_else(|| missing("producer"))?,
            key: key.ok_or_else(|| missing("key"))?,
            correlation_id: correlation_id.ok_or_else(|| missing("correlation_id"))?,
            causation_id: causation_id.flatten(), // absent and null are both "no cause"
            actor: actor.flatten(),               // absent and null are both "no person"
            data: data.ok_or_else(|| missing("data"))?,
        })
    }
}

/// Decodes `data` as the fields of one type: Some((body, the key field's value)), or None when the values
/// fail a check (a range, a time) or the fold does not use the type.
struct BodySeed<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for BodySeed<'_> {
    type Value = Option<(Body<'de>, Str<'de>)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        body(self.0, d)
    }
}

// Each type's fields, all of them (not only those the rules read): a message the contract refuses must not
// be folded here. Fields the rules do not read are checked and dropped. `#[serde(default)]` marks the fields
// the contract gives a default; any other shape (null, a wrong type, a duplicate key) fails here and goes to
// the Python decoder. Unknown fields are ignored, as the contract's tolerant reader does.
#[derive(Deserialize)]
struct MemberReported<'a> {
    #[serde(borrow)]
    member_id: Str<'a>,
    #[serde(borrow)]
    community_id: Str<'a>,
    #[serde(borrow)]
    unit_id: Str<'a>,
    #[serde(borrow)]
    grid_id: Str<'a>,
    #[serde(borrow, default)]
    teams: Vec<&'a str>,
    #[serde(borrow, default)]
    skills: Vec<&'a str>,
}

#[derive(Deserialize)]
struct OrderOpened<'a> {
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    demand_id: Str<'a>,
    #[serde(borrow)]
    community_id: Str<'a>,
    #[serde(borrow)]
    grid_id: Str<'a>,
    #[serde(borrow)]
    category: Str<'a>,
    #[serde(borrow)]
    urgency: Str<'a>,
    #[serde(borrow, default)]
    care_tags: Vec<&'a str>,
    #[serde(default)]
    special_care: bool,
    #[serde(borrow)]
    due_at: Str<'a>,
}

#[derive(Deserialize)]
struct OrderDispatched<'a> {
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    demand_id: Str<'a>,
    #[serde(borrow)]
    member_id: Str<'a>,
    #[serde(borrow)]
    dispatched_by: Str<'a>,
}

#[derive(Deserialize)]
struct OrderOffered<'a> {
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    demand_id: Str<'a>,
    #[serde(borrow)]
    grid_id: Str<'a>,
    #[serde(borrow, default)]
    teams: Vec<&'a str>,
}

#[derive(Deserialize)]
struct OrderAccepted<'a> {
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    demand_id: Str<'a>,
    #[serde(borrow)]
    member_id: Str<'a>,
    #[serde(borrow)]
    via: Str<'a>,
}

#[derive(Deserialize)]
struct OrderDeclined<'a> {
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    demand_id: Str<'a>,
    #[serde(borrow)]
    member_id: Str<'a>,
    #[serde(borrow)]
    reason: Str<'a>,
}

#[derive(Deserialize)]
struct OrderCancelled<'a> {
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    demand_id: Str<'a>,
    #[serde(borrow)]
    reason: Str<'a>,
}

#[derive(Deserialize)]
struct ServiceCompleted<'a> {
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    demand_id: Str<'a>,
    #[serde(borrow)]
    member_id: Str<'a>,
    hours: f64,
    #[serde(default)]
    #[allow(dead_code)] // checked by its type alone
    has_notes: bool,
}

#[derive(Deserialize)]
struct OrderEscalated<'a> {
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    demand_id: Str<'a>,
    #[serde(borrow)]
    from_level: Str<'a>,
    #[serde(borrow)]
    to_level: Str<'a>,
    #[serde(borrow)]
    reason: Str<'a>,
    #[serde(default)]
    #[allow(dead_code)] // checked by its type alone
    automatic: bool,
    #[serde(borrow, default)]
    joint_meeting_units: Vec<&'a str>,
    #[serde(borrow)]
    due_at: Str<'a>,
}

#[derive(Deserialize)]
struct OrderOverdue<'a> {
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    demand_id: Str<'a>,
    #[serde(borrow)]
    level: Str<'a>,
    #[serde(borrow)]
    due_at: Str<'a>,
    #[serde(borrow)]
    status: Str<'a>,
    #[serde(borrow, default)]
    member_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct OrderReopened<'a> {
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    demand_id: Str<'a>,
    redo_count: i64,
    #[serde(borrow, default)]
    previous_member_id: Option<Str<'a>>,
    #[serde(borrow)]
    due_at: Str<'a>,
}

#[derive(Deserialize)]
struct ServiceRated<'a> {
    #[serde(borrow)]
    demand_id: Str<'a>,
    #[serde(borrow, default)]
    member_id: Option<Str<'a>>,
    stars: i64,
    #[serde(default)]
    #[allow(dead_code)] // checked by its type alone
    has_comment: bool,
}

#[derive(Deserialize)]
struct MemberCheckedIn<'a> {
    #[serde(borrow)]
    activity_id: Str<'a>,
    #[serde(borrow)]
    community_id: Str<'a>,
    #[serde(borrow)]
    member_id: Str<'a>,
    #[serde(borrow)]
    unit_id: Str<'a>,
}

// ---- the contract's value types (sandan_contracts/events/base.py), as byte scans ----------------------------
/// `Id`: 1-64 characters, `^[A-Za-z0-9][A-Za-z0-9_.:-]*$` (ASCII only, so bytes are characters).
fn is_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b[1..].iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-'))
}

fn is_optional_id(s: &Option<Str>) -> bool {
    s.as_deref().is_none_or(is_id)
}

/// `Code`: 1-40 characters, `^[a-z][a-z0-9_]*$`.
fn is_code(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 40
        && b[0].is_ascii_lowercase()
        && b[1..].iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

fn codes(list: &[&str], most: usize) -> bool {
    list.len() <= most && list.iter().all(|c| is_code(c))
}

/// A free string of `low..=high` characters (the contract counts characters, not bytes).
fn chars_within(s: &str, low: usize, high: usize) -> bool {
    let bytes = s.len();
    if bytes < low {
        return false; // fewer bytes than characters needed
    }
    bytes <= high || (low..=high).contains(&s.chars().count())
}

/// The contract's `Subject`: 1 to 200 printable ASCII characters, no spaces (`^[!-~]+$`).
fn is_subject(s: &str) -> bool {
    (1..=200).contains(&s.len()) && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

const URGENCY: [&str; 3] = ["urgent", "normal", "routine"];
const CARE_TAGS: [&str; 4] = ["elderly_alone", "student_hardship", "left_behind_child", "disabled"];
const LEVELS: [&str; 3] = ["community", "town", "county"];

fn one_of(s: &str, allowed: &[&str]) -> bool {
    allowed.contains(&s)
}

/// What a fact says, per type: only the fields the rules read.
pub enum Body<'a> {
    MemberReported { member: Str<'a>, community: Str<'a>, unit: Str<'a> },
    OrderOpened { order: Str<'a>, demand: Str<'a>, community: Str<'a>, category: Str<'a>, care: bool, due: Utc },
    OrderDispatched { order: Str<'a>, member: Str<'a> },
    OrderOffered { order: Str<'a> },
    OrderAccepted { order: Str<'a>, member: Str<'a> },
    OrderDeclined { order: Str<'a>, member: Str<'a> },
    ServiceCompleted { order: Str<'a>, member: Str<'a>, hours: f64 },
    OrderEscalated { order: Str<'a>, due: Utc },
    OrderOverdue { order: Str<'a>, status: Str<'a>, member: Option<Str<'a>> },
    OrderCancelled { order: Str<'a> },
    OrderReopened { order: Str<'a>, due: Utc, previous: Option<Str<'a>> },
    ServiceRated { demand: Str<'a>, member: Option<Str<'a>>, stars: i64 },
    MemberCheckedIn { activity: Str<'a>, member: Str<'a>, community: Str<'a>, unit: Str<'a> },
}

/// How the fold drops a re-published duplicate (mirrors `Ledger._duplicate`).
pub enum Sequence {
    /// `<producer>:<n>`: increasing per (topic, key)
    Numbered(u64),
    /// any other id: remembered as seen
    Other,
}

/// A decoded fact: the envelope's part (`head`) and what it says (`body`).
pub struct Fact<'a> {
    pub head: Head<'a>,
    pub body: Body<'a>,
}

pub struct Head<'a> {
    pub event_id: Str<'a>,
    pub key: Str<'a>,
    pub correlation_id: Str<'a>,
    pub occurred_at: Utc,
    pub sequence: Sequence,
}

/// Bytes the Python decoder must judge: `\u` escapes (orjson and serde_json differ on lone surrogates)
/// and digit runs too long for a 64-bit integer (orjson refuses them; serde_json reads them as floats).
fn needs_reference_decoder(raw: &[u8]) -> bool {
    if raw.contains(&b'\\') && raw.windows(2).any(|w| w == b"\\u") {
        return true;
    }
    // A run of 19+ digits covers two neighbouring multiples of 9: probe those, measure only there.
    let mut previous_digit = false;
    for p in (0..raw.len()).step_by(9) {
        let digit = raw[p].is_ascii_digit();
        if digit && previous_digit {
            let start = raw[..p].iter().rposition(|c| !c.is_ascii_digit()).map_or(0, |i| i + 1);
            let end = raw[p..].iter().position(|c| !c.is_ascii_digit()).map_or(raw.len(), |i| p + i);
            if end - start >= 19 {
                return true;
            }
        }
        previous_digit = digit;
    }
    false
}

fn sequence_of(event_id: &str) -> Option<Sequence> {
    match event_id.rsplit_once(':') {
        Some((producer, seq)) if !producer.is_empty() && !seq.is_empty() => {
            if !seq.is_ascii() {
                None // str.isdigit() has Unicode digits int() may refuse: Python decides
            } else if seq.bytes().all(|c| c.is_ascii_digit()) {
                if seq.len() > 18 {
                    None
                } else {
                    Some(Sequence::Numbered(seq.parse().ok()?))
                }
            } else {
                Some(Sequence::Other)
            }
        }
        Some((_, seq)) if !seq.is_ascii() => None,
        _ => Some(Sequence::Other),
    }
}

fn body<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Option<(Body<'de>, Str<'de>)>, D::Error> {
    let decoded = match kind {
        "MemberReported" => {
            let x = MemberReported::deserialize(d)?;
            let valid = is_id(&x.member_id)
                && is_id(&x.community_id)
                && is_id(&x.unit_id)
                && is_id(&x.grid_id)
                && codes(&x.teams, 10)
                && codes(&x.skills, 20);
            let k = x.member_id.clone();
            valid.then_some((
                Body::MemberReported { member: x.member_id, community: x.community_id, unit: x.unit_id },
                k,
            ))
        }
        "OrderOpened" => {
            let x = OrderOpened::deserialize(d)?;
            let valid = is_id(&x.order_id)
                && is_id(&x.demand_id)
                && is_id(&x.community_id)
                && is_id(&x.grid_id)
                && is_code(&x.category)
                && one_of(&x.urgency, &URGENCY)
                && x.care_tags.len() <= 4
                && x.care_tags.iter().all(|t| one_of(t, &CARE_TAGS));
            parse_utc(&x.due_at).filter(|_| valid).map(|due| {
                let k = x.order_id.clone();
                (
                    Body::OrderOpened {
                        order: x.order_id,
                        demand: x.demand_id,
                        community: x.community_id,
                        category: x.category,
                        // the flag, or (facts from before it) any tag: as fold.py
                        care: x.special_care || !x.care_tags.is_empty(),
                        due,
                    },
                    k,
                )
            })
        }
        "OrderDispatched" => {
            let x = OrderDispatched::deserialize(d)?;
            let valid = is_id(&x.order_id)
                && is_id(&x.demand_id)
                && is_id(&x.member_id)
                && one_of(&x.dispatched_by, &["branch", "grid_leader"]);
            let k = x.order_id.clone();
            valid.then_some((Body::OrderDispatched { order: x.order_id, member: x.member_id }, k))
        }
        "OrderOffered" => {
            let x = OrderOffered::deserialize(d)?;
            let valid = is_id(&x.order_id) && is_id(&x.demand_id) && is_id(&x.grid_id) && codes(&x.teams, 10);
            let k = x.order_id.clone();
            valid.then_some((Body::OrderOffered { order: x.order_id }, k))
        }
        "OrderAccepted" => {
            let x = OrderAccepted::deserialize(d)?;
            let valid = is_id(&x.order_id)
                && is_id(&x.demand_id)
                && is_id(&x.member_id)
                && one_of(&x.via, &["dispatch", "claim"]);
            let k = x.order_id.clone();
            valid.then_some((Body::OrderAccepted { order: x.order_id, member: x.member_id }, k))
        }
        "OrderDeclined" => {
            let x = OrderDeclined::deserialize(d)?;
            let valid = is_id(&x.order_id) && is_id(&x.demand_id) && is_id(&x.member_id) && is_code(&x.reason);
            let k = x.order_id.clone();
            valid.then_some((Body::OrderDeclined { order: x.order_id, member: x.member_id }, k))
        }
        "ServiceCompleted" => {
            let x = ServiceCompleted::deserialize(d)?;
            let valid =
                is_id(&x.order_id) && is_id(&x.demand_id) && is_id(&x.member_id) && x.hours > 0.0 && x.hours <= 72.0;
            let k = x.order_id.clone();
            valid.then_some((Body::ServiceCompleted { order: x.order_id, member: x.member_id, hours: x.hours }, k))
        }
        "OrderEscalated" => {
            let x = OrderEscalated::deserialize(d)?;
            let valid = is_id(&x.order_id)
                && is_id(&x.demand_id)
                && one_of(&x.from_level, &LEVELS)
                && one_of(&x.to_level, &LEVELS)
                && is_code(&x.reason)
                && x.joint_meeting_units.len() <= 50
                && x.joint_meeting_units.iter().all(|u| is_id(u));
            let k = x.order_id.clone();
            parse_utc(&x.due_at).filter(|_| valid).map(|due| (Body::OrderEscalated { order: x.order_id, due }, k))
        }
        "OrderOverdue" => {
            let x = OrderOverdue::deserialize(d)?;
            let valid = is_id(&x.order_id)
                && is_id(&x.demand_id)
                && one_of(&x.level, &LEVELS)
                && parse_utc(&x.due_at).is_some()
                && is_code(&x.status)
                && is_optional_id(&x.member_id);
            let k = x.order_id.clone();
            valid.then_some((Body::OrderOverdue { order: x.order_id, status: x.status, member: x.member_id }, k))
        }
        "OrderCancelled" => {
            let x = OrderCancelled::deserialize(d)?;
            let valid = is_id(&x.order_id) && is_id(&x.demand_id) && is_code(&x.reason);
            let k = x.order_id.clone();
            valid.then_some((Body::OrderCancelled { order: x.order_id }, k))
        }
        "OrderReopened" => {
            let x = OrderReopened::deserialize(d)?;
            let valid = is_id(&x.order_id)
                && is_id(&x.demand_id)
                && (1..=10).contains(&x.redo_count)
                && is_optional_id(&x.previous_member_id);
            let k = x.order_id.clone();
            parse_utc(&x.due_at)
                .filter(|_| valid)
                .map(|due| (Body::OrderReopened { order: x.order_id, due, previous: x.previous_member_id }, k))
        }
        "ServiceRated" => {
            let x = ServiceRated::deserialize(d)?;
            let valid = is_id(&x.demand_id) && is_optional_id(&x.member_id) && (1..=5).contains(&x.stars);
            let k = x.demand_id.clone();
            valid.then_some((Body::ServiceRated { demand: x.demand_id, member: x.member_id, stars: x.stars }, k))
        }
        "MemberCheckedIn" => {
            let x = MemberCheckedIn::deserialize(d)?;
            let valid = is_id(&x.activity_id) && is_id(&x.community_id) && is_id(&x.member_id) && is_id(&x.unit_id);
            let k = x.activity_id.clone();
            valid.then_some((
                Body::MemberCheckedIn {
                    activity: x.activity_id,
                    member: x.member_id,
                    community: x.community_id,
                    unit: x.unit_id,
                },
                k,
            ))
        }
        _ => {
            IgnoredAny::deserialize(d)?; // a type the fold does not use, or one the contract does not know
            None
        }
    };
    Ok(decoded)
}

/// A fact the kernel can fold, or None when the Python decoder must judge the message.
pub fn decode(raw: &[u8]) -> Option<Fact<'_>> {
    if needs_reference_decoder(raw) {
        return None;
    }
    let env: Envelope = serde_json::from_slice(raw).ok()?;
    // The envelope's limits (sandan_contracts/envelope.py); `key` equals the key field, an `Id` checked below.
    let head_valid = env.schema_version == 1
        && chars_within(&env.event_id, 1, 200)
        && chars_within(&env.producer, 1, 80)
        && chars_within(&env.correlation_id, 1, 200)
        && env.causation_id.as_deref().is_none_or(|c| chars_within(c, 0, 200))
        && env.actor.as_deref().is_none_or(is_subject);
    if !head_valid {
        return None;
    }
    let occurred_at = parse_utc(&env.occurred_at)?;
    let sequence = sequence_of(&env.event_id)?;
    let (body, key_field) = match env.data {
        Data::Decoded(decoded) => decoded?,
        Data::Raw(raw) => body(&env.kind, &mut serde_json::Deserializer::from_str(raw.get())).ok()??,
    };
    if key_field != env.key {
        return None;
    }
    let head = Head { event_id: env.event_id, key: env.key, correlation_id: env.correlation_id, occurred_at, sequence };
    Some(Fact { head, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATED: &str = r#"{"event_id":"intake:48","type":"ServiceRated","schema_version":1,"occurred_at":"2026-01-16T05:16:42.725961Z","producer":"intake","key":"d-1","correlation_id":"intake:46","causation_id":null,"data":{"demand_id":"d-1","member_id":"m-02019","stars":4,"has_comment":false}}"#;

    #[test]
    fn limits_count_characters_not_bytes() {
        let at_limit = RATED.replace("intake:48", &"成".repeat(200));
        assert!(decode(at_limit.as_bytes()).is_some());
        let unknown_fields = RATED.replace("\"stars\":4", "\"stars\":4,\"x\":[\"anything\"]");
        assert!(decode(unknown_fields.as_bytes()).is_some());
    }

    #[test]
    fn canonical_message_decodes() {
        let fact = decode(RATED.as_bytes()).unwrap();
        assert!(matches!(fact.head.sequence, Sequence::Numbered(48)));
        assert!(matches!(fact.body, Body::ServiceRated { stars: 4, .. }));
    }

    #[test]
    fn anything_unusual_goes_to_the_reference_decoder() {
        for (from, to) in [
            ("\"stars\":4", "\"stars\":4.0"),
            ("\"stars\":4", "\"stars\":true"),
            ("\"stars\":4", "\"stars\":6"),
            ("\"key\":\"d-1\"", "\"key\":\"d-2\""),
            ("\"schema_version\":1", "\"schema_version\":2"),
            ("m-02019", "m-\\u0041"),
            ("intake:48", "intake:4\u{b2}"),
            ("725961Z", "725961+08:00"),
            ("\"correlation_id\":\"intake:46\"", "\"correlation_id\":null"),
            ("\"stars\":4", "\"stars\":4,\"x\":12345678901234567890"),
            ("\"stars\":4", "\"stars\":4,\"x\":-1234567890123456789"),
            // the contract's limits: lengths, patterns, required fields
            ("\"correlation_id\":\"intake:46\"", &format!("\"correlation_id\":\"{}\"", "c".repeat(900_000))),
            ("\"correlation_id\":\"intake:46\"", "\"correlation_id\":\"\""),
            ("\"causation_id\":null", &format!("\"causation_id\":\"{}\"", "成".repeat(201))),
            ("\"producer\":\"intake\",", ""),
            ("\"producer\":\"intake\"", &format!("\"producer\":\"{}\"", "p".repeat(81))),
            ("intake:48", &"e".repeat(201)),
            ("m-02019", "m 02019"),
            ("m-02019", "-m02019"),
            ("m-02019", &"m".repeat(65)),
            ("m-02019", ""),
            ("\"has_comment\":false", "\"has_comment\":null"),
            ("\"has_comment\":false", "\"has_comment\":1"),
        ] {
            let mutated = RATED.replace(from, to);
            assert!(decode(mutated.as_bytes()).is_none(), "{mutated}");
        }
    }
}
