//! CNI specification versions: which exist, which this plugin speaks, and
//! what each allows.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A CNI specification version this plugin can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecVersion {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl SpecVersion {
    /// Every version, oldest first: what `VERSION` reports.
    pub const ALL: [SpecVersion; 7] = [
        SpecVersion::V0_1_0,
        SpecVersion::V0_2_0,
        SpecVersion::V0_3_0,
        SpecVersion::V0_3_1,
        SpecVersion::V0_4_0,
        SpecVersion::V1_0_0,
        SpecVersion::V1_1_0,
    ];

    /// The newest version, used when nothing else is known.
    pub const LATEST: SpecVersion = SpecVersion::V1_1_0;

    /// What Calico assumes when a configuration has no `cniVersion`.
    pub const UNSPECIFIED: SpecVersion = SpecVersion::V0_2_0;

    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V0_1_0 => "0.1.0",
            SpecVersion::V0_2_0 => "0.2.0",
            SpecVersion::V0_3_0 => "0.3.0",
            SpecVersion::V0_3_1 => "0.3.1",
            SpecVersion::V0_4_0 => "0.4.0",
            SpecVersion::V1_0_0 => "1.0.0",
            SpecVersion::V1_1_0 => "1.1.0",
        }
    }

    /// `CHECK` arrived in 0.4.0.
    pub fn supports_check(self) -> bool {
        self >= SpecVersion::V0_4_0
    }

    /// `STATUS` and `GC` arrived in 1.1.0.
    pub fn supports_status_and_gc(self) -> bool {
        self >= SpecVersion::V1_1_0
    }

    /// Results before 0.3.0 have the `ip4`/`ip6` shape.
    pub fn has_legacy_result(self) -> bool {
        self < SpecVersion::V0_3_0
    }

    /// Results before 1.0.0 carry a `version` in each IP entry.
    pub fn ip_entries_carry_version(self) -> bool {
        self < SpecVersion::V1_0_0
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version string that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI version {0:?} is not supported (supported: {list})", list = supported_list())]
pub struct UnsupportedVersion(pub String);

impl FromStr for SpecVersion {
    type Err = UnsupportedVersion;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        SpecVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == text)
            .ok_or_else(|| UnsupportedVersion(text.to_string()))
    }
}

/// Parses a configuration's `cniVersion`; empty or absent means 0.2.0, as
/// Calico treats it.
pub fn config_version(text: Option<&str>) -> Result<SpecVersion, UnsupportedVersion> {
    match text {
        None | Some("") => Ok(SpecVersion::UNSPECIFIED),
        Some(text) => text.parse(),
    }
}

fn supported_list() -> String {
    SpecVersion::ALL
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reply to `VERSION`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionReply {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<&'static str>,
}

impl VersionReply {
    /// The reply echoes the version the runtime asked in (its `cniVersion`
    /// on stdin) or the newest one when it sent none.
    pub fn new(requested: Option<&str>) -> Self {
        VersionReply {
            cni_version: requested
                .filter(|v| !v.is_empty())
                .unwrap_or(SpecVersion::LATEST.as_str())
                .to_string(),
            supported_versions: SpecVersion::ALL.iter().map(|v| v.as_str()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        for v in SpecVersion::ALL {
            assert_eq!(v.as_str().parse::<SpecVersion>(), Ok(v));
        }
        assert!(SpecVersion::V0_3_1 < SpecVersion::V0_4_0);
        assert!(!SpecVersion::V0_3_1.supports_check());
        assert!(SpecVersion::V0_4_0.supports_check());
        assert!(!SpecVersion::V1_0_0.supports_status_and_gc());
        assert!(SpecVersion::V1_1_0.supports_status_and_gc());
        let error = "2.0.0".parse::<SpecVersion>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "CNI version \"2.0.0\" is not supported (supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)"
        );
        assert_eq!(config_version(None), Ok(SpecVersion::V0_2_0));
        assert_eq!(config_version(Some("")), Ok(SpecVersion::V0_2_0));
    }

    #[test]
    fn version_reply_echoes_the_request() {
        let reply = serde_json::to_string(&VersionReply::new(Some("0.4.0"))).unwrap();
        assert_eq!(
            reply,
            r#"{"cniVersion":"0.4.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#
        );
        assert_eq!(VersionReply::new(None).cni_version, "1.1.0");
    }
}
