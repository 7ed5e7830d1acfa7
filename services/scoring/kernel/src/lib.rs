//! sandan scoring's fold kernel: the replay hot path in Rust.
//!
//! `Folder(ledger, ...)` applies records to a `sandan_scoring.fold.Ledger` exactly as its Python rules
//! would: the same dictionaries, the same `Entry`/`OrderFacts`/`Rating`/`CheckIn` objects, the same
//! order. The Python `Ledger` stays the reference: a record this kernel does not fully understand goes to
//! the `fallback(index)` callable, which decodes and applies it in Python, and the tests fold the same logs
//! both ways and compare every container.

mod clock;
mod decode;

use std::collections::{HashMap, HashSet};

use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest};
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDateTime, PyDict, PyList, PySet, PyString, PyTuple, PyTzInfo};

use crate::clock::{quarter_of, Utc};
use crate::decode::{decode, Body, Fact, Head, Sequence};

/// The rule set's amounts, read once from `ledger.rules`.
struct Rules {
    version: String,
    completed: HashMap<String, i64>,
    default_completed: i64,
    per_hour: f64,
    max_hours: f64,
    five_star_bonus: i64,
    special_care_bonus: i64,
    activity_check_in: i64,
    abandoned_order: i64,
    overdue_while_held: i64,
    redo_required: i64,
}

impl Rules {
    fn read(rules: &Bound<'_, PyAny>) -> PyResult<Self> {
        let completed: HashMap<String, i64> = rules.getattr("completed_by_category")?.extract()?;
        let default_completed = *completed
            .get("default")
            .ok_or_else(|| PyValueError::new_err("completed_by_category needs a 'default'"))?;
        Ok(Rules {
            version: rules.getattr("version")?.extract()?,
            completed,
            default_completed,
            per_hour: rules.getattr("per_hour")?.extract()?,
            max_hours: rules.getattr("max_hours_per_service")?.extract()?,
            five_star_bonus: rules.getattr("five_star_bonus")?.extract()?,
            special_care_bonus: rules.getattr("special_care_bonus")?.extract()?,
            activity_check_in: rules.getattr("activity_check_in")?.extract()?,
            abandoned_order: rules.getattr("abandoned_order")?.extract()?,
            overdue_while_held: rules.getattr("overdue_while_held")?.extract()?,
            redo_required: rules.getattr("redo_required")?.extract()?,
        })
    }

    /// `RuleSet.hours_points`: Python's round() rounds half to even.
    fn hours_points(&self, hours: f64) -> i64 {
        (hours.min(self.max_hours) * self.per_hour).round_ties_even() as i64
    }
}

/// The ledger's containers, fetched at the start of each call (Python code may replace `dirty_stars`).
struct Books<'py> {
    entries: Bound<'py, PyDict>,
    by_member: Bound<'py, PyDict>,
    members: Bound<'py, PyDict>,
    orders: Bound<'py, PyDict>,
    ratings: Bound<'py, PyDict>,
    checkins: Bound<'py, PyDict>,
    first_checkin: Bound<'py, PyDict>,
    last_seq: Bound<'py, PyDict>,
    seen_other: Bound<'py, PySet>,
    ratings_by_member: Bound<'py, PyDict>,
    dirty_entries: Bound<'py, PySet>,
    dirty_stars: Bound<'py, PySet>,
    track_changes: bool,
}

/// The fact being applied (its envelope part): its Python strings and times are made once, when first needed.
struct Current<'a, 'py> {
    head: Head<'a>,
    topic: Bound<'py, PyString>,
    quarter: Bound<'py, PyString>,
    event_id: Option<Bound<'py, PyString>>,
    correlation_id: Option<Bound<'py, PyString>>,
    occurred_at: Option<Bound<'py, PyDateTime>>,
}

#[pyclass(module = "sandan_kernel")]
struct Folder {
    ledger: Py<PyAny>,
    fallback: Py<PyAny>,
    entry: Py<PyAny>,
    order: Py<PyAny>,
    rating: Py<PyAny>,
    checkin: Py<PyAny>,
    rules: Rules,
    skip: HashSet<Vec<u8>>,
    quarters: HashMap<(i32, u8), Py<PyString>>,
    rule_names: HashMap<&'static str, Py<PyString>>,
    // Members recur on every fact: one shared str each (fewer allocations, identity-fast dict lookups).
    member_ids: HashMap<String, Py<PyString>>,
}

