//! A dropped watch releases its polling thread. Alone in its own test
//! binary so that no other test's watch threads are counted.

use std::time::{Duration, Instant};

use calico_datastore::{Backend, EmbeddedBackend};

#[tokio::test]
async fn dropping_a_watch_stops_its_thread() {
    fn watch_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
            .filter(|name| name.trim() == "datastore-watch")
            .count()
    }
    let dir = tempfile::tempdir().unwrap();
    let backend = EmbeddedBackend::open(dir.path().join("calico.db"))
        .await
        .unwrap();
    assert_eq!(watch_threads(), 0);
    let watch = backend.watch("/calico/dropped/", 0).await.unwrap();
    let second = backend.watch("/calico/", 0).await.unwrap();
    // A thread takes its name once it runs.
    let deadline = Instant::now() + Duration::from_secs(5);
    while watch_threads() < 2 {
        assert!(
            Instant::now() < deadline,
            "expected two watch threads, found {}",
            watch_threads()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(watch);
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(5);
    while watch_threads() > 0 {
        assert!(
            Instant::now() < deadline,
            "watch thread still running after drop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
