//! The fast decoder: the same checks as `sandan_scoring.facts.read_fact`'s fast path, for the canonical
//! shape the contract's encoder writes. It is deliberately narrower: whatever it does not accept (returns
//! None for) goes to the Python decoder, which is the reference and judges every other shape.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::clock::{parse_utc, Utc};

type Str<'a> = Cow<'a, str>;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    event_id: Str<'a>,
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    schema_version: u64,
    #[serde(borrow)]
    occurred_at: Str<'a>,
    #[serde(borrow)]
    key: Str<'a>,
    #[serde(borrow)]
    correlation_id: Str<'a>,
    #[serde(borrow)]
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct MemberReported<'a> {
    #[serde(borrow)]
    member_id: Str<'a>,
    #[serde(borrow)]
    community_id: Str<'a>,
    #[serde(borrow)]
    unit_id: Str<'a>,
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
    category: Str<'a>,
    care_tags: Vec<IgnoredAny>,
    #[serde(borrow)]
    due_at: Str<'a>,
}

#[derive(Deserialize)]
struct OrderMember<'a> {
    // OrderDispatched, OrderAccepted, OrderDeclined
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    member_id: Str<'a>,
}

#[derive(Deserialize)]
struct OrderOnly<'a> {
    // OrderOffered, OrderCancelled
    #[serde(borrow)]
    order_id: Str<'a>,
}

#[derive(Deserialize)]
struct ServiceCompleted<'a> {
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    member_id: Str<'a>,
    hours: f64,
}

#[derive(Deserialize)]
struct OrderDue<'a> {
    // OrderEscalated
    #[serde(borrow)]
    order_id: Str<'a>,
    #[serde(borrow)]
    due_at: Str<'a>,
}

#[derive(Deserialize)]
struct OrderOverdue<'a> {
    #[serde(borrow)]
    order_id: Str<'a>,
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
    due_at: Str<'a>,
    #[serde(borrow, default)]
    previous_member_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct ServiceRated<'a> {
    #[serde(borrow)]
    demand_id: Str<'a>,
    stars: i64,
    #[serde(borrow, default)]
    member_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct MemberCheckedIn<'a> {
    #[serde(borrow)]
    activity_id: Str<'a>,
    #[serde(borrow)]
    member_id: Str<'a>,
    #[serde(borrow)]
    unit_id: Str<'a>,
    #[serde(borrow)]
    community_id: Str<'a>,
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

pub struct Fact<'a> {
    pub event_id: Str<'a>,
    pub key: Str<'a>,
    pub correlation_id: Str<'a>,
    pub occurred_at: Utc,
    pub sequence: Sequence,
    pub body: Body<'a>,
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

fn parse<'a, T: Deserialize<'a>>(data: &'a RawValue) -> Option<T> {
    serde_json::from_str(data.get()).ok()
}

