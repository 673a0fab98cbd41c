//! A synchronous rtnetlink socket bound to one network namespace.
//!
//! The socket belongs to the namespace it was opened in, whatever thread
//! later uses it; [`Netlink::open_in`] opens it inside another namespace on
//! a short-lived thread and hands it back. Requests are sent one at a time
//! and answered before the next one goes out, which is all the plugin needs
//! and keeps the code free of an async runtime.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::errno::Errno;

use crate::netns::{NetNs, NetNsError};

/// Receive buffer size: larger than any single datagram the kernel sends for
/// rtnetlink dumps (it caps them at 32 KiB).
const RECV_BUFFER: usize = 64 * 1024;

/// Errors talking to the kernel over rtnetlink.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("opening an rtnetlink socket")]
    Open {
        #[source]
        source: io::Error,
    },
    #[error("opening an rtnetlink socket inside the namespace")]
    Namespace {
        #[source]
        source: NetNsError,
    },
    #[error("sending an rtnetlink request")]
    Send {
        #[source]
        source: io::Error,
    },
    #[error("receiving an rtnetlink reply")]
    Receive {
        #[source]
        source: io::Error,
    },
    #[error("decoding an rtnetlink reply")]
    Decode {
        #[source]
        source: netlink_packet_core::DecodeError,
    },
    /// The kernel refused the request.
    #[error("the kernel answered {errno}: {}", errno.desc())]
    Kernel { errno: Errno },
    #[error("the kernel sent an overrun notice; the reply was lost")]
    Overrun,
}

impl NetlinkError {
    /// The errno the kernel answered with, if it refused the request.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NetlinkError::Kernel { errno } => Some(*errno),
            _ => None,
        }
    }

    /// "No such device / address / route": the object is already gone.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(Errno::ENODEV | Errno::ENOENT | Errno::ESRCH | Errno::EADDRNOTAVAIL)
        )
    }

    /// The object already exists.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(Errno::EEXIST)
    }
}

/// An rtnetlink socket. Not `Sync`: one request at a time.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    sequence: u32,
    buffer: Vec<u8>,
}

impl Netlink {
    /// Opens a socket in the calling thread's namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|source| NetlinkError::Open { source })?;
        socket
            .bind_auto()
            .map_err(|source| NetlinkError::Open { source })?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|source| NetlinkError::Open { source })?;
        // Strict checking lets dumps be filtered by the kernel (routes by
        // table and output interface) instead of in user space. Older
        // kernels without it still answer, just unfiltered, and every
        // caller filters again.
        let _ = socket.set_netlink_get_strict_chk(true);
        Ok(Netlink {
            socket,
            sequence: 0,
            buffer: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// Opens a socket inside `ns`; the socket keeps working in that
    /// namespace when used from any thread afterwards.
    pub fn open_in(ns: &NetNs) -> Result<Self, NetlinkError> {
        ns.run(Self::open)
            .map_err(|source| NetlinkError::Namespace { source })?
    }

    /// Sends a request that changes something and waits for the kernel's
    /// acknowledgement. `flags` are added to `NLM_F_REQUEST | NLM_F_ACK`
    /// (for example `NLM_F_CREATE | NLM_F_EXCL`).
    pub fn execute(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), NetlinkError> {
        self.exchange(message, NLM_F_REQUEST | NLM_F_ACK | flags)
            .map(drop)
    }

    /// Sends a request for one object and returns the kernel's answer.
    pub fn get(
        &mut self,
        message: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.exchange(message, NLM_F_REQUEST | NLM_F_ACK)
    }

    /// Sends a dump request and returns every object in the reply.
    pub fn dump(
        &mut self,
        message: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.exchange(message, NLM_F_REQUEST | NLM_F_DUMP)
    }

    fn exchange(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = sequence;
        let mut request = NetlinkMessage::new(header, NetlinkPayload::from(message));
        request.finalize();
        let mut bytes = vec![0u8; request.buffer_len()];
        request.serialize(&mut bytes);
        self.socket
            .send(&bytes, 0)
            .map_err(|source| NetlinkError::Send { source })?;

        let mut answers = Vec::new();
        loop {
            self.buffer.clear();
            self.socket
                .recv(&mut self.buffer, 0)
                .map_err(|source| NetlinkError::Receive { source })?;
            let mut offset = 0;
            while offset < self.buffer.len() {
                let datagram = &self.buffer[offset..];
                let length = NetlinkBuffer::new_checked(datagram)
                    .map_err(|source| NetlinkError::Decode { source })?
                    .length() as usize;
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[..length])
                    .map_err(|source| NetlinkError::Decode { source })?;
                // Netlink messages are 4-byte aligned inside a datagram.
                offset += (length + 3) & !3;
                if reply.header.sequence_number != sequence {
                    // A late answer to an earlier request; not ours.
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(answers),
                            Some(code) => Err(NetlinkError::Kernel {
                                errno: Errno::from_raw(-code.get()),
                            }),
                        };
                    }
                    NetlinkPayload::Done(done) => {
                        if done.code != 0 {
                            return Err(NetlinkError::Kernel {
                                errno: Errno::from_raw(-done.code),
                            });
                        }
                        return Ok(answers);
                    }
                    NetlinkPayload::Overrun(_) => return Err(NetlinkError::Overrun),
                    NetlinkPayload::Noop => {}
                    _ => {}
                }
            }
        }
    }
}
