//! The BGP-4 wire format: message framing, OPEN with capabilities, UPDATE
//! with path attributes and MP-BGP NLRI, NOTIFICATION, KEEPALIVE and
//! ROUTE-REFRESH.
//!
//! Decoding never panics. Every malformed input becomes a [`DecodeError`]
//! that carries the NOTIFICATION the RFCs prescribe for it (RFC 4271 §6,
//! RFC 4760, RFC 6793, RFC 5492), data field included, so the session can
//! send it as it is.
//!
//! Start at [`message_length`] (framing a byte stream) and [`decode`].

mod notification;
mod open;
mod reader;
mod update;

pub use notification::{
    Notification, cease, code, fsm, header, open as open_error, update as update_error,
};
pub use open::{Capability, Family, GracefulRestart, GracefulRestartFamily, Open, RouteRefresh};
pub use update::{
    AS_TRANS, AsPath, AsSegment, Attribute, AttributeValue, LargeCommunity, MpReach, MpUnreach,
    Nlri, Origin, SegmentKind, Update, attr_flags, attr_type,
};

use reader::Reader;

/// Every message starts with 16 bytes of ones.
pub const MARKER: [u8; 16] = [0xff; 16];
/// Marker, length and type.
pub const HEADER_LEN: usize = 19;
/// RFC 4271's largest message (no RFC 8654 extended messages).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Message type codes.
pub mod message_type {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// One BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    pub fn type_code(&self) -> u8 {
        match self {
            Message::Open(_) => message_type::OPEN,
            Message::Update(_) => message_type::UPDATE,
            Message::Notification(_) => message_type::NOTIFICATION,
            Message::Keepalive => message_type::KEEPALIVE,
            Message::RouteRefresh(_) => message_type::ROUTE_REFRESH,
        }
    }

    /// Appends the encoded message to `out`. AS numbers in UPDATEs are
    /// written four octets wide when `four_octet_as` (negotiated per
    /// session, RFC 6793), else two.
    pub fn encode(&self, four_octet_as: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&[0, 0]);
        out.push(self.type_code());
        match self {
            Message::Open(open) => open.encode(out)?,
            Message::Update(update) => update.encode(four_octet_as, out)?,
            Message::Notification(n) => {
                out.push(n.code);
                out.push(n.subcode);
                out.extend_from_slice(&n.data);
            }
            Message::Keepalive => {}
            Message::RouteRefresh(r) => r.encode(out),
        }
        let length = out.len() - start;
        if length > MAX_MESSAGE_LEN {
            out.truncate(start);
            return Err(EncodeError::TooLong {
                message_type: self.type_code(),
                length,
            });
        }
        out[start + 16..start + 18].copy_from_slice(&(length as u16).to_be_bytes());
        Ok(())
    }

    /// The message as a fresh byte vector.
    pub fn to_bytes(&self, four_octet_as: bool) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(four_octet_as, &mut out)?;
        Ok(out)
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error(
        "message of type {message_type} would be {length} bytes, over the {MAX_MESSAGE_LEN}-byte limit"
    )]
    TooLong { message_type: u8, length: usize },
    #[error("{what} does not fit its length field")]
    FieldTooLong { what: &'static str },
}

/// A message that could not be decoded, with the NOTIFICATION to answer it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}: {notification}")]
pub struct DecodeError {
    pub notification: Notification,
    pub detail: String,
}

impl DecodeError {
    pub(crate) fn new(
        code: u8,
        subcode: u8,
        data: impl Into<Vec<u8>>,
        detail: impl Into<String>,
    ) -> Self {
        DecodeError {
            notification: Notification::new(code, subcode, data),
            detail: detail.into(),
        }
    }

    fn header(subcode: u8, data: impl Into<Vec<u8>>, detail: impl Into<String>) -> Self {
        DecodeError::new(code::MESSAGE_HEADER, subcode, data, detail)
    }
}

/// Looks at the start of a byte stream: `Ok(None)` while a whole message
/// has not arrived yet, `Ok(Some(length))` once it has. The header checks
/// of RFC 4271 §6.1 happen here, as soon as the 19 header bytes are in, so a
/// peer sending garbage is answered without waiting for more bytes.
pub fn message_length(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < HEADER_LEN {
        // A wrong marker can be reported before the header is complete.
        if buf.iter().take(16).any(|&b| b != 0xff) {
            return Err(not_synchronized());
        }
        return Ok(None);
    }
    if buf[..16] != MARKER {
        return Err(not_synchronized());
    }
    let length = u16::from_be_bytes([buf[16], buf[17]]) as usize;
    let kind = buf[18];
    let minimum = match kind {
        message_type::OPEN => 29,
        message_type::UPDATE => 23,
        message_type::NOTIFICATION => 21,
        message_type::KEEPALIVE => 19,
        message_type::ROUTE_REFRESH => 23,
        other => {
            return Err(DecodeError::header(
                header::BAD_MESSAGE_TYPE,
                vec![other],
                format!("unknown message type {other}"),
            ));
        }
    };
    let exact = matches!(kind, message_type::KEEPALIVE | message_type::ROUTE_REFRESH);
    if length < minimum || length > MAX_MESSAGE_LEN || (exact && length != minimum) {
        return Err(DecodeError::header(
            header::BAD_MESSAGE_LENGTH,
            (length as u16).to_be_bytes(),
            format!("message of type {kind} has length {length}"),
        ));
    }
    Ok((buf.len() >= length).then_some(length))
}

fn not_synchronized() -> DecodeError {
    DecodeError::header(
        header::CONNECTION_NOT_SYNCHRONIZED,
        Vec::new(),
        "message marker is not all ones",
    )
}

/// Decodes one whole message (as delimited by [`message_length`]).
/// `four_octet_as` says how wide AS numbers in UPDATEs are on this session.
pub fn decode(bytes: &[u8], four_octet_as: bool) -> Result<Message, DecodeError> {
    let length = match message_length(bytes)? {
        Some(length) if length == bytes.len() => length,
        _ => {
            let declared = bytes
                .get(16..18)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .unwrap_or_default();
            return Err(DecodeError::header(
                header::BAD_MESSAGE_LENGTH,
                declared.to_be_bytes(),
                format!(
                    "message declares {declared} bytes but {} were given",
                    bytes.len()
                ),
            ));
        }
    };
    let body = Reader::new(&bytes[HEADER_LEN..length]);
    match bytes[18] {
        message_type::OPEN => Open::decode(body).map(Message::Open),
        message_type::UPDATE => Update::decode(body, four_octet_as).map(Message::Update),
        message_type::NOTIFICATION => {
            let rest = body.rest();
            Ok(Message::Notification(Notification::new(
                rest[0],
                rest[1],
                &rest[2..],
            )))
        }
        message_type::KEEPALIVE => Ok(Message::Keepalive),
        _ => Ok(Message::RouteRefresh(RouteRefresh::decode(body.rest()))),
    }
}

#[cfg(test)]
mod tests;
