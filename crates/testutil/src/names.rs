//! Free ports and unique names for resources tests create (namespaces,
//! interfaces, keys, directories).

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Ports already handed out by this process, so that two tests running in
/// parallel never receive the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that is free for both TCP and UDP right now and has not
/// been returned before by this process.
///
/// The port is released before it is returned, so another process could in
/// principle take it first; the kernel hands out ephemeral ports in rotation,
/// which makes that rare in practice.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap_or_else(|e| {
            panic!("cannot bind a TCP socket on 127.0.0.1 to find a free port: {e}")
        });
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("cannot read the address of a bound TCP socket: {e}"))
            .port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            continue;
        }
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free loopback port found after 1000 attempts");
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `prefix` followed by 8 characters from `[a-z0-9]` that differ between
/// calls, between concurrent processes, and between runs.
///
/// Keep `prefix` to 7 characters or fewer when the name is used for a network
/// interface (the kernel allows 15).
pub fn unique_name(prefix: &str) -> String {
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Mix the process id, a per-process counter and the clock; the counter
    // guarantees uniqueness within a process, the pid between live
    // processes, and the clock between runs.
    let mut x =
        (u64::from(std::process::id()) << 32) ^ count.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nanos;
    // splitmix64 finaliser: spreads the bits so the 8 characters all vary.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let mut name = String::with_capacity(prefix.len() + 8);
    name.push_str(prefix);
    for _ in 0..8 {
        name.push(ALPHABET[(x % 36) as usize] as char);
        x /= 36;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..20).map(|_| free_port()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "ports repeated: {ports:?}");
        for port in ports {
            assert_ne!(port, 0);
            TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .unwrap_or_else(|e| panic!("port {port} returned as free cannot be bound: {e}"));
        }
    }

    #[test]
    fn unique_names_keep_prefix_length_and_alphabet() {
        let names: Vec<String> = (0..1000).map(|_| unique_name("cali")).collect();
        let distinct: HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        for name in &names {
            assert!(name.starts_with("cali"));
            assert_eq!(name.len(), 12, "{name}");
            assert!(name[4..].bytes().all(|b| ALPHABET.contains(&b)), "{name}");
        }
    }
}
