//! One conformance suite, run unchanged against both engines: the embedded
//! SQLite file and a real etcd started for each test.

mod support;

use calico_datastore::Backend;
use support::{EmbeddedFixture, EtcdFixture, Fixture, suite};

macro_rules! conformance {
    ($engine:ident, $fixture:ty) => {
        mod $engine {
            use super::*;

            async fn fixture() -> $fixture {
                <$fixture>::start().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn create_and_get() {
                suite::create_and_get(&fixture().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_by_prefix() {
                suite::list_by_prefix(&fixture().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn update_is_compare_and_swap() {
                suite::update_is_compare_and_swap(&fixture().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn put_is_unconditional() {
                suite::put_is_unconditional(&fixture().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delete_semantics() {
                suite::delete_semantics(&fixture().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn empty_keys_are_refused() {
                suite::empty_keys_are_refused(&fixture().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn watch_sees_every_change_in_order() {
                suite::watch_sees_every_change_in_order(&fixture().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn watch_replays_history() {
                suite::watch_replays_history(&fixture().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn compaction_makes_old_watches_resync() {
                suite::compaction_makes_old_watches_resync(&fixture().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn eight_processes_increment_without_losing_updates() {
                suite::processes_increment_without_losing_updates(&fixture().await, 8, 50).await;
            }
        }
    };
}

conformance!(embedded, EmbeddedFixture);
conformance!(etcd, EtcdFixture);

/// In another test's worker processes (started by
/// `processes_increment_without_losing_updates`), increments the counter it
/// is given. Run alone, it checks the same against a fresh embedded store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_increment_worker() {
    let spec = std::env::var(support::WORKER_DATASTORE).ok();
    let (config, key, count, _scratch) = match spec {
        Some(spec) => (
            support::parse_worker_spec(&spec),
            std::env::var(support::WORKER_KEY).expect("worker key"),
            std::env::var(support::WORKER_COUNT)
                .expect("worker count")
                .parse()
                .expect("count"),
            None,
        ),
        None => {
            let fixture = EmbeddedFixture::start().await;
            fixture
                .open()
                .await
                .create("/calico/test/counter", b"0")
                .await
                .unwrap();
            (
                fixture.config(),
                "/calico/test/counter".to_owned(),
                50,
                Some(fixture),
            )
        }
    };
    let backend = calico_datastore::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{}", calico_datastore::display_chain(&e)));
    let conflicts = support::cas_increments(&backend, &key, count).await;
    println!(
        "worker pid {} did {count} increments, {conflicts} conflicts retried",
        std::process::id()
    );
    if std::env::var(support::WORKER_DATASTORE).is_err() {
        let value = backend.get(&key).await.unwrap().unwrap().value;
        assert_eq!(value, b"50");
        assert_eq!(conflicts, 0, "a lone worker cannot conflict");
    }
}
