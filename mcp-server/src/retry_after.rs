//! `Retry-After` in the configured format.
//!
//! Every refusal that asks the client to come back later (MCP rate limits, token budgets) formats
//! its delay here, so the whole server speaks one `RETRY_AFTER_FORMAT`.

use std::time::{Duration, SystemTime};

use http::HeaderValue;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::config::RetryAfterFormat;

impl RetryAfterFormat {
    /// The header value telling a client to wait `wait`, measured from `now`.
    ///
    /// The delay is rounded up to whole seconds (at least 1): every format has one-second
    /// resolution, and rounding down would invite a retry that is refused again.
    pub fn header_value(self, wait: Duration, now: SystemTime) -> HeaderValue {
        let seconds = whole_seconds_ceil(wait);
        let formatted = match self {
            Self::Seconds => return HeaderValue::from(seconds),
            Self::HttpDate => {
                httpdate::fmt_http_date(whole_second(now) + Duration::from_secs(seconds))
            }
            Self::Iso8601 => {
                let at = OffsetDateTime::from(whole_second(now) + Duration::from_secs(seconds));
                at.format(&Rfc3339).unwrap_or_else(|_| seconds.to_string())
            }
        };
        HeaderValue::from_str(&formatted).unwrap_or_else(|_| HeaderValue::from(seconds))
    }
}

/// Whole seconds to wait, rounded up, at least 1.
pub fn whole_seconds_ceil(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// `now` truncated to the second, so timestamps never carry fractions (RFC 3339 allows them, but
/// clients that parse `Retry-After` rarely do).
fn whole_second(now: SystemTime) -> SystemTime {
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(epoch_seconds: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(epoch_seconds, nanos)
    }

    #[test]
    fn seconds_round_up_and_never_say_zero() {
        let now = at(0, 0);
        let format = RetryAfterFormat::Seconds;
        assert_eq!(format.header_value(Duration::from_millis(1), now), "1");
        assert_eq!(format.header_value(Duration::ZERO, now), "1");
        assert_eq!(format.header_value(Duration::from_millis(2_001), now), "3");
        assert_eq!(format.header_value(Duration::from_secs(60), now), "60");
    }

    #[test]
    fn http_date_is_rfc_9110() {
        // 2026-11-24T23:00:00Z
        let now = at(1_795_561_200, 500_000_000);
        let value = RetryAfterFormat::HttpDate.header_value(Duration::from_millis(6_200), now);
        assert_eq!(value, "Tue, 24 Nov 2026 23:00:07 GMT");
        assert!(httpdate::parse_http_date(value.to_str().unwrap()).is_ok());
    }

    #[test]
    fn iso8601_is_a_utc_timestamp_without_fractions() {
        let now = at(1_795_561_200, 999_999_999);
        let value = RetryAfterFormat::Iso8601.header_value(Duration::from_secs(7), now);
        assert_eq!(value, "2026-11-24T23:00:07Z");
    }
}
