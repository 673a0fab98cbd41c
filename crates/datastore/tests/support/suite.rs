//! The behaviour every engine must have, written once over `Backend`.

use std::process::Command;
use std::time::Duration;

use calico_datastore::{Backend, Error, Event, KeyValue, WatchStream};

use super::{Fixture, WORKER_COUNT, WORKER_DATASTORE, WORKER_KEY, next_event, worker_spec};

fn chain(e: &Error) -> String {
    calico_datastore::display_chain(e)
}

async fn expect_event(stream: &mut WatchStream) -> Event {
    match next_event(stream).await {
        Some(Ok(event)) => event,
        Some(Err(e)) => panic!("watch failed: {}", chain(&e)),
        None => panic!("watch ended early"),
    }
}

pub async fn create_and_get<F: Fixture>(fixture: &F) {
    let b = fixture.open().await;
    let key = "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool";
    let value = br#"{"kind":"IPPool","spec":{"cidr":"192.168.0.0/16"}}"#;

    assert_eq!(b.get(key).await.unwrap(), None);
    let before = b.revision().await.unwrap();
    let created = b.create(key, value).await.unwrap();
    assert_eq!(created.key, key);
    assert_eq!(created.value, value);
    assert!(
        created.mod_revision > before,
        "{created:?} not after revision {before}"
    );
    assert_eq!(created.create_revision, created.mod_revision);
    assert_eq!(b.revision().await.unwrap(), created.mod_revision);
    assert_eq!(b.get(key).await.unwrap(), Some(created.clone()));

    match b.create(key, b"other").await {
        Err(Error::AlreadyExists { key: k }) => assert_eq!(k, key),
        other => panic!("second create gave {other:?}"),
    }
    assert_eq!(
        b.get(key).await.unwrap().unwrap().value,
        value,
        "failed create changed the value"
    );
    assert_eq!(
        b.revision().await.unwrap(),
        created.mod_revision,
        "failed create moved the revision"
    );

    // Values are bytes, kept verbatim: empty and non-UTF-8 too.
    let empty = b.create("/calico/empty", b"").await.unwrap();
    assert_eq!(b.get("/calico/empty").await.unwrap().unwrap(), empty);
    assert!(empty.value.is_empty());
    let binary: Vec<u8> = (0..=255).collect();
    b.create("/calico/binary", &binary).await.unwrap();
    assert_eq!(
        b.get("/calico/binary").await.unwrap().unwrap().value,
        binary
    );

    // A second, independent handle sees the same data.
    let other = fixture.open().await;
    assert_eq!(other.get(key).await.unwrap().unwrap().value, value);
}

pub async fn list_by_prefix<F: Fixture>(fixture: &F) {
    let b = fixture.open().await;
    for key in [
        "/calico/ipam/v2/assignment/ipv4/block/10.0.1.0-26",
        "/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26",
        "/calico/ipam/v2/handle/k8s-pod-network.abc",
        "/calico/resources/v3/projectcalico.org/nodes/node-b",
        "/calico/resources/v3/projectcalico.org/nodes/node-a",
        "/calico/resources/v3/projectcalico.org/nodesx/not-a-node",
    ] {
        b.create(key, key.as_bytes()).await.unwrap();
    }
    let nodes = b
        .list("/calico/resources/v3/projectcalico.org/nodes/")
        .await
        .unwrap();
    let keys: Vec<&str> = nodes.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/calico/resources/v3/projectcalico.org/nodes/node-a",
            "/calico/resources/v3/projectcalico.org/nodes/node-b"
        ]
    );
    assert_eq!(nodes.kvs[0].value, nodes.kvs[0].key.as_bytes());
    assert_eq!(nodes.revision, b.revision().await.unwrap());

    let blocks = b.list("/calico/ipam/v2/assignment/").await.unwrap();
    assert_eq!(blocks.kvs.len(), 2);
    assert!(
        blocks.kvs[0].key < blocks.kvs[1].key,
        "not sorted: {:?}",
        blocks.kvs
    );

    let all = b.list("").await.unwrap();
    assert_eq!(all.kvs.len(), 6);
    let mut sorted = all.kvs.clone();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(all.kvs, sorted);

    let none = b.list("/calico/felix/").await.unwrap();
    assert!(none.kvs.is_empty());
    assert_eq!(none.revision, nodes.revision);
}

pub async fn update_is_compare_and_swap<F: Fixture>(fixture: &F) {
    let b = fixture.open().await;
    let key = "/calico/resources/v3/projectcalico.org/felixconfigurations/default";
    let created = b.create(key, b"v1").await.unwrap();

    let updated = b.update(key, b"v2", created.mod_revision).await.unwrap();
    assert_eq!(updated.value, b"v2");
    assert_eq!(updated.create_revision, created.create_revision);
    assert!(updated.mod_revision > created.mod_revision);
    assert_eq!(b.get(key).await.unwrap(), Some(updated.clone()));

    match b.update(key, b"stale", created.mod_revision).await {
        Err(Error::Conflict {
            key: k,
            expected,
            actual,
        }) => {
            assert_eq!(k, key);
            assert_eq!(expected, created.mod_revision);
            assert_eq!(actual, updated.mod_revision);
        }
        other => panic!("stale update gave {other:?}"),
    }
    assert_eq!(b.get(key).await.unwrap().unwrap().value, b"v2");

    for expected in [1, 0] {
        match b.update("/calico/missing", b"x", expected).await {
            Err(Error::NotFound { key }) => assert_eq!(key, "/calico/missing"),
            other => panic!("update of a missing key (expected {expected}) gave {other:?}"),
        }
    }
    assert_eq!(b.get("/calico/missing").await.unwrap(), None);
}

