//! What only the embedded engine has: a file on disk, shared by processes,
//! with SQLite's locking underneath.

use std::time::{Duration, Instant};

use calico_datastore::{
    Backend, DatastoreConfig, EmbeddedBackend, EmbeddedConfig, EmbeddedOptions, Error, Event,
    Execution, display_chain,
};

fn must<T>(r: Result<T, Error>) -> T {
    r.unwrap_or_else(|e| panic!("{}", display_chain(&e)))
}

#[tokio::test]
async fn creates_the_file_and_its_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var/lib/calico/calico.db");
    let backend = must(EmbeddedBackend::open(&path).await);
    assert!(path.is_file(), "{} not created", path.display());
    assert_eq!(backend.path(), path);
    assert_eq!(
        must(backend.revision().await),
        1,
        "a new store starts at revision 1"
    );
    let mode: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn data_and_revision_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calico.db");
    let written = {
        let backend = must(EmbeddedBackend::open(&path).await);
        must(backend.create("/calico/a", b"1").await);
        must(backend.put("/calico/b", b"2").await)
    };
    let backend = must(EmbeddedBackend::open(&path).await);
    assert_eq!(must(backend.get("/calico/b").await), Some(written.clone()));
    assert_eq!(must(backend.revision().await), written.mod_revision);
    assert!(must(backend.put("/calico/c", b"3").await).mod_revision > written.mod_revision);
}

#[tokio::test]
async fn unusable_paths_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, "x").unwrap();
    let path = file.join("calico.db");
    let error = EmbeddedBackend::open(&path).await.unwrap_err();
    let message = display_chain(&error);
    assert!(matches!(error, Error::Open { .. }), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("cannot create directory"), "{message}");

    // A directory where the file should be.
    let error = EmbeddedBackend::open(dir.path()).await.unwrap_err();
    let message = display_chain(&error);
    assert!(matches!(error, Error::Open { .. }), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );

    // A file that is not a database.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![b'x'; 8192]).unwrap();
    let error = EmbeddedBackend::open(&garbage).await.unwrap_err();
    let message = display_chain(&error);
    assert!(
        message.contains("garbage.db") && message.contains("not a database"),
        "{message}"
    );
}

#[tokio::test]
async fn a_file_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calico.db");
    drop(must(EmbeddedBackend::open(&path).await));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let message = display_chain(&EmbeddedBackend::open(&path).await.unwrap_err());
    assert!(message.contains("schema version 99"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[tokio::test]
async fn a_writer_blocked_too_long_times_out_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calico.db");
    let options = EmbeddedOptions {
        busy_timeout: Duration::from_millis(300),
        ..EmbeddedOptions::default()
    };
    let backend = must(EmbeddedBackend::open_with(&path, options).await);
    must(backend.create("/calico/k", b"v").await);

    // Another "process" holds the write lock.
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let start = Instant::now();
    let error = backend.put("/calico/k", b"w").await.unwrap_err();
    let elapsed = start.elapsed();
    let message = display_chain(&error);
    assert!(
        matches!(
            error,
            Error::Timeout {
                operation: "put",
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    // Reads still work while the lock is held (WAL).
    assert_eq!(must(backend.get("/calico/k").await).unwrap().value, b"v");

    holder.execute_batch("ROLLBACK").unwrap();
    must(backend.put("/calico/k", b"w").await);
    assert_eq!(must(backend.get("/calico/k").await).unwrap().value, b"w");
}

#[tokio::test]
async fn history_is_trimmed_automatically() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        history: Some(100),
        ..EmbeddedOptions::default()
    };
    let backend = must(EmbeddedBackend::open_with(dir.path().join("calico.db"), options).await);
    for i in 0..1100 {
        must(backend.put("/calico/k", i.to_string().as_bytes()).await);
    }
    let revision = must(backend.revision().await);
    assert_eq!(revision, 1101);
    // Trimmed at revision 1000 down to the last 100 revisions.
    let mut old = must(backend.watch("/calico/", 1).await);
    match tokio::time::timeout(Duration::from_secs(10), old.recv())
        .await
        .unwrap()
    {
        Some(Err(Error::Compacted { compacted, .. })) => assert_eq!(compacted, 900),
        other => panic!("expected Compacted, got {other:?}"),
    }
    let mut recent = must(backend.watch("/calico/", 950).await);
    let first = tokio::time::timeout(Duration::from_secs(10), recent.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.revision(), 951);
}

#[tokio::test]
async fn watch_sees_writes_from_another_handle_on_the_same_file() {
    // Two handles share nothing in memory: like two processes, the watcher
    // learns about the other's commits from the file alone.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calico.db");
    let watcher = must(EmbeddedBackend::open(&path).await);
    let config = DatastoreConfig::Embedded(EmbeddedConfig { path: path.clone() });
    let writer = must(calico_datastore::connect(&config).await);
    let start = must(watcher.revision().await);
    let mut watch = must(watcher.watch("/calico/", start).await);
    let begin = Instant::now();
    let written = must(writer.put("/calico/x", b"from elsewhere").await);
    let event = tokio::time::timeout(Duration::from_secs(10), watch.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        Event::Put {
            kv: written,
            prev: None
        }
    );
    // Polled every few milliseconds, not seconds.
    assert!(
        begin.elapsed() < Duration::from_millis(500),
        "{:?}",
        begin.elapsed()
    );
}

#[tokio::test]
async fn calling_thread_execution_keeps_every_guarantee() {
    // The way a CNI plugin invocation opens the store: one task on a
    // current-thread runtime, SQL on that thread.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calico.db");
    let options = EmbeddedOptions {
        execution: Execution::CallingThread,
        ..EmbeddedOptions::default()
    };
    let written = {
        let backend = must(EmbeddedBackend::open_with(&path, options.clone()).await);
        let created = must(backend.create("/calico/a", b"1").await);
        assert!(matches!(
            backend.create("/calico/a", b"2").await,
            Err(Error::AlreadyExists { .. })
        ));
        assert!(matches!(
            backend
                .update("/calico/a", b"2", created.mod_revision + 1)
                .await,
            Err(Error::Conflict { .. })
        ));
        let updated = must(
            backend
                .update("/calico/a", b"2", created.mod_revision)
                .await,
        );
        let mut watch = must(backend.watch("/calico/", created.mod_revision).await);
        let event = tokio::time::timeout(Duration::from_secs(10), watch.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(event.revision(), updated.mod_revision);
        updated
    };
    // The last handle closed without checkpointing: the commits are in
    // the WAL, which stays, and every reader sees them.
    assert!(dir.path().join("calico.db-wal").is_file());
    let value: Vec<u8> = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT value FROM kv WHERE key = ?1",
            [b"/calico/a".as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(value, b"2");
    let backend = must(EmbeddedBackend::open_with(&path, options).await);
    assert_eq!(must(backend.get("/calico/a").await), Some(written));
}
