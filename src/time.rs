//! Timestamps as the archive stores them: RFC 3339 UTC text with milliseconds.
//!
//! One fixed width (`2026-11-02T09:15:00.000Z`) so that times sort correctly as text in SQL.
//! Providers send several shapes (with or without zone, `T` or space, fractional seconds);
//! `parse_timestamp` accepts them all and treats a time without a zone as UTC.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for layout in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, layout) {
            return Some(t.and_utc());
        }
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(t.with_timezone(&Utc));
    }
    None
}

/// Normalises a provider's time text to the archive's form; `None` when it is not a time.
pub fn normalize_timestamp(text: &str) -> Option<String> {
    parse_timestamp(text).map(format_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_every_shape_to_one_width() {
        for (input, want) in [
            ("2023-11-07T05:31:56Z", "2023-11-07T05:31:56.000Z"),
            ("2023-11-07T07:31:56.25+02:00", "2023-11-07T05:31:56.250Z"),
            ("2023-11-07T05:31:56", "2023-11-07T05:31:56.000Z"),
            ("2023-11-07 05:31:56.123456", "2023-11-07T05:31:56.123Z"),
            ("2023-11-07 05:31:56+00", "2023-11-07T05:31:56.000Z"),
        ] {
            assert_eq!(normalize_timestamp(input).as_deref(), Some(want), "{input}");
        }
        assert_eq!(normalize_timestamp("yesterday"), None);
    }
}