pub async fn put_is_unconditional<F: Fixture>(fixture: &F) {
    let b = fixture.open().await;
    let first = b.put("/calico/p", b"1").await.unwrap();
    assert_eq!(first.create_revision, first.mod_revision);
    let second = b.put("/calico/p", b"2").await.unwrap();
    assert_eq!(second.create_revision, first.create_revision);
    assert!(second.mod_revision > first.mod_revision);
    assert_eq!(b.get("/calico/p").await.unwrap(), Some(second));
}

pub async fn delete_semantics<F: Fixture>(fixture: &F) {
    let b = fixture.open().await;
    let key = "/calico/ipam/v2/handle/h1";
    match b.delete(key, None).await {
        Err(Error::NotFound { key: k }) => assert_eq!(k, key),
        other => panic!("delete of a missing key gave {other:?}"),
    }
    match b.delete(key, Some(5)).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("checked delete of a missing key gave {other:?}"),
    }

    let created = b.create(key, b"h").await.unwrap();
    let updated = b.update(key, b"h2", created.mod_revision).await.unwrap();
    match b.delete(key, Some(created.mod_revision)).await {
        Err(Error::Conflict {
            expected, actual, ..
        }) => {
            assert_eq!(
                (expected, actual),
                (created.mod_revision, updated.mod_revision)
            );
        }
        other => panic!("stale delete gave {other:?}"),
    }
    let deleted = b.delete(key, Some(updated.mod_revision)).await.unwrap();
    assert_eq!(deleted, updated, "delete returns the last value");
    assert_eq!(b.get(key).await.unwrap(), None);
    assert!(b.revision().await.unwrap() > updated.mod_revision);

    // Unconditional delete, and re-creation starts a new life.
    let again = b.create(key, b"h3").await.unwrap();
    assert!(again.create_revision > created.create_revision);
    let deleted = b.delete(key, None).await.unwrap();
    assert_eq!(deleted.value, b"h3");
    assert_eq!(
        b.list("/calico/ipam/").await.unwrap().kvs,
        Vec::<KeyValue>::new()
    );
}

