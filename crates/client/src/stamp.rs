//! Where new resources get their `uid` and `creationTimestamp` from: the
//! clock and random UUIDs in production, fixed sequences in tests.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The source of identities and times stamped on created resources.
pub trait Stamper: Send + Sync + fmt::Debug {
    /// A new, unique `metadata.uid`.
    fn uid(&self) -> String;
    /// The current time as Calico writes `creationTimestamp`: RFC 3339 in
    /// UTC with second precision, `2024-01-02T03:04:05Z`.
    fn now(&self) -> String;
}

/// Random version-4 UUIDs and the system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemStamper;

impl Stamper for SystemStamper {
    fn uid(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }

    fn now(&self) -> String {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

/// Deterministic stamps for tests: uids `00000000-0000-4000-8000-000000000001`,
/// `...002`, ... and one fixed time.
#[derive(Debug)]
pub struct FixedStamper {
    time: String,
    next: AtomicU64,
}

impl FixedStamper {
    pub fn new(time: impl Into<String>) -> FixedStamper {
        FixedStamper {
            time: time.into(),
            next: AtomicU64::new(1),
        }
    }
}

impl Stamper for FixedStamper {
    fn uid(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("00000000-0000-4000-8000-{n:012x}")
    }

    fn now(&self) -> String {
        self.time.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_stamps_have_calicos_shapes() {
        let s = SystemStamper;
        let uid = s.uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4", "version 4 uuid: {uid}");
        assert_ne!(uid, s.uid());
        let now = s.now();
        assert!(chrono::DateTime::parse_from_rfc3339(&now).is_ok(), "{now}");
        assert!(now.ends_with('Z') && !now.contains('.'), "{now}");
    }

    #[test]
    fn fixed_stamps_count_up() {
        let s = FixedStamper::new("2024-01-02T03:04:05Z");
        assert_eq!(s.uid(), "00000000-0000-4000-8000-000000000001");
        assert_eq!(s.uid(), "00000000-0000-4000-8000-000000000002");
        assert_eq!(s.now(), "2024-01-02T03:04:05Z");
    }
}