fn utc_datetime<'py>(py: Python<'py>, t: &Utc) -> PyResult<Bound<'py, PyDateTime>> {
    let tz = PyTzInfo::utc(py)?;
    PyDateTime::new(py, t.year, t.month, t.day, t.hour, t.minute, t.second, t.micro, Some(&tz))
}

fn entry_id(version: &str, rule: &str, member: &str, event_id: &str) -> String {
    let mut h = Blake2b::<U16>::new();
    for (i, part) in [version, rule, member, event_id].iter().enumerate() {
        if i > 0 {
            h.update(b"|");
        }
        h.update(part.as_bytes());
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(34);
    id.push_str("e-");
    for byte in h.finalize().iter() {
        id.push(HEX[(byte >> 4) as usize] as char);
        id.push(HEX[(byte & 15) as usize] as char);
    }
    id
}

impl Folder {
    fn books<'py>(&self, py: Python<'py>) -> PyResult<Books<'py>> {
        let l = self.ledger.bind(py);
        let dict = |name: &Bound<'py, PyString>| -> PyResult<Bound<'py, PyDict>> {
            Ok(l.getattr(name)?.cast_into::<PyDict>()?)
        };
        let set =
            |name: &Bound<'py, PyString>| -> PyResult<Bound<'py, PySet>> { Ok(l.getattr(name)?.cast_into::<PySet>()?) };
        Ok(Books {
            entries: dict(intern!(py, "entries"))?,
            by_member: dict(intern!(py, "by_member"))?,
            members: dict(intern!(py, "members"))?,
            orders: dict(intern!(py, "orders"))?,
            ratings: dict(intern!(py, "ratings"))?,
            checkins: dict(intern!(py, "checkins"))?,
            first_checkin: dict(intern!(py, "first_checkin"))?,
            last_seq: dict(intern!(py, "last_seq"))?,
            seen_other: set(intern!(py, "seen_other"))?,
            ratings_by_member: dict(intern!(py, "ratings_by_member"))?,
            dirty_entries: set(intern!(py, "dirty_entries"))?,
            dirty_stars: set(intern!(py, "dirty_stars"))?,
            track_changes: l.getattr(intern!(py, "track_changes"))?.is_truthy()?,
        })
    }

    fn quarter<'py>(&mut self, py: Python<'py>, t: &Utc) -> Bound<'py, PyString> {
        let q = quarter_of(t);
        self.quarters
            .entry(q)
            .or_insert_with(|| PyString::new(py, &format!("{}Q{}", q.0, q.1)).unbind())
            .bind(py)
            .clone()
    }

    fn member<'py>(&mut self, py: Python<'py>, id: &str) -> Bound<'py, PyString> {
        if let Some(s) = self.member_ids.get(id) {
            return s.bind(py).clone();
        }
        let s = PyString::new(py, id);
        self.member_ids.insert(id.to_owned(), s.clone().unbind());
        s
    }

    fn rule_name<'py>(&mut self, py: Python<'py>, rule: &'static str) -> Bound<'py, PyString> {
        self.rule_names.entry(rule).or_insert_with(|| PyString::new(py, rule).unbind()).bind(py).clone()
    }

    /// `Ledger._duplicate`; true when the fact was seen before.
    fn duplicate<'py>(&self, py: Python<'py>, b: &Books<'py>, cur: &mut Current<'_, 'py>) -> PyResult<bool> {
        match cur.head.sequence {
            Sequence::Numbered(n) => {
                let k = PyTuple::new(py, [cur.topic.as_any().clone(), PyString::new(py, &cur.head.key).into_any()])?;
                let last: u64 = match b.last_seq.get_item(&k)? {
                    Some(v) => v.extract()?,
                    None => 0,
                };
                if last >= n {
                    return Ok(true);
                }
                b.last_seq.set_item(k, n)?;
                Ok(false)
            }
            Sequence::Other => {
                let id = event_id(py, cur);
                if b.seen_other.contains(&id)? {
                    return Ok(true);
                }
                b.seen_other.add(id)?;
                Ok(false)
            }
        }
    }

    /// `Ledger._award`
    fn award<'py>(
        &mut self,
        py: Python<'py>,
        b: &Books<'py>,
        cur: &mut Current<'_, 'py>,
        member: &str,
        points: i64,
        rule: &'static str,
    ) -> PyResult<()> {
        if points == 0 {
            return Ok(());
        }
        let id = PyString::new(py, &entry_id(&self.rules.version, rule, member, &cur.head.event_id));
        if b.entries.contains(&id)? {
            return Ok(()); // another fact under a reused event id: the id keeps naming the first (as fold.py)
        }
        let member = self.member(py, member);
        let sources = PyTuple::new(py, [event_id(py, cur)])?;
        let at = occurred_at(py, cur)?;
        let rule = self.rule_name(py, rule);
        let correlation = correlation_id(py, cur);
        let entry = self.entry.bind(py).call1((&id, &member, points, rule, &cur.quarter, sources, at, correlation))?;
        b.entries.set_item(&id, entry)?;
        append_to(py, &b.by_member, &member, &id)?;
        if b.track_changes {
            b.dirty_entries.add(&id)?;
            b.dirty_stars.add(PyTuple::new(py, [member.as_any(), cur.quarter.as_any()])?)?;
        }
        Ok(())
    }

    fn apply<'py>(
        &mut self,
        py: Python<'py>,
        b: &Books<'py>,
        cur: &mut Current<'_, 'py>,
        body: &Body<'_>,
    ) -> PyResult<()> {
        let r = &self.rules;
        let (abandoned, overdue_penalty, redo, five_star, check_in) =
            (r.abandoned_order, r.overdue_while_held, r.redo_required, r.five_star_bonus, r.activity_check_in);
        match body {
            Body::MemberReported { member, community, unit } => {
                b.members.set_item(member.as_ref(), (community.as_ref(), unit.as_ref()))?;
            }
            Body::OrderOpened { order, demand, community, category, care, due } => {
                let facts = self.order.bind(py).call1((
                    order.as_ref(),
                    demand.as_ref(),
                    community.as_ref(),
                    category.as_ref(),
                    *care,
                    utc_datetime(py, due)?,
                    &cur.quarter,
                ))?;
                b.orders.set_item(order.as_ref(), facts)?;
            }
            Body::OrderDispatched { order, member } => {
                if let Some(o) = b.orders.get_item(order.as_ref())? {
                    o.setattr(intern!(py, "status"), intern!(py, "dispatched"))?;
                    o.setattr(intern!(py, "holder"), member.as_ref())?;
                }
            }
            Body::OrderOffered { order } => {
                if let Some(o) = b.orders.get_item(order.as_ref())? {
                    o.setattr(intern!(py, "status"), intern!(py, "offered"))?;
                    o.setattr(intern!(py, "holder"), py.None())?;
                }
            }
            Body::OrderAccepted { order, member } => {
                if let Some(o) = b.orders.get_item(order.as_ref())? {
                    let holder = self.member(py, member);
                    o.setattr(intern!(py, "status"), intern!(py, "accepted"))?;
                    o.setattr(intern!(py, "holder"), &holder)?;
                    let in_time = occurred_at(py, cur)?.le(o.getattr(intern!(py, "due_at"))?)?;
                    let acceptance = PyTuple::new(
                        py,
                        [
                            cur.quarter.as_any().clone(),
                            holder.into_any(),
                            in_time.into_pyobject(py)?.to_owned().into_any(),
                        ],
                    )?;
                    o.getattr(intern!(py, "acceptances"))?.cast_into::<PyList>()?.append(acceptance)?;
                }
            }
            Body::OrderDeclined { order, member } => {
                if let Some(o) = b.orders.get_item(order.as_ref())? {
                    let accepted = o.getattr(intern!(py, "status"))?.eq(intern!(py, "accepted"))?;
                    if accepted && o.getattr(intern!(py, "holder"))?.eq(member.as_ref())? {
                        self.award(py, b, cur, member, -abandoned, "abandoned_order")?;
                    }
                    o.setattr(intern!(py, "status"), intern!(py, "offered"))?;
                    o.setattr(intern!(py, "holder"), py.None())?;
                }
            }
            Body::ServiceCompleted { order, member, hours } => {
                if let Some(o) = b.orders.get_item(order.as_ref())? {
                    o.setattr(intern!(py, "status"), intern!(py, "completed"))?;
                    o.setattr(intern!(py, "completed_quarter"), &cur.quarter)?;
                    let completion = PyTuple::new(
                        py,
                        [
                            cur.quarter.as_any().clone(),
                            self.member(py, member).into_any(),
                            hours.into_pyobject(py)?.into_any(),
                        ],
                    )?;
                    o.getattr(intern!(py, "completions"))?.cast_into::<PyList>()?.append(completion)?;
                    let category: Bound<'_, PyString> = o.getattr(intern!(py, "category"))?.cast_into()?;
                    let points = *self.rules.completed.get(category.to_str()?).unwrap_or(&self.rules.default_completed);
                    let hour_points = self.rules.hours_points(*hours);
                    let care_bonus = self.rules.special_care_bonus;
                    self.award(py, b, cur, member, points, "service_completed")?;
                    self.award(py, b, cur, member, hour_points, "service_hours")?;
                    if o.getattr(intern!(py, "care"))?.is_truthy()? {
                        self.award(py, b, cur, member, care_bonus, "special_care_bonus")?;
                    }
                }
            }
            Body::OrderEscalated { order, due } => {
                if let Some(o) = b.orders.get_item(order.as_ref())? {
                    o.getattr(intern!(py, "escalated"))?.cast_into::<PyList>()?.append(&cur.quarter)?;
                    o.setattr(intern!(py, "due_at"), utc_datetime(py, due)?)?;
                }
            }
            Body::OrderOverdue { order, status, member } => {
                if let Some(o) = b.orders.get_item(order.as_ref())? {
                    o.getattr(intern!(py, "overdue"))?.cast_into::<PyList>()?.append(&cur.quarter)?;
                    if let Some(m) = member.as_deref().filter(|m| !m.is_empty()) {
                        if status == "accepted" {
                            self.award(py, b, cur, m, -overdue_penalty, "overdue_while_held")?;
                        }
                    }
                }
            }
            Body::OrderCancelled { order } => {
                if let Some(o) = b.orders.get_item(order.as_ref())? {
                    o.setattr(intern!(py, "status"), intern!(py, "cancelled"))?;
                    o.setattr(intern!(py, "cancelled"), true)?;
                    o.setattr(intern!(py, "holder"), py.None())?;
                }
            }
            Body::OrderReopened { order, due, previous } => {
                if let Some(o) = b.orders.get_item(order.as_ref())? {
                    if let Some(p) = previous.as_deref().filter(|p| !p.is_empty()) {
                        self.award(py, b, cur, p, -redo, "redo_required")?;
                    }
                    o.setattr(intern!(py, "status"), intern!(py, "open"))?;
                    o.setattr(intern!(py, "holder"), py.None())?;
                    o.setattr(intern!(py, "completed_quarter"), py.None())?;
                    o.setattr(intern!(py, "due_at"), utc_datetime(py, due)?)?;
                }
            }
            Body::ServiceRated { demand, member, stars } => {
                let demand_id = PyString::new(py, demand);
                if b.ratings.contains(&demand_id)? {
                    return Ok(());
                }
                let member_id = member.as_deref().map(|m| self.member(py, m));
                let rating = self.rating.bind(py).call1((&demand_id, &member_id, *stars, &cur.quarter))?;
                b.ratings.set_item(&demand_id, rating)?;
                if let Some(m) = member.as_deref().filter(|m| !m.is_empty()) {
                    let mid = member_id.as_ref().expect("member id made above");
                    append_to(py, &b.ratings_by_member, mid, &demand_id)?;
                    if b.track_changes {
                        b.dirty_stars.add(PyTuple::new(py, [mid.as_any(), cur.quarter.as_any()])?)?;
                    }
                    if *stars == 5 {
                        self.award(py, b, cur, m, five_star, "five_star_bonus")?;
                    }
                }
            }
            Body::MemberCheckedIn { activity, member, community, unit } => {
                let key = (activity.as_ref(), member.as_ref()).into_pyobject(py)?;
                if b.checkins.contains(&key)? {
                    return Ok(());
                }
                let checkin =
                    self.checkin.bind(py).call1((member.as_ref(), &cur.quarter, community.as_ref(), unit.as_ref()))?;
                b.checkins.set_item(key, checkin)?;
                let first = (activity.as_ref(), community.as_ref(), unit.as_ref()).into_pyobject(py)?;
                let earlier = match b.first_checkin.get_item(member.as_ref())? {
                    Some(existing) => first.lt(existing)?,
                    None => true,
                };
                if earlier {
                    b.first_checkin.set_item(member.as_ref(), first)?;
                }
                self.award(py, b, cur, member, check_in, "activity_check_in")?;
            }
        }
        Ok(())
    }
}

