//! Network namespaces as open handles, and the one place in the project that
//! enters them.
//!
//! A network namespace is a property of a *thread*. Entering one on a thread
//! that is later reused for something else (a tokio worker, a thread pool)
//! silently moves unrelated work into the wrong namespace, so this module
//! never does that: [`NetNs::run`] spawns a fresh thread, enters the
//! namespace there, runs the closure and lets the thread end. The one
//! exception, [`NetNs::run_here`], enters on the calling thread for the
//! length of a synchronous closure and always comes back (as netavark opens
//! its sockets): no other work can run on the thread in between. Sockets opened
//! on that thread stay bound to the namespace they were opened in, which is
//! how the rest of the crate works from outside: open once inside, use from
//! anywhere (netavark's approach).

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

/// The calling thread's own network namespace.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// Errors opening or entering a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    /// The path does not exist (the namespace is gone or was never created).
    #[error("network namespace {} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("opening network namespace {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a network namespace", path.display())]
    NotANetns { path: PathBuf },
    #[error("entering network namespace {}", path.display())]
    Enter {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("starting a thread to enter network namespace {}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the thread working inside network namespace {} panicked", path.display())]
    Panicked { path: PathBuf },
}

impl NetNsError {
    /// Whether the namespace simply does not exist (useful for idempotent
    /// teardown, where a missing namespace means there is nothing to do).
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetNsError::NotFound { .. })
    }
}

/// An open handle on a network namespace. Holding it keeps the namespace
/// alive even if its bind mount is removed.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
    /// Device and inode of the namespace: its identity.
    id: (u64, u64),
}

impl NetNs {
    /// Opens the namespace at `path` (for example `/var/run/netns/cni-…` or
    /// `/proc/<pid>/ns/net`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NetNsError> {
        let path = path.as_ref().to_path_buf();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(NetNsError::NotFound { path });
            }
            Err(source) => return Err(NetNsError::Open { path, source }),
        };
        let meta = file.metadata().map_err(|source| NetNsError::Open {
            path: path.clone(),
            source,
        })?;
        // A bind-mounted namespace lives on nsfs; a plain file or directory
        // left behind after the namespace was unmounted does not, and
        // entering it would fail with a confusing EINVAL.
        let ns = NetNs {
            id: (meta.dev(), meta.ino()),
            file,
            path,
        };
        if !ns.is_nsfs() {
            return Err(NetNsError::NotANetns { path: ns.path });
        }
        Ok(ns)
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Self, NetNsError> {
        Self::open(THREAD_NETNS)
    }

    /// The path this handle was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the calling thread is already in this namespace.
    pub fn is_current(&self) -> bool {
        std::fs::metadata(THREAD_NETNS)
            .map(|m| (m.dev(), m.ino()) == self.id)
            .unwrap_or(false)
    }

    /// Runs `f` inside this namespace on a dedicated, short-lived thread and
    /// returns its result. If the calling thread is already in the namespace
    /// the closure runs inline.
    pub fn run<T, F>(&self, f: F) -> Result<T, NetNsError>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        if self.is_current() {
            return Ok(f());
        }
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("netns".into())
                .spawn_scoped(scope, || {
                    setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|source| {
                        NetNsError::Enter {
                            path: self.path.clone(),
                            source,
                        }
                    })?;
                    // The thread ends right after `f`, so the namespace
                    // change never leaks into other work.
                    Ok(f())
                })
                .map_err(|source| NetNsError::Spawn {
                    path: self.path.clone(),
                    source,
                })?;
            handle.join().map_err(|_| NetNsError::Panicked {
                path: self.path.clone(),
            })?
        })
    }

    /// Runs `f` inside this namespace on the calling thread, and brings the
    /// thread back to its own namespace before returning, also when `f`
    /// panics. It saves [`NetNs::run`]'s thread, for short synchronous work
    /// (open a socket, write a few sysctls) where nothing else can get hold
    /// of the thread meanwhile: `f` must not start threads (they would stay
    /// in this namespace) nor wait on an async runtime. If the thread
    /// cannot be brought back the process aborts rather than let anything
    /// run in the wrong namespace.
    pub fn run_here<T>(&self, f: impl FnOnce() -> T) -> Result<T, NetNsError> {
        if self.is_current() {
            return Ok(f());
        }
        let home = File::open(THREAD_NETNS).map_err(|source| NetNsError::Open {
            path: THREAD_NETNS.into(),
            source,
        })?;
        setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|source| NetNsError::Enter {
            path: self.path.clone(),
            source,
        })?;
        let _back = ReturnHome { home };
        Ok(f())
    }

    /// Starts `f` on a thread of its own that enters this namespace first
    /// and stays there until `f` returns, for work that keeps using
    /// something bound to the namespace (a library that may reopen its
    /// netlink socket, say). The thread runs nothing else; the caller's
    /// thread never changes namespace.
    pub fn spawn<T, F>(
        &self,
        name: &str,
        f: F,
    ) -> Result<std::thread::JoinHandle<Result<T, NetNsError>>, NetNsError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let path = self.path.clone();
        let file = self.file.try_clone().map_err(|source| NetNsError::Open {
            path: path.clone(),
            source,
        })?;
        let spawn_path = path.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|source| NetNsError::Enter { path, source })?;
                Ok(f())
            })
            .map_err(|source| NetNsError::Spawn {
                path: spawn_path,
                source,
            })
    }

    fn is_nsfs(&self) -> bool {
        nix::sys::statfs::fstatfs(&self.file)
            .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
            .unwrap_or(false)
    }
}

/// Takes the thread back to the namespace it came from when dropped.
struct ReturnHome {
    home: File,
}

impl Drop for ReturnHome {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.home, CloneFlags::CLONE_NEWNET) {
            eprintln!("cannot return to the thread's own network namespace ({e}); aborting");
            std::process::abort();
        }
    }
}

impl PartialEq for NetNs {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for NetNs {}

impl std::os::fd::AsFd for NetNs {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}
