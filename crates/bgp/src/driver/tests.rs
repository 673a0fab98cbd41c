//! Two drivers over real TCP on loopback (127.0.0.1 and 127.0.0.2, ports
//! chosen by the kernel), with memory sinks. No root needed.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::*;
use crate::session::State;
use crate::sink::MemorySink;
use crate::wire::{Notification, code, header, message_length};

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

struct Running {
    handle: SpeakerHandle,
    sink: MemorySink,
    port: u16,
    task: JoinHandle<()>,
}

fn start(address: Ipv4Addr, asn: u32) -> Running {
    let sink = MemorySink::new();
    let config = DriverConfig {
        speaker: SpeakerConfig {
            local_as: asn,
            router_id: address,
            cluster_id: None,
            address_v4: Some(address),
            address_v6: None,
        },
        listen: vec![SocketAddr::new(IpAddr::V4(address), 0)],
        netns: None,
    };
    let (driver, handle) = Driver::new(config, Box::new(sink.clone())).unwrap();
    let port = driver.local_addresses()[0].port();
    let task = tokio::spawn(driver.run());
    Running {
        handle,
        sink,
        port,
        task,
    }
}

fn peer(address: Ipv4Addr, port: u16, from: Ipv4Addr, asn: u32, passive: bool) -> PeerConfig {
    let mut p = PeerConfig::new(IpAddr::V4(address), asn);
    p.port = port;
    p.source_address = Some(IpAddr::V4(from));
    p.passive = passive;
    p.connect_retry = Duration::from_millis(500);
    p
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn state_of(r: &Running, peer: Ipv4Addr) -> Option<State> {
    let report = r.handle.status().await.ok()?;
    report
        .peers
        .iter()
        .find(|p| p.address == IpAddr::V4(peer))
        .map(|p| p.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_over_tcp_exchange_and_withdraw_routes() {
    let a = start(A, 64512);
    let b = start(B, 64512);
    a.handle
        .set_peer(peer(B, b.port, A, 64512, false))
        .await
        .unwrap();
    b.handle
        .set_peer(peer(A, a.port, B, 64512, true))
        .await
        .unwrap();
    eventually("the session", async || {
        (state_of(&a, B).await == Some(State::Established)).then_some(())
    })
    .await;

    let block: IpNet = "192.168.7.0/26".parse().unwrap();
    a.handle.originate(Origination::new(block)).await.unwrap();
    let via = eventually("the route at b", async || {
        b.sink.routes().get(&block).copied()
    })
    .await;
    assert_eq!(via, IpAddr::V4(A));

    a.handle.withdraw(block).await.unwrap();
    eventually("the withdrawal at b", async || {
        b.sink.routes().is_empty().then_some(())
    })
    .await;

    // a shuts down: b hears Cease and drops what a had sent.
    a.handle.originate(Origination::new(block)).await.unwrap();
    eventually("the route again", async || {
        b.sink.routes().get(&block).copied()
    })
    .await;
    a.handle.shutdown().await.unwrap();
    a.task.await.unwrap();
    eventually("b noticing", async || {
        (state_of(&b, A).await != Some(State::Established)).then_some(())
    })
    .await;
    eventually("the routes gone", async || {
        b.sink.routes().is_empty().then_some(())
    })
    .await;
    let report = b.handle.status().await.unwrap();
    assert!(
        report.peers[0]
            .info
            .as_deref()
            .unwrap()
            .contains("Administrative shutdown")
    );
    b.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_a_notification_and_a_closed_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = start(B, 64512);
    b.handle.set_peer(peer(A, 1, B, 64512, true)).await.unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(A), 0)).unwrap();
    let mut stream = socket
        .connect(SocketAddr::new(IpAddr::V4(B), b.port))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: bgp\r\n\r\n")
        .await
        .unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes))
        .await
        .expect("the speaker closes the connection")
        .unwrap();
    let mut messages = Vec::new();
    let mut rest = &bytes[..];
    while let Ok(Some(length)) = message_length(rest) {
        messages.push(crate::wire::decode(&rest[..length], true).unwrap());
        rest = &rest[length..];
    }
    assert!(
        matches!(messages.first(), Some(Message::Open(_))),
        "{messages:?}"
    );
    assert_eq!(
        messages.last(),
        Some(&Message::Notification(Notification::new(
            code::MESSAGE_HEADER,
            header::CONNECTION_NOT_SYNCHRONIZED,
            vec![]
        )))
    );
    b.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_peers_are_refused() {
    let b = start(B, 64512);
    // No peer configured for A: the connection is closed at once.
    let stream = tokio::net::TcpSocket::new_v4().unwrap();
    stream.bind(SocketAddr::new(IpAddr::V4(A), 0)).unwrap();
    let mut stream = stream
        .connect(SocketAddr::new(IpAddr::V4(B), b.port))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
    )
    .await
    .unwrap()
    .unwrap_or(0);
    assert_eq!(n, 0, "closed without a word");
    b.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_must_match_and_a_bad_one_is_reported_plainly() {
    let a = start(A, 64512);
    let b = start(B, 64512);
    let with = |mut p: PeerConfig, password: &str| {
        p.password = Some(password.to_string());
        p
    };
    // Different passwords: both sides keep trying, neither gets through.
    a.handle
        .set_peer(with(peer(B, b.port, A, 64512, false), "one"))
        .await
        .unwrap();
    b.handle
        .set_peer(with(peer(A, a.port, B, 64512, false), "two"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_ne!(state_of(&a, B).await, Some(State::Established));
    assert_ne!(state_of(&b, A).await, Some(State::Established));

    // The same password on both: the session comes up.
    b.handle
        .set_peer(with(peer(A, a.port, B, 64512, false), "one"))
        .await
        .unwrap();
    eventually("the session", async || {
        (state_of(&a, B).await == Some(State::Established)).then_some(())
    })
    .await;

    // A key the kernel cannot take is the peer's error, not a crash.
    let too_long = "k".repeat(81);
    let c = Ipv4Addr::new(127, 0, 0, 3);
    b.handle
        .set_peer(with(peer(c, 179, B, 64512, false), &too_long))
        .await
        .unwrap();
    let info = eventually("the error", async || {
        let report = b.handle.status().await.ok()?;
        let peer = report.peers.iter().find(|p| p.address == IpAddr::V4(c))?;
        peer.info.clone()
    })
    .await;
    assert!(info.contains("81 bytes long"), "{info}");
    assert_eq!(state_of(&b, A).await, Some(State::Established));
    a.handle.shutdown().await.unwrap();
    b.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_thousands_of_updates_all_arrive() {
    // Each origination is its own UPDATE, so the receiving loop sees far
    // more inputs than it handles per batch.
    let a = start(A, 64512);
    let b = start(B, 64512);
    a.handle
        .set_peer(peer(B, b.port, A, 64512, false))
        .await
        .unwrap();
    b.handle
        .set_peer(peer(A, a.port, B, 64512, true))
        .await
        .unwrap();
    eventually("the session", async || {
        (state_of(&a, B).await == Some(State::Established)).then_some(())
    })
    .await;
    let count = 3000u32;
    for i in 0..count {
        let prefix = IpNet::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8))), 24).unwrap();
        a.handle.originate(Origination::new(prefix)).await.unwrap();
    }
    eventually("every route at b", async || {
        (b.sink.routes().len() == count as usize).then_some(())
    })
    .await;
    a.handle.shutdown().await.unwrap();
    b.handle.shutdown().await.unwrap();
}
