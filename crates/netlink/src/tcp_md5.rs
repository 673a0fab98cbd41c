//! TCP MD5 signatures (RFC 2385), what BGP calls a peer password.
//!
//! The kernel keeps a list of keys per socket, one per peer address; a
//! segment to or from a peer with a key must carry a valid signature, and
//! segments from peers without one are unaffected. A listening socket's keys
//! are copied to the connections it accepts, so a BGP speaker sets the key
//! of every peer with a password on its listeners, and on each outgoing
//! socket before connecting.
//!
//! Setting a key is `setsockopt(TCP_MD5SIG)` with a C struct that neither
//! `nix` nor `socket2` offers, so this module fills it in itself (the
//! layout is `struct tcp_md5sig` from `linux/tcp.h`; the option number and
//! the key length limit come from `libc`).
//!
//! The key's address must be of the socket's family: an IPv4 peer on a
//! dual-stack IPv6 socket is keyed by its IPv4-mapped address, which the
//! kernel files as an IPv4 key. [`set_key`] and [`clear_key`] take care of
//! that by asking the socket for its family.

use std::io;
use std::mem;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, getsockname};

/// The longest key the kernel takes, in bytes.
pub const MAX_KEY_LEN: usize = libc::TCP_MD5SIG_MAXKEYLEN;

/// Errors setting or clearing a TCP MD5 key.
#[derive(Debug, thiserror::Error)]
pub enum TcpMd5Error {
    #[error(
        "the TCP MD5 key for {peer} is {len} bytes long; the kernel takes at most {MAX_KEY_LEN}"
    )]
    KeyTooLong { peer: IpAddr, len: usize },
    #[error("the TCP MD5 key for {peer} is empty (to remove a key, clear it)")]
    EmptyKey { peer: IpAddr },
    #[error("reading the address family of the socket")]
    Family {
        #[source]
        source: nix::Error,
    },
    #[error("the socket is neither IPv4 nor IPv6, so it cannot carry TCP MD5 keys")]
    NotInet,
    #[error("an IPv4 socket cannot carry a TCP MD5 key for IPv6 peer {peer}")]
    Ipv6PeerOnIpv4Socket { peer: IpAddr },
    #[error("setting the TCP MD5 key for {peer}")]
    Set {
        peer: IpAddr,
        #[source]
        source: io::Error,
    },
    #[error("clearing the TCP MD5 key for {peer}")]
    Clear {
        peer: IpAddr,
        #[source]
        source: io::Error,
    },
}

/// Sets the TCP MD5 key for `peer` on `socket`, replacing any key it had.
/// Set it before `connect` on an outgoing socket, and on a listener before
/// the peer connects.
pub fn set_key(socket: &impl AsFd, peer: IpAddr, key: &[u8]) -> Result<(), TcpMd5Error> {
    if key.is_empty() {
        return Err(TcpMd5Error::EmptyKey { peer });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(TcpMd5Error::KeyTooLong {
            peer,
            len: key.len(),
        });
    }
    setsockopt_md5(socket, peer, key).map_err(|source| match source {
        Md5Failure::Family(e) => e,
        Md5Failure::Io(source) => TcpMd5Error::Set { peer, source },
    })
}

/// Removes the TCP MD5 key for `peer` from `socket`. Removing a key that
/// is not there succeeds.
pub fn clear_key(socket: &impl AsFd, peer: IpAddr) -> Result<(), TcpMd5Error> {
    match setsockopt_md5(socket, peer, &[]) {
        Ok(()) => Ok(()),
        Err(Md5Failure::Io(e)) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(Md5Failure::Family(e)) => Err(e),
        Err(Md5Failure::Io(source)) => Err(TcpMd5Error::Clear { peer, source }),
    }
}

enum Md5Failure {
    Family(TcpMd5Error),
    Io(io::Error),
}

/// `struct tcp_md5sig` from `linux/tcp.h`, with the address as the bytes
/// of a `struct sockaddr_storage` (same size and offsets; the kernel copies
/// it without alignment needs). With `TCP_MD5SIG` (not the extended
/// option) the kernel reads only the address, the key length and the key;
/// the other fields stay zero.
#[repr(C)]
struct TcpMd5Sig {
    addr: [u8; SOCKADDR_STORAGE_LEN],
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_KEY_LEN],
}

const SOCKADDR_STORAGE_LEN: usize = mem::size_of::<libc::sockaddr_storage>();
const _: () = assert!(mem::size_of::<TcpMd5Sig>() == SOCKADDR_STORAGE_LEN + 8 + MAX_KEY_LEN);

