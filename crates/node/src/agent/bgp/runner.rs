//! The task that owns the speaker: it starts it when the first settings
//! arrive, applies every newer [`Desired`] in order (only the latest of a
//! burst), restarts it when the listen port changes, and publishes the
//! running speaker for the status readers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use calico_bgp::config::Desired;
use calico_bgp::driver::{Driver, DriverConfig, DriverError, SpeakerHandle};
use calico_bgp::sink::{NetlinkSink, SinkError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// How long to wait before trying again to start a speaker that failed.
const RESTART_AFTER: Duration = Duration::from_secs(5);
/// How long a stopping speaker gets to send its Cease messages.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running speaker, as the status readers see it.
#[derive(Debug, Clone)]
pub struct Running {
    pub handle: SpeakerHandle,
    pub router_id: Ipv4Addr,
    /// When this speaker started (BIRD's "last reboot").
    pub started: SystemTime,
    /// When settings were last applied to it.
    pub reconfigured: SystemTime,
}

/// Why a speaker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the kernel route sink")]
    Sink(#[source] SinkError),
    #[error("starting the BGP speaker")]
    Driver(#[source] DriverError),
}

/// The loop's side of the runner task.
#[derive(Debug)]
pub struct Runner {
    desired: watch::Sender<Option<Desired>>,
    task: JoinHandle<()>,
}

impl Runner {
    /// Spawns the task; the speaker opens its sockets and installs routes
    /// in `netns` (the process's own when `None`). `running` is where the
    /// task publishes the speaker.
    pub fn start(netns: Option<PathBuf>, running: watch::Sender<Option<Running>>) -> Runner {
        let (desired, rx) = watch::channel(None);
        let task = tokio::spawn(run(netns, rx, running));
        Runner { desired, task }
    }

    /// Hands over new settings (replacing any not yet applied).
    pub fn apply(&self, desired: Desired) {
        self.desired.send_replace(Some(desired));
    }

    /// Stops the speaker (Cease to every peer) and waits for the task.
    pub async fn stop(self) {
        let Runner { desired, task } = self;
        drop(desired);
        if tokio::time::timeout(STOP_TIMEOUT * 2, task).await.is_err() {
            warn!("the BGP speaker did not stop in time");
        }
    }
}

struct Speaker {
    port: u16,
    handle: SpeakerHandle,
    task: JoinHandle<()>,
}

impl Speaker {
    async fn stop(self) {
        let _ = self.handle.shutdown().await;
        if tokio::time::timeout(STOP_TIMEOUT, self.task).await.is_err() {
            warn!("the BGP speaker did not stop in time");
        }
    }
}

async fn run(
    netns: Option<PathBuf>,
    mut desired: watch::Receiver<Option<Desired>>,
    running: watch::Sender<Option<Running>>,
) {
    let mut speaker: Option<Speaker> = None;
    let mut retry = false;
    loop {
        let next = if retry {
            tokio::select! {
                changed = desired.changed() => changed,
                _ = tokio::time::sleep(RESTART_AFTER) => Ok(()),
            }
        } else {
            desired.changed().await
        };
        if next.is_err() {
            break;
        }
        retry = false;
        let Some(settings) = desired.borrow_and_update().clone() else {
            continue;
        };
        if speaker
            .as_ref()
            .is_some_and(|s| s.port != settings.listen_port)
        {
            info!(
                port = settings.listen_port,
                "the BGP listen port changed; restarting the speaker"
            );
            running.send_replace(None);
            if let Some(old) = speaker.take() {
                old.stop().await;
            }
        }
        if speaker.is_none() {
            match start(netns.clone(), &settings) {
                Ok(started) => {
                    info!(port = started.port, "BGP speaker started");
                    running.send_replace(Some(Running {
                        handle: started.handle.clone(),
                        router_id: settings.speaker.router_id,
                        started: SystemTime::now(),
                        reconfigured: SystemTime::now(),
                    }));
                    speaker = Some(started);
                }
                Err(e) => {
                    error!(error = %calico_bgp::error_chain(&e), "cannot start the BGP speaker; retrying");
                    retry = true;
                    continue;
                }
            }
        }
        let Some(current) = &speaker else {
            continue;
        };
        let router_id = settings.speaker.router_id;
        if current.handle.apply(settings).await.is_err() {
            error!("the BGP speaker stopped; starting it again");
            running.send_replace(None);
            speaker = None;
            retry = true;
            // Apply the same settings again once restarted.
            desired.mark_changed();
            continue;
        }
        running.send_modify(|r| {
            if let Some(r) = r {
                r.router_id = router_id;
                r.reconfigured = SystemTime::now();
            }
        });
    }
    running.send_replace(None);
    if let Some(speaker) = speaker {
        speaker.stop().await;
    }
}

/// Starts a speaker listening on `[::]:port` (IPv4 peers too), or on
/// `0.0.0.0:port` where the namespace has no IPv6.
fn start(netns: Option<PathBuf>, settings: &Desired) -> Result<Speaker, StartError> {
    match start_on(netns.clone(), settings, IpAddr::V6(Ipv6Addr::UNSPECIFIED)) {
        Err(StartError::Driver(_)) => start_on(netns, settings, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        other => other,
    }
}

fn start_on(
    netns: Option<PathBuf>,
    settings: &Desired,
    address: IpAddr,
) -> Result<Speaker, StartError> {
    let port = settings.listen_port;
    let sink = NetlinkSink::open(netns.as_deref()).map_err(StartError::Sink)?;
    let config = DriverConfig {
        speaker: settings.speaker.clone(),
        listen: vec![SocketAddr::new(address, port)],
        netns,
    };
    let (driver, handle) = Driver::new(config, Box::new(sink)).map_err(StartError::Driver)?;
    let task = tokio::spawn(driver.run());
    Ok(Speaker { port, handle, task })
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;

    use calico_bgp::speaker::SpeakerConfig;

    use super::*;

    fn settings(port: u16) -> Desired {
        Desired {
            speaker: SpeakerConfig {
                local_as: 64512,
                router_id: Ipv4Addr::new(10, 0, 0, 1),
                cluster_id: None,
                address_v4: None,
                address_v6: None,
            },
            listen_port: port,
            peers: Vec::new(),
            originations: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap()
    }

    fn listening(port: u16) -> bool {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    }

    async fn next_start(
        running: &mut watch::Receiver<Option<Running>>,
        after: Option<SystemTime>,
    ) -> Running {
        let wait = running.wait_for(|r| {
            r.as_ref()
                .is_some_and(|r| after.is_none_or(|t| r.started > t))
        });
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the speaker to start")
            .unwrap()
            .clone()
            .unwrap()
    }

    #[tokio::test]
    async fn starts_on_first_settings_restarts_on_a_new_port_and_stops() {
        let (tx, mut running) = watch::channel(None);
        let runner = Runner::start(None, tx);
        let (first, second) = (free_port(), free_port());

        runner.apply(settings(first));
        let started = next_start(&mut running, None).await;
        assert!(listening(first));

        // Other settings on the same port keep the speaker.
        let mut changed = settings(first);
        changed.speaker.router_id = Ipv4Addr::new(10, 0, 0, 9);
        runner.apply(changed);
        let reconfigured = running.wait_for(|r| {
            r.as_ref()
                .is_some_and(|r| r.router_id == Ipv4Addr::new(10, 0, 0, 9))
        });
        let now = tokio::time::timeout(Duration::from_secs(10), reconfigured)
            .await
            .expect("the new settings to be applied")
            .unwrap()
            .clone()
            .unwrap();
        assert_eq!(now.started, started.started, "not restarted");

        // A new listen port takes a new speaker.
        std::thread::sleep(Duration::from_millis(5));
        runner.apply(settings(second));
        next_start(&mut running, Some(started.started)).await;
        assert!(listening(second));
        assert!(!listening(first));

        runner.stop().await;
        assert!(running.borrow().is_none());
        assert!(!listening(second));
    }
}
