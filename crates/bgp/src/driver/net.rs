//! Sockets: listeners, outgoing connections (optionally from a source
//! address, inside a network namespace, with a TCP MD5 key), and the reader
//! and writer task of each connection.
//!
//! TCP MD5 keys (BGP passwords) are set with [`calico_netlink::tcp_md5`]:
//! on each outgoing socket before it connects, and on the listeners for
//! connections the peer makes (accepted sockets inherit the listener's
//! keys).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use calico_netlink::{NetNs, tcp_md5};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::Input;
use crate::session::ConnId;
use crate::wire::{Message, decode, message_length};

/// What the socket code needs from the driver's configuration.
#[derive(Debug, Clone)]
pub(super) struct SocketContext {
    pub netns: Option<Arc<NetNs>>,
}

impl SocketContext {
    /// A new TCP socket, made inside the namespace when there is one.
    fn socket(&self, domain: Domain) -> io::Result<Socket> {
        let make = move || Socket::new(domain, Type::STREAM, Some(Protocol::TCP));
        match &self.netns {
            None => make(),
            Some(ns) => ns.run(make).map_err(io::Error::other)?,
        }
    }

    /// Sets (or with `None` clears) the MD5 key for `peer` on a socket.
    pub(super) fn set_md5(
        &self,
        socket: &impl AsFd,
        peer: IpAddr,
        key: Option<&str>,
    ) -> io::Result<()> {
        let result = match key {
            Some(key) => tcp_md5::set_key(socket, peer, key.as_bytes()),
            None => tcp_md5::clear_key(socket, peer),
        };
        result.map_err(|e| io::Error::other(crate::error_chain(&e)))
    }

    /// A listener on `address`.
    pub(super) fn listen(&self, address: SocketAddr) -> io::Result<TcpListener> {
        let socket = self.socket(Domain::for_address(address))?;
        socket.set_reuse_address(true)?;
        if address.is_ipv6() {
            // `[::]` also takes IPv4 peers, as BIRD's listener does.
            socket.set_only_v6(false)?;
        }
        socket.bind(&address.into())?;
        socket.listen(128)?;
        socket.set_nonblocking(true)?;
        TcpListener::from_std(socket.into())
    }

    /// Connects to `peer`, from `source` when given.
    pub(super) async fn connect(
        &self,
        peer: SocketAddr,
        source: Option<IpAddr>,
        password: Option<&str>,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        let socket = self.socket(Domain::for_address(peer))?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        if let Some(source) = source {
            socket.bind(&SocketAddr::new(source, 0).into())?;
        }
        if password.is_some() {
            self.set_md5(&socket, peer.ip(), password)?;
        }
        let socket = TcpSocket::from_std_stream(socket.into());
        match tokio::time::timeout(timeout, socket.connect(peer)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        }
    }
}

/// What the writer task is told.
#[derive(Debug)]
pub(super) enum Write {
    Bytes(Vec<u8>),
    /// Flush and close.
    Close,
}

/// Reads, frames and decodes messages from one connection until it closes
/// or sends something undecodable.
pub(super) async fn read_loop(
    peer: IpAddr,
    conn: ConnId,
    mut reader: OwnedReadHalf,
    tx: mpsc::Sender<Input>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut start = 0;
    // We always offer four-octet AS numbers; the peer's OPEN says whether
    // it does too, which decides the width in its UPDATEs.
    let mut four_octet_as = true;
    loop {
        loop {
            match message_length(&buf[start..]) {
                Ok(Some(length)) => {
                    let input = match decode(&buf[start..start + length], four_octet_as) {
                        Ok(message) => {
                            if let Message::Open(open) = &message {
                                four_octet_as = open.four_octet_as().is_some();
                            }
                            Input::Message {
                                peer,
                                conn,
                                message,
                            }
                        }
                        Err(error) => Input::DecodeError { peer, conn, error },
                    };
                    let fatal = matches!(input, Input::DecodeError { .. });
                    if tx.send(input).await.is_err() || fatal {
                        return;
                    }
                    start += length;
                }
                Ok(None) => break,
                Err(error) => {
                    let _ = tx.send(Input::DecodeError { peer, conn, error }).await;
                    return;
                }
            }
        }
        buf.drain(..start);
        start = 0;
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(1 << 16);
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) => {
                let _ = tx
                    .send(Input::Closed {
                        peer,
                        conn,
                        reason: "closed by peer".to_string(),
                    })
                    .await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx
                    .send(Input::Closed {
                        peer,
                        conn,
                        reason: e.to_string(),
                    })
                    .await;
                return;
            }
        }
    }
}

/// Writes what the event loop sends, coalescing queued messages into one
/// write, until told to close.
pub(super) async fn write_loop(
    peer: IpAddr,
    conn: ConnId,
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Write>,
    tx: mpsc::Sender<Input>,
) {
    let mut out = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut close = false;
        let mut next = Some(first);
        while let Some(write) = next {
            match write {
                Write::Bytes(bytes) => out.extend_from_slice(&bytes),
                Write::Close => {
                    close = true;
                    break;
                }
            }
            next = if out.len() < (1 << 20) {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !out.is_empty() {
            if let Err(e) = writer.write_all(&out).await {
                let _ = tx
                    .send(Input::Closed {
                        peer,
                        conn,
                        reason: format!("write: {e}"),
                    })
                    .await;
                return;
            }
            out.clear();
        }
        if close {
            let _ = writer.shutdown().await;
            return;
        }
    }
}
