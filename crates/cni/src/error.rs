//! The CNI error result: a code from the specification's table, a short
//! message naming what was wrong, and optional details.

use std::fmt;

use serde::Serialize;

/// The well-known error codes of the CNI specification, and the
/// plugin-specific range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: the requested CNI version is not supported.
    IncompatibleVersion,
    /// 2: a configuration field is not supported; the message names it.
    UnsupportedField,
    /// 3: the container is unknown or gone.
    UnknownContainer,
    /// 4: a `CNI_*` environment variable is missing or invalid; the message
    /// names it.
    InvalidEnvironment,
    /// 5: reading or writing failed (stdin, a file).
    Io,
    /// 6: the configuration (or a result) could not be decoded.
    Decode,
    /// 7: the configuration decoded but is not valid.
    InvalidConfig,
    /// 11: a transient condition; the runtime should retry later.
    TryAgainLater,
    /// 50 (`STATUS`): the plugin cannot service `ADD` requests.
    NotAvailable,
    /// 51 (`STATUS`): not available, and existing workloads may have
    /// limited connectivity.
    LimitedConnectivity,
    /// 999: an internal failure, the code Calico's plugin reports for
    /// everything that is not one of the above.
    Internal,
    /// 100 and above: this plugin's own codes.
    Plugin(u32),
}

impl ErrorCode {
    pub fn number(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::NotAvailable => 50,
            ErrorCode::LimitedConnectivity => 51,
            ErrorCode::Internal => 999,
            ErrorCode::Plugin(n) => n,
        }
    }

    pub fn from_number(n: u32) -> Self {
        match n {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::Io,
            6 => ErrorCode::Decode,
            7 => ErrorCode::InvalidConfig,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::NotAvailable,
            51 => ErrorCode::LimitedConnectivity,
            999 => ErrorCode::Internal,
            n => ErrorCode::Plugin(n),
        }
    }
}

/// An error as the runtime receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: ErrorCode,
    /// Short, names the input or operation that failed.
    pub msg: String,
    /// The underlying causes, outermost first.
    pub details: String,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Builds an error from a Rust error: its message becomes `msg`, the
    /// chain of causes becomes `details`.
    pub fn from_error(code: ErrorCode, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut causes = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        CniError::new(code, error.to_string()).with_details(causes.join(": "))
    }

    /// The JSON the plugin prints on stdout, in the version the runtime
    /// asked for (empty when unknown).
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion", skip_serializing_if = "str::is_empty")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        crate::result::pretty(&Wire {
            cni_version,
            code: self.code.number(),
            msg: &self.msg,
            details: &self.details,
        })
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.msg)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_numbers() {
        for n in [1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 101, 999] {
            assert_eq!(ErrorCode::from_number(n).number(), n);
        }
    }

    #[test]
    fn json_has_the_spec_fields() {
        let error = CniError::new(
            ErrorCode::InvalidConfig,
            "mtu 70000 is out of range (68-65535)",
        );
        assert_eq!(
            error.to_json("1.0.0"),
            "{\n    \"cniVersion\": \"1.0.0\",\n    \"code\": 7,\n    \"msg\": \"mtu 70000 is out of range (68-65535)\"\n}"
        );
        let with_details = error.clone().with_details("from stdin");
        let value: serde_json::Value = serde_json::from_str(&with_details.to_json("")).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"code": 7, "msg": "mtu 70000 is out of range (68-65535)", "details": "from stdin"})
        );
    }

    #[test]
    fn from_error_keeps_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("adding address 10.0.0.1/32")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::other("file exists"));
        let cni = CniError::from_error(ErrorCode::Internal, &error);
        assert_eq!(cni.msg, "adding address 10.0.0.1/32");
        assert_eq!(cni.details, "file exists");
        assert_eq!(cni.to_string(), "adding address 10.0.0.1/32: file exists");
    }
}