fn event_id<'py>(py: Python<'py>, cur: &mut Current<'_, 'py>) -> Bound<'py, PyString> {
    cur.event_id.get_or_insert_with(|| PyString::new(py, &cur.head.event_id)).clone()
}

fn correlation_id<'py>(py: Python<'py>, cur: &mut Current<'_, 'py>) -> Bound<'py, PyString> {
    cur.correlation_id.get_or_insert_with(|| PyString::new(py, &cur.head.correlation_id)).clone()
}

fn occurred_at<'py>(py: Python<'py>, cur: &mut Current<'_, 'py>) -> PyResult<Bound<'py, PyDateTime>> {
    if cur.occurred_at.is_none() {
        cur.occurred_at = Some(utc_datetime(py, &cur.head.occurred_at)?);
    }
    Ok(cur.occurred_at.clone().expect("set above"))
}

/// `d.setdefault(key, []).append(value)`
fn append_to<'py>(
    py: Python<'py>,
    d: &Bound<'py, PyDict>,
    key: &Bound<'py, PyString>,
    value: &Bound<'py, PyString>,
) -> PyResult<()> {
    match d.get_item(key)? {
        Some(list) => list.cast_into::<PyList>()?.append(value),
        None => d.set_item(key, PyList::new(py, [value])?),
    }
}

