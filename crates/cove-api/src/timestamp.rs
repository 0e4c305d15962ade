//! RFC 3339 UTC timestamps as the SDKs accept them (`API.md` §6): `Z` suffix
//! and either no fraction or exactly six digits. Python 3.10's
//! `fromisoformat` accepts only 0, 3 or 6 fraction digits, so nanoseconds
//! (Go's default) are never sent.

use std::fmt;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

/// A point in time with microsecond precision, stored as microseconds since
/// the Unix epoch (the form both stores keep in an integer column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Self(i64::try_from(nanos / 1_000).unwrap_or(i64::MAX))
    }

    /// From microseconds since the Unix epoch.
    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        // Out-of-range values cannot come from `now()`; print the epoch
        // rather than fail a whole response on a corrupt row.
        let dt = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        )?;
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        f.write_str("Z")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339 UTC, `Z`, 0 or 6 fraction digits"))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_have_no_fraction() {
        // 2026-06-17T08:00:00Z
        let t = Timestamp::from_micros(1_781_683_200 * 1_000_000);
        assert_eq!(t.to_string(), "2026-06-17T08:00:00Z");
    }

    #[test]
    fn fractions_have_six_digits() {
        let t = Timestamp::from_micros(1_781_683_200 * 1_000_000 + 1_500);
        assert_eq!(t.to_string(), "2026-06-17T08:00:00.001500Z");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-06-17T08:00:00.001500Z\""
        );
    }

    #[test]
    fn now_is_after_2020() {
        assert!(Timestamp::now().as_micros() > 1_577_836_800 * 1_000_000);
    }
}