/// Sets `key` for `peer` (an empty key removes it).
fn setsockopt_md5(socket: &impl AsFd, peer: IpAddr, key: &[u8]) -> Result<(), Md5Failure> {
    debug_assert!(key.len() <= MAX_KEY_LEN);
    let fd = socket.as_fd();
    let family = getsockname::<SockaddrStorage>(fd.as_raw_fd())
        .map_err(|source| Md5Failure::Family(TcpMd5Error::Family { source }))?
        .family();
    let peer = peer.to_canonical();
    let mut sig = TcpMd5Sig {
        addr: [0; SOCKADDR_STORAGE_LEN],
        flags: 0,
        prefix_len: 0,
        key_len: key.len() as u16,
        ifindex: 0,
        key: [0; MAX_KEY_LEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    // `sockaddr_in`: family (host order), port, address; `sockaddr_in6`:
    // family, port, flow info, address, scope id. Port and the rest stay 0.
    match (family, peer) {
        (Some(AddressFamily::Inet), IpAddr::V4(v4)) => {
            let family = libc::AF_INET as libc::sa_family_t;
            sig.addr[..2].copy_from_slice(&family.to_ne_bytes());
            sig.addr[4..8].copy_from_slice(&v4.octets());
        }
        (Some(AddressFamily::Inet), IpAddr::V6(_)) => {
            return Err(Md5Failure::Family(TcpMd5Error::Ipv6PeerOnIpv4Socket {
                peer,
            }));
        }
        (Some(AddressFamily::Inet6), _) => {
            let v6 = match peer {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let family = libc::AF_INET6 as libc::sa_family_t;
            sig.addr[..2].copy_from_slice(&family.to_ne_bytes());
            sig.addr[8..24].copy_from_slice(&v6.octets());
        }
        _ => return Err(Md5Failure::Family(TcpMd5Error::NotInet)),
    }

    // SAFETY: `fd` is an open descriptor for the duration of the call
    // (borrowed from `socket`); the pointer and length describe `sig`, a
    // fully initialised `struct tcp_md5sig` that outlives the call and that
    // the kernel only reads.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast::<libc::c_void>(),
            mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Md5Failure::Io(io::Error::last_os_error()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, SocketAddr, TcpListener};
    use std::time::Duration;

    use std::net::Ipv6Addr;

    use super::*;

    /// A listener on loopback (`127.0.0.1` or `::1`), port 0.
    fn listener(v6: bool) -> TcpListener {
        let address: SocketAddr = if v6 {
            "[::1]:0".parse().unwrap()
        } else {
            "127.0.0.1:0".parse().unwrap()
        };
        TcpListener::bind(address).expect("binding a loopback listener")
    }

    fn loopback(v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    }

    /// Connects to `to` with `key` (if any) for its address; whether a
    /// byte made it through within a second.
    fn connects(to: &TcpListener, key: Option<&[u8]>) -> bool {
        let to = to.local_addr().unwrap();
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(to),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        if let Some(key) = key {
            set_key(&socket, to.ip(), key).unwrap();
        }
        match socket.connect_timeout(&to.into(), Duration::from_secs(1)) {
            Ok(()) => {
                let mut stream = std::net::TcpStream::from(socket);
                stream.write_all(b"x").is_ok()
            }
            Err(_) => false,
        }
    }

    fn accept_one(listener: &TcpListener) -> bool {
        listener.set_nonblocking(true).unwrap();
        for _ in 0..50 {
            if let Ok((mut stream, _)) = listener.accept() {
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(1)))
                    .unwrap();
                let mut byte = [0u8; 1];
                return stream.read_exact(&mut byte).is_ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn matching_keys_connect_and_mismatched_ones_do_not() {
        for v6 in [false, true] {
            let peer = loopback(v6);
            let server = listener(v6);
            set_key(&server, peer, b"s3cret").unwrap();

            assert!(connects(&server, Some(b"s3cret")), "v6={v6}: same key");
            assert!(accept_one(&server), "v6={v6}: accepted");

            assert!(!connects(&server, Some(b"wrong")), "v6={v6}: other key");
            assert!(!connects(&server, None), "v6={v6}: no key");

            // Without the listener's key, a signed SYN is dropped too, and
            // an unsigned one goes through again.
            clear_key(&server, peer).unwrap();
            assert!(!connects(&server, Some(b"s3cret")), "v6={v6}: only ours");
            assert!(connects(&server, None), "v6={v6}: no keys at all");
        }
    }

    #[test]
    fn ipv4_peer_on_a_dual_stack_socket_uses_the_mapped_address() {
        // `[::]` takes IPv4 connections too (net.ipv6.bindv6only is 0).
        let server = TcpListener::bind("[::]:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let ipv4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        set_key(&server, ipv4, b"k").unwrap();
        let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let attempt = |key: Option<&[u8]>| {
            let client =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            if let Some(key) = key {
                set_key(&client, ipv4, key).unwrap();
            }
            client
                .connect_timeout(&target.into(), Duration::from_secs(1))
                .is_ok()
        };
        assert!(attempt(Some(b"k")));
        assert!(!attempt(Some(b"other")));
        assert!(!attempt(None));
    }

    #[test]
    fn bad_keys_and_families_are_refused_clearly() {
        let v4 = listener(false);
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let long = [b'k'; MAX_KEY_LEN + 1];
        let e = set_key(&v4, peer, &long).unwrap_err();
        assert!(matches!(e, TcpMd5Error::KeyTooLong { len: 81, .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "the TCP MD5 key for 127.0.0.1 is 81 bytes long; the kernel takes at most 80"
        );
        set_key(&v4, peer, &long[..MAX_KEY_LEN]).unwrap();
        assert!(matches!(
            set_key(&v4, peer, b""),
            Err(TcpMd5Error::EmptyKey { .. })
        ));
        assert!(matches!(
            set_key(&v4, IpAddr::V6(Ipv6Addr::LOCALHOST), b"k"),
            Err(TcpMd5Error::Ipv6PeerOnIpv4Socket { .. })
        ));
        // Clearing is idempotent.
        clear_key(&v4, peer).unwrap();
        clear_key(&v4, peer).unwrap();
        // Not an internet socket.
        let (unix, _) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(matches!(
            set_key(&unix, peer, b"k"),
            Err(TcpMd5Error::NotInet)
        ));
    }
}