#[pymethods]
impl Folder {
    /// `skip`: type names (bytes) a replay passes over unparsed.
    #[new]
    #[pyo3(signature = (ledger, fallback, entry, order, rating, checkin, skip=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        ledger: Bound<'_, PyAny>,
        fallback: Py<PyAny>,
        entry: Py<PyAny>,
        order: Py<PyAny>,
        rating: Py<PyAny>,
        checkin: Py<PyAny>,
        skip: Option<HashSet<Vec<u8>>>,
    ) -> PyResult<Self> {
        let rules = Rules::read(&ledger.getattr("rules")?)?;
        Ok(Folder {
            ledger: ledger.unbind(),
            fallback,
            entry,
            order,
            rating,
            checkin,
            rules,
            skip: skip.unwrap_or_default(),
            quarters: HashMap::new(),
            rule_names: HashMap::new(),
            member_ids: HashMap::new(),
        })
    }

    /// Fold `records`, a list of (topic, value bytes or None), in order. A record the kernel does not
    /// fully understand is handed to `fallback(index, topic, value)`, in its place in the order.
    fn fold<'py>(&mut self, py: Python<'py>, records: &Bound<'py, PyList>) -> PyResult<()> {
        let mut run = Run::start(self, py)?;
        for (i, record) in records.iter().enumerate() {
            let (topic, value): (Bound<'py, PyString>, Option<Bound<'py, PyBytes>>) = record.extract()?;
            run.record(self, py, i, topic, value)?;
        }
        run.finish(py)
    }

    /// A replay's batch: confluent-kafka `Message`s. Folds those below their partition's stop offset
    /// (`stops`: {(topic, partition): offset}), passes over types in the Folder's `skip` set unparsed, and
    /// returns (records read, partitions now finished). A message carrying an error goes to `on_error`.
    fn fold_messages<'py>(
        &mut self,
        py: Python<'py>,
        messages: &Bound<'py, PyList>,
        stops: &Bound<'py, PyDict>,
        on_error: &Bound<'py, PyAny>,
    ) -> PyResult<(u64, Vec<(String, i32)>)> {
        let mut limits: HashMap<(String, i32), i64> = stops.extract()?;
        let mut run = Run::start(self, py)?;
        let mut read = 0u64;
        let mut finished = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let value = m.call_method0(intern!(py, "value"))?;
            if value.is_none() {
                let error = m.call_method0(intern!(py, "error"))?;
                if !error.is_none() {
                    on_error.call1((error,))?;
                    continue;
                }
            }
            let topic: Bound<'py, PyString> = m.call_method0(intern!(py, "topic"))?.cast_into()?;
            let partition: i32 = m.call_method0(intern!(py, "partition"))?.extract()?;
            let offset: i64 = m.call_method0(intern!(py, "offset"))?.extract()?;
            let key = (topic.to_str()?.to_owned(), partition);
            let Some(stop) = limits.get(&key).copied() else { continue };
            if offset >= stop {
                continue;
            }
            read += 1;
            if offset + 1 >= stop {
                limits.remove(&key);
                finished.push(key);
            }
            let value: Option<Bound<'py, PyBytes>> = value.extract()?;
            if let Some(kind) = value.as_ref().and_then(|v| type_of(v.as_bytes())) {
                if self.skip.contains(kind) {
                    continue;
                }
            }
            run.record(self, py, i, topic, value)?;
        }
        run.finish(py)?;
        Ok((read, finished))
    }
}

