//! Route requests sent in bulk: many rtnetlink requests per `send`, no
//! acknowledgement asked for but the last, so installing a full table costs
//! a few hundred system calls instead of two per route. The kernel still
//! reports each failure, by sequence number, before it acknowledges the
//! last request; requests whose fate is unknown (the error queue
//! overflowed) are reported as failed so the caller can redo them one by
//! one.

use std::collections::BTreeSet;
use std::io;

use calico_netlink::NetNs;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Bytes of requests per `send`.
const SEND_CHUNK: usize = 32 * 1024;
/// Receive buffer asked of the kernel, so that many failures fit.
const RECV_SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// A raw rtnetlink socket for bulk requests.
#[derive(Debug)]
pub(super) struct Pipeline {
    socket: Socket,
    sequence: u32,
    buffer: Vec<u8>,
}

/// What happened to a bulk of requests: the indexes that failed, with the
/// errno when known.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub failed: Vec<(usize, Option<i32>)>,
}

impl Pipeline {
    pub(super) fn open(netns: Option<&NetNs>) -> io::Result<Pipeline> {
        let make = || -> io::Result<Socket> {
            let mut socket = Socket::new(NETLINK_ROUTE)?;
            socket.bind_auto()?;
            socket.connect(&SocketAddr::new(0, 0))?;
            // Best effort: a larger queue for error reports.
            let _ = socket.set_rx_buf_sz(RECV_SOCKET_BUFFER);
            Ok(socket)
        };
        let socket = match netns {
            None => make()?,
            Some(ns) => ns.run(make).map_err(io::Error::other)??,
        };
        Ok(Pipeline {
            socket,
            sequence: 0,
            buffer: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends `requests` (message and flags beyond REQUEST), and waits for
    /// the kernel to have handled them all.
    pub(super) fn run(&mut self, requests: Vec<(RouteNetlinkMessage, u16)>) -> Outcome {
        let mut outcome = Outcome::default();
        if requests.is_empty() {
            return outcome;
        }
        let first = self.sequence.wrapping_add(1);
        let count = requests.len();
        let last = first.wrapping_add(count as u32 - 1);
        self.sequence = last;
        let mut chunk = Vec::with_capacity(SEND_CHUNK + 1024);
        for (i, (message, flags)) in requests.into_iter().enumerate() {
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | flags | if i + 1 == count { NLM_F_ACK } else { 0 };
            header.sequence_number = first.wrapping_add(i as u32);
            let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
            packet.finalize();
            let at = chunk.len();
            chunk.resize(at + packet.buffer_len(), 0);
            packet.serialize(&mut chunk[at..]);
            if chunk.len() >= SEND_CHUNK && self.socket.send(&chunk, 0).is_err() {
                // Nothing of this chunk is known to have been applied.
                return Self::all_failed(count);
            }
            if chunk.len() >= SEND_CHUNK {
                chunk.clear();
            }
        }
        if !chunk.is_empty() && self.socket.send(&chunk, 0).is_err() {
            return Self::all_failed(count);
        }
        // Read error reports until the last request's acknowledgement.
        let mut reported = BTreeSet::new();
        loop {
            self.buffer.clear();
            if self.socket.recv(&mut self.buffer, 0).is_err() {
                // Overflowed or broken: anything not reported is unknown.
                return Self::all_failed(count);
            }
            let mut offset = 0;
            while offset < self.buffer.len() {
                let datagram = &self.buffer[offset..];
                let Ok(length) = NetlinkBuffer::new_checked(datagram).map(|b| b.length() as usize)
                else {
                    break;
                };
                if length == 0 || length > datagram.len() {
                    break;
                }
                offset += (length + 3) & !3;
                let Ok(reply) =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[..length])
                else {
                    continue;
                };
                let seq = reply.header.sequence_number;
                let index = seq.wrapping_sub(first) as usize;
                if index >= count {
                    continue;
                }
                if let NetlinkPayload::Error(error) = reply.payload {
                    if let Some(code) = error.code
                        && reported.insert(index)
                    {
                        outcome.failed.push((index, Some(-code.get())));
                    }
                    if seq == last {
                        return outcome;
                    }
                }
            }
        }
    }

    fn all_failed(count: usize) -> Outcome {
        Outcome {
            failed: (0..count).map(|i| (i, None)).collect(),
        }
    }
}
