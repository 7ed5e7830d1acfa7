//! UTC timestamps as the contract's encoder writes them, and quarters in China Standard Time.
//!
//! Only the canonical form is accepted (`YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+00:00)`); anything else is
//! left to the Python decoder, which accepts every form `datetime.fromisoformat` does.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Utc {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micro: u32,
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut n: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    Some(n)
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

pub fn parse_utc(s: &str) -> Option<Utc> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (micro, rest) = match b[19] {
        b'.' if b.len() >= 26 => (digits(&b[20..26])?, &b[26..]),
        b'.' => return None,
        _ => (0, &b[19..]),
    };
    if rest != b"Z" && rest != b"+00:00" {
        return None;
    }
    let t = Utc {
        year: digits(&b[0..4])? as i32,
        month: digits(&b[5..7])? as u8,
        day: digits(&b[8..10])? as u8,
        hour: digits(&b[11..13])? as u8,
        minute: digits(&b[14..16])? as u8,
        second: digits(&b[17..19])? as u8,
        micro,
    };
    let valid = t.year >= 1
        && (1..=12).contains(&t.month)
        && t.day >= 1
        && t.day <= days_in_month(t.year, t.month)
        && t.hour < 24
        && t.minute < 60
        && t.second < 60;
    valid.then_some(t)
}

/// (year, quarter) of a UTC time in China Standard Time (UTC+8 all year).
pub fn quarter_of(t: &Utc) -> (i32, u8) {
    let (mut year, mut month) = (t.year, t.month);
    if t.hour >= 16 && t.day == days_in_month(t.year, t.month) {
        // +8 h crosses midnight into the next month
        if month == 12 {
            year += 1;
            month = 1;
        } else {
            month += 1;
        }
    }
    (year, (month - 1) / 3 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_parse() {
        let t = parse_utc("2026-03-31T16:00:00.000001Z").unwrap();
        assert_eq!((t.year, t.month, t.day, t.hour, t.micro), (2026, 3, 31, 16, 1));
        assert!(parse_utc("2026-03-31T16:00:00+00:00").is_some());
        for bad in [
            "2026-02-29T00:00:00Z",
            "2026-03-31T24:00:00Z",
            "2026-03-31T16:00:00+08:00",
            "2026-03-31 16:00:00Z",
            "2026-03-31T16:00:00.123Z",
            "2026-03-31T16:00:60Z",
        ] {
            assert!(parse_utc(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn quarters_follow_china_time() {
        assert_eq!(quarter_of(&parse_utc("2026-03-31T15:59:59.999999Z").unwrap()), (2026, 1));
        assert_eq!(quarter_of(&parse_utc("2026-03-31T16:00:00Z").unwrap()), (2026, 2));
        assert_eq!(quarter_of(&parse_utc("2026-12-31T16:00:00Z").unwrap()), (2027, 1));
        assert_eq!(quarter_of(&parse_utc("2026-04-30T16:00:00Z").unwrap()), (2026, 2));
        assert_eq!(quarter_of(&parse_utc("2028-02-28T16:00:00Z").unwrap()), (2028, 1));
    }
}