/// A fact the kernel can fold, or None when the Python decoder must judge the message.
pub fn decode(raw: &[u8]) -> Option<Fact<'_>> {
    if needs_reference_decoder(raw) {
        return None;
    }
    let env: Envelope = serde_json::from_slice(raw).ok()?;
    if env.schema_version != 1 {
        return None;
    }
    let occurred_at = parse_utc(&env.occurred_at)?;
    let sequence = sequence_of(&env.event_id)?;
    let data = env.data;
    let (body, key_field): (Body, Str) = match env.kind.as_ref() {
        "MemberReported" => {
            let d: MemberReported = parse(data)?;
            let k = d.member_id.clone();
            (Body::MemberReported { member: d.member_id, community: d.community_id, unit: d.unit_id }, k)
        }
        "OrderOpened" => {
            let d: OrderOpened = parse(data)?;
            let due = parse_utc(&d.due_at)?;
            let k = d.order_id.clone();
            (Body::OrderOpened { order: d.order_id, demand: d.demand_id, community: d.community_id,
                                 category: d.category, care: !d.care_tags.is_empty(), due }, k)
        }
        "OrderDispatched" => {
            let d: OrderMember = parse(data)?;
            let k = d.order_id.clone();
            (Body::OrderDispatched { order: d.order_id, member: d.member_id }, k)
        }
        "OrderOffered" => {
            let d: OrderOnly = parse(data)?;
            let k = d.order_id.clone();
            (Body::OrderOffered { order: d.order_id }, k)
        }
        "OrderAccepted" => {
            let d: OrderMember = parse(data)?;
            let k = d.order_id.clone();
            (Body::OrderAccepted { order: d.order_id, member: d.member_id }, k)
        }
        "OrderDeclined" => {
            let d: OrderMember = parse(data)?;
            let k = d.order_id.clone();
            (Body::OrderDeclined { order: d.order_id, member: d.member_id }, k)
        }
        "ServiceCompleted" => {
            let d: ServiceCompleted = parse(data)?;
            if !(d.hours > 0.0 && d.hours <= 72.0) {
                return None;
            }
            let k = d.order_id.clone();
            (Body::ServiceCompleted { order: d.order_id, member: d.member_id, hours: d.hours }, k)
        }
        "OrderEscalated" => {
            let d: OrderDue = parse(data)?;
            let due = parse_utc(&d.due_at)?;
            let k = d.order_id.clone();
            (Body::OrderEscalated { order: d.order_id, due }, k)
        }
        "OrderOverdue" => {
            let d: OrderOverdue = parse(data)?;
            let k = d.order_id.clone();
            (Body::OrderOverdue { order: d.order_id, status: d.status, member: d.member_id }, k)
        }
        "OrderCancelled" => {
            let d: OrderOnly = parse(data)?;
            let k = d.order_id.clone();
            (Body::OrderCancelled { order: d.order_id }, k)
        }
        "OrderReopened" => {
            let d: OrderReopened = parse(data)?;
            let due = parse_utc(&d.due_at)?;
            let k = d.order_id.clone();
            (Body::OrderReopened { order: d.order_id, due, previous: d.previous_member_id }, k)
        }
        "ServiceRated" => {
            let d: ServiceRated = parse(data)?;
            if !(1..=5).contains(&d.stars) {
                return None;
            }
            let k = d.demand_id.clone();
            (Body::ServiceRated { demand: d.demand_id, member: d.member_id, stars: d.stars }, k)
        }
        "MemberCheckedIn" => {
            let d: MemberCheckedIn = parse(data)?;
            let k = d.activity_id.clone();
            (Body::MemberCheckedIn { activity: d.activity_id, member: d.member_id, community: d.community_id,
                                     unit: d.unit_id }, k)
        }
        _ => return None, // a type the fold does not use, or one the contract does not know
    };
    if key_field != env.key {
        return None;
    }
    Some(Fact { event_id: env.event_id, key: env.key, correlation_id: env.correlation_id, occurred_at,
                sequence, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATED: &str = r#"{"event_id":"intake:48","type":"ServiceRated","schema_version":1,"occurred_at":"2026-01-16T05:16:42.725961Z","producer":"intake","key":"d-1","correlation_id":"intake:46","causation_id":null,"data":{"demand_id":"d-1","member_id":"m-02019","stars":4,"has_comment":false}}"#;

    #[test]
    fn canonical_message_decodes() {
        let fact = decode(RATED.as_bytes()).unwrap();
        assert!(matches!(fact.sequence, Sequence::Numbered(48)));
        assert!(matches!(fact.body, Body::ServiceRated { stars: 4, .. }));
    }

    #[test]
    fn anything_unusual_goes_to_the_reference_decoder() {
        for (from, to) in [("\"stars\":4", "\"stars\":4.0"), ("\"stars\":4", "\"stars\":true"),
                           ("\"stars\":4", "\"stars\":6"), ("\"key\":\"d-1\"", "\"key\":\"d-2\""),
                           ("\"schema_version\":1", "\"schema_version\":2"), ("m-02019", "m-\\u0041"),
                           ("intake:48", "intake:4\u{b2}"), ("725961Z", "725961+08:00"),
                           ("\"correlation_id\":\"intake:46\"", "\"correlation_id\":null"),
                           ("\"stars\":4", "\"stars\":4,\"x\":12345678901234567890"),
                           ("\"stars\":4", "\"stars\":4,\"x\":-1234567890123456789")] {
            let mutated = RATED.replace(from, to);
            assert!(decode(mutated.as_bytes()).is_none(), "{mutated}");
        }
    }
}