/// The envelope's "type" read from the bytes (as `facts.type_of`), to pass over unused types unparsed: only
/// in the shape the encoder writes, `{"event_id":"...","type":"...",`, so a `"type"` found anywhere else
/// (inside `data`, say) never decides what is skipped.
fn type_of(raw: &[u8]) -> Option<&[u8]> {
    const HEAD: &[u8] = b"{\"event_id\":\"";
    const TYPE: &[u8] = b",\"type\":\"";
    if !raw.starts_with(HEAD) {
        return None;
    }
    let end = HEAD.len() + raw[HEAD.len()..raw.len().min(260)].iter().position(|&c| c == b'"')?;
    if raw[end - 1] == b'\\' || !raw[end + 1..].starts_with(TYPE) {
        return None;
    }
    let start = end + 1 + TYPE.len();
    let len = raw[start..raw.len().min(start + 100)].iter().position(|&c| c == b'"')?;
    Some(&raw[start..start + len])
}

/// One call's pass over records: the ledger's containers and counters, kept in step with the Python path.
struct Run<'py> {
    ledger: Bound<'py, PyAny>,
    books: Books<'py>,
    applied: u64,
    duplicates: u64,
}

impl<'py> Run<'py> {
    fn start(folder: &Folder, py: Python<'py>) -> PyResult<Self> {
        let ledger = folder.ledger.bind(py).clone();
        let applied = ledger.getattr(intern!(py, "applied"))?.extract()?;
        let duplicates = ledger.getattr(intern!(py, "duplicates"))?.extract()?;
        Ok(Run { books: folder.books(py)?, ledger, applied, duplicates })
    }

