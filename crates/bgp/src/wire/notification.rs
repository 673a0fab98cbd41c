//! NOTIFICATION messages (RFC 4271 §4.5) and the error codes a decoder or
//! the FSM puts in them.

use std::fmt;

/// Error codes (RFC 4271 §4.5, RFC 7313 for ROUTE-REFRESH).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes.
pub mod header {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes.
pub mod open {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// UPDATE Message Error subcodes.
pub mod update {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN: u8 = 6;
    pub const INVALID_NEXT_HOP: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538).
pub mod cease {
    pub const MAX_PREFIXES: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
}

/// A NOTIFICATION: error code, subcode and data, exactly as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: impl Into<Vec<u8>>) -> Self {
        Notification {
            code,
            subcode,
            data: data.into(),
        }
    }

    pub fn cease(subcode: u8) -> Self {
        Notification::new(code::CEASE, subcode, Vec::new())
    }

    pub fn hold_timer_expired() -> Self {
        Notification::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new())
    }

    /// The most specific RFC name, as BIRD shows it: the subcode's name
    /// when there is one ("Bad peer AS"), else the code's ("Hold timer
    /// expired").
    pub fn describe(&self) -> String {
        let code_name = match self.code {
            code::MESSAGE_HEADER => "Message header error",
            code::OPEN_MESSAGE => "OPEN message error",
            code::UPDATE_MESSAGE => "UPDATE message error",
            code::HOLD_TIMER_EXPIRED => "Hold timer expired",
            code::FSM => "Finite state machine error",
            code::CEASE => "Cease",
            code::ROUTE_REFRESH => "ROUTE-REFRESH message error",
            _ => return format!("Unknown error {}/{}", self.code, self.subcode),
        };
        let sub = match (self.code, self.subcode) {
            (code::MESSAGE_HEADER, header::CONNECTION_NOT_SYNCHRONIZED) => {
                "Connection not synchronized"
            }
            (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH) => "Bad message length",
            (code::MESSAGE_HEADER, header::BAD_MESSAGE_TYPE) => "Bad message type",
            (code::OPEN_MESSAGE, open::UNSUPPORTED_VERSION) => "Unsupported version number",
            (code::OPEN_MESSAGE, open::BAD_PEER_AS) => "Bad peer AS",
            (code::OPEN_MESSAGE, open::BAD_BGP_IDENTIFIER) => "Bad BGP identifier",
            (code::OPEN_MESSAGE, open::UNSUPPORTED_OPTIONAL_PARAMETER) => {
                "Unsupported optional parameter"
            }
            (code::OPEN_MESSAGE, open::UNACCEPTABLE_HOLD_TIME) => "Unacceptable hold time",
            (code::OPEN_MESSAGE, open::UNSUPPORTED_CAPABILITY) => "Unsupported capability",
            (code::UPDATE_MESSAGE, update::MALFORMED_ATTRIBUTE_LIST) => "Malformed attribute list",
            (code::UPDATE_MESSAGE, update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE) => {
                "Unrecognized well-known attribute"
            }
            (code::UPDATE_MESSAGE, update::MISSING_WELL_KNOWN_ATTRIBUTE) => {
                "Missing mandatory attribute"
            }
            (code::UPDATE_MESSAGE, update::ATTRIBUTE_FLAGS_ERROR) => "Invalid attribute flags",
            (code::UPDATE_MESSAGE, update::ATTRIBUTE_LENGTH_ERROR) => "Invalid attribute length",
            (code::UPDATE_MESSAGE, update::INVALID_ORIGIN) => "Invalid ORIGIN attribute",
            (code::UPDATE_MESSAGE, update::INVALID_NEXT_HOP) => "Invalid NEXT_HOP attribute",
            (code::UPDATE_MESSAGE, update::OPTIONAL_ATTRIBUTE_ERROR) => "Optional attribute error",
            (code::UPDATE_MESSAGE, update::INVALID_NETWORK_FIELD) => "Invalid network field",
            (code::UPDATE_MESSAGE, update::MALFORMED_AS_PATH) => "Malformed AS_PATH",
            (code::FSM, fsm::UNEXPECTED_IN_OPEN_SENT) => "Unexpected message in OpenSent state",
            (code::FSM, fsm::UNEXPECTED_IN_OPEN_CONFIRM) => {
                "Unexpected message in OpenConfirm state"
            }
            (code::FSM, fsm::UNEXPECTED_IN_ESTABLISHED) => {
                "Unexpected message in Established state"
            }
            (code::CEASE, cease::MAX_PREFIXES) => "Maximum number of prefixes reached",
            (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN) => "Administrative shutdown",
            (code::CEASE, cease::PEER_DECONFIGURED) => "Peer de-configured",
            (code::CEASE, cease::ADMINISTRATIVE_RESET) => "Administrative reset",
            (code::CEASE, cease::CONNECTION_REJECTED) => "Connection rejected",
            (code::CEASE, cease::OTHER_CONFIGURATION_CHANGE) => "Configuration change",
            (code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION) => "Connection collision",
            (code::CEASE, cease::OUT_OF_RESOURCES) => "Out of resources",
            (code::CEASE, cease::HARD_RESET) => "Hard reset",
            (code::ROUTE_REFRESH, 1) => "Invalid message length",
            (_, 0) => return code_name.to_string(),
            _ => return format!("{code_name} (subcode {})", self.subcode),
        };
        sub.to_string()
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{})", self.describe(), self.code, self.subcode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rfcs() {
        let cases = [
            (
                Notification::hold_timer_expired(),
                "Hold timer expired (4/0)",
            ),
            (
                Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN),
                "Administrative shutdown (6/2)",
            ),
            (
                Notification::new(code::UPDATE_MESSAGE, update::MALFORMED_AS_PATH, vec![]),
                "Malformed AS_PATH (3/11)",
            ),
            (
                Notification::new(code::OPEN_MESSAGE, 99, vec![]),
                "OPEN message error (subcode 99) (2/99)",
            ),
            (
                Notification::new(42, 1, vec![]),
                "Unknown error 42/1 (42/1)",
            ),
        ];
        for (n, text) in cases {
            assert_eq!(n.to_string(), text);
        }
    }
}
