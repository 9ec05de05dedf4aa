//! Calendar periods (UTC) for quotas and the chargeback report, and the per-minute window.

use time::{Date, Duration as TimeDuration, Month, OffsetDateTime, Time};

use crate::config::QuotaPeriod;

pub const MINUTE_MS: u64 = 60_000;

/// Start of the minute window containing `now_ms`.
pub fn minute_window(now_ms: u64) -> u64 {
    now_ms - now_ms % MINUTE_MS
}

impl QuotaPeriod {
    /// `[start, end)` of the period containing `now_ms`, in Unix milliseconds.
    pub fn bounds(self, now_ms: u64) -> (u64, u64) {
        let now = to_datetime(now_ms);
        let date = now.date();
        let (start, end) = match self {
            Self::Hourly => {
                let start = date.with_hms(now.hour(), 0, 0).map(|d| d.assume_utc());
                let start = start.unwrap_or(now);
                (start, start + TimeDuration::HOUR)
            }
            Self::Daily => {
                let start = midnight(date);
                (start, start + TimeDuration::DAY)
            }
            Self::Weekly => {
                // ISO weeks start on Monday.
                let back = i64::from(date.weekday().number_days_from_monday());
                let start = midnight(date) - TimeDuration::days(back);
                (start, start + TimeDuration::WEEK)
            }
            Self::Monthly => {
                let first = Date::from_calendar_date(date.year(), date.month(), 1).unwrap_or(date);
                let (year, month) = match date.month() {
                    Month::December => (date.year() + 1, Month::January),
                    month => (date.year(), month.next()),
                };
                let next = Date::from_calendar_date(year, month, 1).unwrap_or(date);
                (midnight(first), midnight(next))
            }
            Self::Yearly => {
                let first =
                    Date::from_calendar_date(date.year(), Month::January, 1).unwrap_or(date);
                let next =
                    Date::from_calendar_date(date.year() + 1, Month::January, 1).unwrap_or(date);
                (midnight(first), midnight(next))
            }
        };
        (to_ms(start), to_ms(end))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hourly => "hourly",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        }
    }
}

fn midnight(date: Date) -> OffsetDateTime {
    date.with_time(Time::MIDNIGHT).assume_utc()
}

fn to_datetime(ms: u64) -> OffsetDateTime {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn to_ms(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// RFC 3339 rendering of Unix milliseconds, for reports.
pub fn rfc3339(ms: u64) -> String {
    to_datetime(ms)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-24T23:30:15Z, a Tuesday.
    const NOW: u64 = 1_795_563_015_000;

    #[test]
    fn periods_are_utc_calendar_bounds() {
        let cases = [
            (
                QuotaPeriod::Hourly,
                "2026-11-24T23:00:00Z",
                "2026-11-25T00:00:00Z",
            ),
            (
                QuotaPeriod::Daily,
                "2026-11-24T00:00:00Z",
                "2026-11-25T00:00:00Z",
            ),
            (
                QuotaPeriod::Weekly,
                "2026-11-23T00:00:00Z",
                "2026-11-30T00:00:00Z",
            ),
            (
                QuotaPeriod::Monthly,
                "2026-11-01T00:00:00Z",
                "2026-12-01T00:00:00Z",
            ),
            (
                QuotaPeriod::Yearly,
                "2026-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
        ];
        for (period, start, end) in cases {
            let (s, e) = period.bounds(NOW);
            assert_eq!(
                (rfc3339(s).as_str(), rfc3339(e).as_str()),
                (start, end),
                "{period:?}"
            );
        }
    }

    #[test]
    fn december_rolls_into_january() {
        // 2026-12-31T12:00:00Z
        let (start, end) = QuotaPeriod::Monthly.bounds(1_798_718_400_000);
        assert_eq!(rfc3339(start), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339(end), "2027-01-01T00:00:00Z");
    }

    #[test]
    fn minute_windows_align_to_the_minute() {
        assert_eq!(minute_window(NOW), NOW - 15_000);
    }
}