pub async fn empty_keys_are_refused<F: Fixture>(fixture: &F) {
    let b = fixture.open().await;
    assert!(matches!(
        b.create("", b"x").await,
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(b.get("").await, Err(Error::InvalidKey { .. })));
    assert!(matches!(
        b.put("", b"x").await,
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        b.delete("", None).await,
        Err(Error::InvalidKey { .. })
    ));
}

pub async fn watch_sees_every_change_in_order<F: Fixture>(fixture: &F) {
    let b = fixture.open().await;
    let writer = fixture.open().await;
    let prefix = "/calico/resources/v3/projectcalico.org/profiles/";
    let start = b.list(prefix).await.unwrap();
    let mut watch = b.watch(prefix, start.revision).await.unwrap();

    let a = writer.create(&format!("{prefix}a"), b"1").await.unwrap();
    writer
        .create(
            "/calico/resources/v3/projectcalico.org/nodes/n",
            b"elsewhere",
        )
        .await
        .unwrap();
    let a2 = writer
        .update(&format!("{prefix}a"), b"2", a.mod_revision)
        .await
        .unwrap();
    let c = writer.put(&format!("{prefix}c"), b"3").await.unwrap();
    let gone = writer.delete(&format!("{prefix}a"), None).await.unwrap();
    let del_revision = writer.revision().await.unwrap();

    assert_eq!(
        expect_event(&mut watch).await,
        Event::Put {
            kv: a.clone(),
            prev: None
        }
    );
    assert_eq!(
        expect_event(&mut watch).await,
        Event::Put {
            kv: a2.clone(),
            prev: Some(a.clone())
        }
    );
    assert_eq!(
        expect_event(&mut watch).await,
        Event::Put { kv: c, prev: None }
    );
    assert_eq!(
        expect_event(&mut watch).await,
        Event::Delete {
            key: format!("{prefix}a"),
            mod_revision: del_revision,
            prev: Some(gone)
        }
    );

    // Many writes in a row arrive complete and in order.
    let mut last = 0;
    for i in 0..300 {
        writer
            .put(&format!("{prefix}bulk"), i.to_string().as_bytes())
            .await
            .unwrap();
    }
    for i in 0..300 {
        let event = expect_event(&mut watch).await;
        assert!(event.revision() > last, "out of order: {event:?}");
        last = event.revision();
        match event {
            Event::Put { kv, .. } => assert_eq!(kv.value, i.to_string().as_bytes()),
            other => panic!("unexpected {other:?}"),
        }
    }
}

pub async fn watch_replays_history<F: Fixture>(fixture: &F) {
    let b = fixture.open().await;
    let before = b.revision().await.unwrap();
    let mut revisions = Vec::new();
    for i in 0..5 {
        revisions.push(
            b.put(&format!("/calico/h/{i}"), b"x")
                .await
                .unwrap()
                .mod_revision,
        );
    }
    // Start from the middle of the history.
    let mut watch = b.watch("/calico/h/", revisions[1]).await.unwrap();
    for (i, revision) in revisions.iter().enumerate().skip(2) {
        let event = expect_event(&mut watch).await;
        assert_eq!(
            (event.key(), event.revision()),
            (format!("/calico/h/{i}").as_str(), *revision)
        );
    }
    // And from before everything.
    let mut watch = b.watch("/calico/h/", before).await.unwrap();
    for revision in &revisions {
        assert_eq!(expect_event(&mut watch).await.revision(), *revision);
    }
}

pub async fn compaction_makes_old_watches_resync<F: Fixture>(fixture: &F) {
    let b = fixture.open().await;
    let mut revisions = Vec::new();
    for i in 0..6 {
        revisions.push(
            b.put("/calico/c/k", i.to_string().as_bytes())
                .await
                .unwrap()
                .mod_revision,
        );
    }
    let compact_at = revisions[3];
    b.compact(compact_at).await.unwrap();
    // Compacting again, or to an older revision, is harmless.
    b.compact(compact_at).await.unwrap();
    b.compact(revisions[1]).await.unwrap();
    match b.compact(revisions[5] + 100).await {
        Err(Error::FutureRevision { requested, current }) => {
            assert_eq!((requested, current), (revisions[5] + 100, revisions[5]));
        }
        other => panic!("compacting to the future gave {other:?}"),
    }

    // A watch that needs trimmed history reports it and ends.
    let mut stale = b.watch("/calico/c/", revisions[0]).await.unwrap();
    match next_event(&mut stale).await {
        Some(Err(Error::Compacted {
            requested,
            compacted,
        })) => {
            assert_eq!((requested, compacted), (revisions[0] + 1, compact_at));
        }
        other => panic!("watch from a compacted revision gave {other:?}"),
    }
    assert!(
        next_event(&mut stale).await.is_none(),
        "stream continued after Compacted"
    );
    let message = Error::Compacted {
        requested: 1,
        compacted: 2,
    }
    .to_string();
    assert!(message.contains("list again"), "{message}");

    // From the compaction point on, history is still there.
    let mut fresh = b.watch("/calico/c/", compact_at - 1).await.unwrap();
    for revision in &revisions[3..] {
        assert_eq!(expect_event(&mut fresh).await.revision(), *revision);
    }

    // The resync path: list, then watch from the listing.
    let listing = b.list("/calico/c/").await.unwrap();
    assert_eq!(listing.kvs[0].value, b"5");
    let mut resumed = b.watch("/calico/c/", listing.revision).await.unwrap();
    let next = b.put("/calico/c/k", b"6").await.unwrap();
    assert_eq!(
        expect_event(&mut resumed).await,
        Event::Put {
            kv: next,
            prev: Some(listing.kvs[0].clone())
        }
    );
}

/// Processes doing compare-and-swap increments on one key lose no update,
/// and a watch in this process sees every increment, in order.
pub async fn processes_increment_without_losing_updates<F: Fixture>(
    fixture: &F,
    processes: usize,
    per_process: usize,
) {
    let b = fixture.open().await;
    let key = "/calico/test/counter";
    let created = b.create(key, b"0").await.unwrap();
    let mut watch = b.watch(key, created.mod_revision).await.unwrap();

    let exe = std::env::current_exe().expect("test binary path");
    let spec = worker_spec(&fixture.config());
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "cas_increment_worker",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(WORKER_DATASTORE, &spec)
                .env(WORKER_KEY, key)
                .env(WORKER_COUNT, per_process.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start worker process")
        })
        .collect();

    // Read the watch while the workers run.
    let total = processes * per_process;
    let mut expected_value = 1u64;
    let mut last_revision = created.mod_revision;
    while expected_value <= total as u64 {
        match expect_event(&mut watch).await {
            Event::Put { kv, prev } => {
                let value: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                assert_eq!(
                    value, expected_value,
                    "increments seen out of order or lost"
                );
                assert!(kv.mod_revision > last_revision);
                assert_eq!(prev.map(|p| p.mod_revision), Some(last_revision));
                last_revision = kv.mod_revision;
                expected_value += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().expect("wait for worker"))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut pids_seen = 0;
    for output in outputs {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "worker failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("worker pid"),
            "worker did not run: {stdout}"
        );
        pids_seen += 1;
    }
    assert_eq!(pids_seen, processes);
    let last = b.get(key).await.unwrap().unwrap();
    assert_eq!(last.value, total.to_string().as_bytes());
    assert_eq!(last.mod_revision, last_revision);
    // No event beyond the last increment.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watch.recv())
            .await
            .is_err(),
        "unexpected extra event"
    );
}