    fn record(
        &mut self,
        folder: &mut Folder,
        py: Python<'py>,
        i: usize,
        topic: Bound<'py, PyString>,
        value: Option<Bound<'py, PyBytes>>,
    ) -> PyResult<()> {
        let Some(fact) = value.as_ref().and_then(|v| decode(v.as_bytes())) else {
            // The Python fold keeps its own counts and may touch any container: sync both ways.
            self.finish(py)?;
            folder.fallback.bind(py).call1((i, topic, value))?;
            *self = Run::start(folder, py)?;
            return Ok(());
        };
        let Fact { head, body } = fact;
        let quarter = folder.quarter(py, &head.occurred_at);
        let mut cur = Current { head, topic, quarter, event_id: None, correlation_id: None, occurred_at: None };
        if folder.duplicate(py, &self.books, &mut cur)? {
            self.duplicates += 1;
            return Ok(());
        }
        folder.apply(py, &self.books, &mut cur, &body)?;
        self.applied += 1;
        Ok(())
    }

    fn finish(&self, py: Python<'py>) -> PyResult<()> {
        self.ledger.setattr(intern!(py, "applied"), self.applied)?;
        self.ledger.setattr(intern!(py, "duplicates"), self.duplicates)
    }
}

/// The entry id `Ledger._award` makes (exposed so tests can compare the two hashes directly).
#[pyfunction]
fn entry_id_of(version: &str, rule: &str, member: &str, event_id: &str) -> String {
    entry_id(version, rule, member, event_id)
}

#[pymodule]
fn sandan_kernel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Folder>()?;
    m.add_function(wrap_pyfunction!(entry_id_of, m)?)?;
    Ok(())
}
