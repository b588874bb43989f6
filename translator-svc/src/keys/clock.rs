//! The injected wall clock and the UTC calendar the key store needs (usage sort keys, budget
//! months, day buckets). Plain integer arithmetic on the proleptic Gregorian calendar; no I/O.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time, replaceable in tests (month rollover, cache expiry).
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to.
pub struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    pub fn at(date: Date) -> Self {
        ManualClock(Mutex::new(date.start()))
    }

    pub fn set(&self, t: SystemTime) {
        if let Ok(mut now) = self.0.lock() {
            *now = t;
        }
    }

    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.0.lock().map(|t| *t).unwrap_or(UNIX_EPOCH)
    }
}

/// A UTC calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    pub fn new(year: i32, month: u32, day: u32) -> Option<Date> {
        let date = Date { year, month, day };
        (date.month >= 1 && date.month <= 12 && day >= 1 && day <= days_in_month(year, month))
            .then_some(date)
    }

    pub fn of(t: SystemTime) -> Date {
        let (date, _) = split(t);
        date
    }

    /// `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Date> {
        let mut parts = text.splitn(3, '-');
        let year = parts.next()?.parse().ok()?;
        let month = parts.next()?.parse().ok()?;
        let day = parts.next()?.parse().ok()?;
        (text.len() == 10).then_some(())?;
        Date::new(year, month, day)
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i64 {
        days_from_civil(self.year as i64, self.month, self.day)
    }

    pub fn from_days(days: i64) -> Date {
        let (year, month, day) = civil_from_days(days);
        Date {
            year: year as i32,
            month,
            day,
        }
    }

    pub fn next_day(self) -> Date {
        Date::from_days(self.days() + 1)
    }

    /// The budget month this date belongs to, `YYYY-MM`.
    pub fn month_label(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// When this date's month ends and budgets reset.
    pub fn first_of_next_month(self) -> Date {
        if self.month == 12 {
            Date {
                year: self.year + 1,
                month: 1,
                day: 1,
            }
        } else {
            Date {
                year: self.year,
                month: self.month + 1,
                day: 1,
            }
        }
    }

    /// Midnight UTC at the start of this date.
    pub fn start(self) -> SystemTime {
        let secs = self.days() * 86_400;
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH
        }
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// `2026-11-25T19:01:44.123Z`: fixed width, so lexical order is time order (usage sort keys).
pub fn rfc3339_millis(t: SystemTime) -> String {
    let (date, millis_of_day) = split(t);
    let secs = millis_of_day / 1000;
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        millis_of_day % 1000
    )
}

/// `2026-11-25T19:01:44Z`: second precision, as `/health/ptc` and `expires_at` show time.
pub fn rfc3339_secs(t: SystemTime) -> String {
    let (date, millis_of_day) = split(t);
    let secs = millis_of_day / 1000;
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn split(t: SystemTime) -> (Date, u64) {
    let millis = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let days = (millis / 86_400_000) as i64;
    (Date::from_days(days), millis % 86_400_000)
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

// Howard Hinnant's `days_from_civil` / `civil_from_days`.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for days in [-1, 0, 59, 365, 11_016, 20_416, 20_512, 100_000] {
            assert_eq!(Date::from_days(days).days(), days);
        }
        let d = Date::parse("2024-02-29").unwrap();
        assert_eq!(d.next_day(), Date::new(2024, 3, 1).unwrap());
        assert_eq!(Date::parse("2023-02-29"), None);
        assert_eq!(Date::parse("2023-2-1"), None);
        assert_eq!(
            Date::new(2026, 12, 31)
                .unwrap()
                .first_of_next_month()
                .to_string(),
            "2027-01-01"
        );
        assert_eq!(d.month_label(), "2024-02");
    }

    #[test]
    fn rfc3339_is_fixed_width_utc() {
        let t = Date::new(2026, 11, 25).unwrap().start()
            + Duration::from_millis(((19 * 60 + 1) * 60 + 44) * 1000 + 123);
        assert_eq!(rfc3339_millis(t), "2026-11-25T19:01:44.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_secs(t), "2026-11-25T19:01:44Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(Date::new(2026, 1, 31).unwrap());
        assert_eq!(Date::of(clock.now()).to_string(), "2026-01-31");
        clock.advance(Duration::from_secs(86_400));
        assert_eq!(Date::of(clock.now()).month_label(), "2026-02");
    }
}
