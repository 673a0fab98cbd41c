//! libnftables, the library the `nft` program is made of, used in process.
//!
//! Running the `nft` program costs a process start and the library's own
//! set-up on every transaction, several milliseconds before the kernel
//! sees anything. This module loads `libnftables.so.1` at run time (it
//! ships with nft, in Debian's `libnftables1`) and keeps one context open:
//! the same script in, the same text or JSON out, the same diagnostics, at
//! the cost of the work itself. Callers that find no library fall back to
//! the program ([`Error::Load`] says why).
//!
//! A context is bound to the network namespace it was created in, and the
//! library may reopen its netlink socket in whatever namespace its caller
//! is in; so each [`Nftables`] owns a thread of its own that enters the
//! namespace once, creates the context there and runs every command for
//! it. Commands reach that thread over a channel, one at a time.
//!
//! The library is C behind a handful of functions with plain pointer
//! arguments; every call is in this file, each `unsafe` block says why it
//! is sound.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::{NetNs, NetNsError};

/// The library's file name (its ABI version 1).
pub const LIBRARY: &str = "libnftables.so.1";

// From libnftables.h.
const NFT_CTX_DEFAULT: c_uint = 0;
const NFT_CTX_OUTPUT_JSON: c_uint = 1 << 4;
const NFT_CTX_OUTPUT_NUMERIC_ALL: c_uint = (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10);

/// How a command's output is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// nft's own syntax.
    Text,
    /// JSON with numbers for protocols, priorities and symbols (`nft -n -j`).
    NumericJson,
}

impl Output {
    fn flags(self) -> c_uint {
        match self {
            Output::Text => 0,
            Output::NumericJson => NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_NUMERIC_ALL,
        }
    }
}

/// The library could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("loading {LIBRARY}: {message}")]
    Load { message: String },
    #[error("libnftables could not create a context (netlink socket)")]
    Context,
    #[error("starting the libnftables thread")]
    Thread(#[source] NetNsError),
    #[error("starting the libnftables thread")]
    Spawn(#[source] std::io::Error),
    #[error("the libnftables thread is gone")]
    Gone,
    #[error("handing the commands to libnftables")]
    Script(#[source] std::io::Error),
}

/// A command that nft refused or that failed in the kernel: what nft
/// wrote to its error stream (with line and column, as the program does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nft failed ({status}): {}", stderr.trim())]
pub struct Failure {
    pub status: i32,
    pub stderr: String,
}

type CtxNew = unsafe extern "C" fn(c_uint) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type CtxInt = unsafe extern "C" fn(*mut c_void) -> c_int;
type CtxBuffer = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type SetFlags = unsafe extern "C" fn(*mut c_void, c_uint);
type RunFile = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// The library's entry points, loaded once per process.
struct Api {
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    buffer_output: CtxInt,
    buffer_error: CtxInt,
    output_buffer: CtxBuffer,
    error_buffer: CtxBuffer,
    set_output_flags: SetFlags,
    run_file: RunFile,
    /// Keeps the functions above mapped.
    _library: libloading::Library,
}

fn api() -> Result<&'static Api, Error> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load)
        .as_ref()
        .map_err(|message| Error::Load {
            message: message.clone(),
        })
}

fn load() -> Result<Api, String> {
    // SAFETY: loading runs the library's initialisers; libnftables' only
    // set up its own static tables.
    #[allow(unsafe_code)]
    let library = unsafe { libloading::Library::new(LIBRARY) }.map_err(|e| e.to_string())?;
    /// Looks a function up and copies its pointer out.
    ///
    /// SAFETY (of each call): `T` is the function's type as libnftables.h
    /// declares it, and the pointer is used only while `_library` (kept
    /// in the same `Api`) keeps the library mapped.
    #[allow(unsafe_code)]
    unsafe fn symbol<T: Copy>(library: &libloading::Library, name: &[u8]) -> Result<T, String> {
        // SAFETY: see above.
        unsafe { library.get::<T>(name) }
            .map(|f| *f)
            .map_err(|e| e.to_string())
    }
    #[allow(unsafe_code)]
    // SAFETY: each type below matches the declaration in libnftables.h.
    unsafe {
        Ok(Api {
            ctx_new: symbol(&library, b"nft_ctx_new\0")?,
            ctx_free: symbol(&library, b"nft_ctx_free\0")?,
            buffer_output: symbol(&library, b"nft_ctx_buffer_output\0")?,
            buffer_error: symbol(&library, b"nft_ctx_buffer_error\0")?,
            output_buffer: symbol(&library, b"nft_ctx_get_output_buffer\0")?,
            error_buffer: symbol(&library, b"nft_ctx_get_error_buffer\0")?,
            set_output_flags: symbol(&library, b"nft_ctx_output_set_flags\0")?,
            run_file: symbol(&library, b"nft_run_cmd_from_filename\0")?,
            _library: library,
        })
    }
}

/// Whether `libnftables.so.1` can be loaded here.
pub fn available() -> bool {
    api().is_ok()
}

/// One libnftables context, owned by the thread that made it.
///
/// Commands are handed over as a file (an in-memory one, reached through
/// `/proc/self/fd`): from a file nft reports errors with the line and
/// column of the offending text, exactly as `nft -f` does, where from a
/// string it gives neither.
struct Context {
    api: &'static Api,
    ctx: *mut c_void,
    script: File,
    script_path: CString,
}

impl Context {
    fn new(api: &'static Api) -> Result<Context, Error> {
        let script = File::from(
            memfd_create("nft-script", MFdFlags::MFD_CLOEXEC)
                .map_err(|e| Error::Script(e.into()))?,
        );
        let script_path = CString::new(format!("/proc/self/fd/{}", script.as_raw_fd()))
            .expect("no NUL in a path made of digits");
        // SAFETY: nft_ctx_new takes flags by value and returns a new
        // context or NULL.
        #[allow(unsafe_code)]
        let ctx = unsafe { (api.ctx_new)(NFT_CTX_DEFAULT) };
        if ctx.is_null() {
            return Err(Error::Context);
        }
        let context = Context {
            api,
            ctx,
            script,
            script_path,
        };
        // SAFETY: `ctx` is the live context made above; buffering output
        // and errors only allocates inside it.
        #[allow(unsafe_code)]
        let buffered = unsafe { (api.buffer_output)(ctx) == 0 && (api.buffer_error)(ctx) == 0 };
        if !buffered {
            return Err(Error::Context);
        }
        Ok(context)
    }

    fn run(&mut self, commands: &str, output: Output) -> Result<Reply, Error> {
        self.script.set_len(0).map_err(Error::Script)?;
        self.script
            .write_all_at(commands.as_bytes(), 0)
            .map_err(Error::Script)?;
        // SAFETY: `ctx` is live and used by this thread alone; the path is
        // NUL-terminated and outlives the call; the buffers returned are
        // NUL-terminated, owned by the context and valid until its next
        // call, and are copied out before that.
        #[allow(unsafe_code)]
        let (status, out, err) = unsafe {
            (self.api.set_output_flags)(self.ctx, output.flags());
            let status = (self.api.run_file)(self.ctx, self.script_path.as_ptr());
            let out = buffer((self.api.output_buffer)(self.ctx));
            let err = buffer((self.api.error_buffer)(self.ctx));
            (status, out, err)
        };
        Ok(if status == 0 {
            Ok(out)
        } else {
            Err(Failure {
                status,
                stderr: err,
            })
        })
    }
}

/// Copies a buffer libnftables returned (NULL is empty).
///
/// SAFETY: `ptr` is NULL or a NUL-terminated string valid for the call.
#[allow(unsafe_code)]
unsafe fn buffer(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: see above.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: `ctx` is live and freed exactly once, here.
        #[allow(unsafe_code)]
        unsafe {
            (self.api.ctx_free)(self.ctx)
        }
    }
}

type Reply = Result<String, Failure>;

struct Request {
    commands: String,
    output: Output,
    reply: SyncSender<Result<Reply, Error>>,
}

/// libnftables inside one network namespace: see the [module](self) docs.
#[derive(Debug)]
pub struct Nftables {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<Result<(), NetNsError>>>,
}

impl Nftables {
    /// A context in the calling thread's namespace.
    pub fn open() -> Result<Nftables, Error> {
        Nftables::start(None)
    }

    /// A context inside `netns`.
    pub fn open_in(netns: &NetNs) -> Result<Nftables, Error> {
        Nftables::start(Some(netns))
    }

    /// Starts the thread, in `netns` if given, and waits for its context.
    fn start(netns: Option<&NetNs>) -> Result<Nftables, Error> {
        let api = api()?;
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let (requests, rx) = mpsc::channel();
        let work = move || serve(api, rx, ready_tx);
        let thread = match netns {
            Some(ns) => ns.spawn("libnftables", work).map_err(Error::Thread)?,
            None => std::thread::Builder::new()
                .name("libnftables".into())
                .spawn(move || {
                    work();
                    Ok(())
                })
                .map_err(Error::Spawn)?,
        };
        match ready.recv() {
            Ok(Ok(())) => Ok(Nftables {
                requests: Some(requests),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            // The thread ended without a word: it could not enter the
            // namespace, and says why.
            Err(_) => Err(match thread.join() {
                Ok(Err(e)) => Error::Thread(e),
                _ => Error::Gone,
            }),
        }
    }

    /// Runs `commands` (nft's script syntax; several lines are one
    /// transaction, as with `nft -f`) and returns what nft printed.
    pub fn run(&self, commands: &str, output: Output) -> Result<Reply, Error> {
        let commands = commands.to_string();
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .as_ref()
            .ok_or(Error::Gone)?
            .send(Request {
                commands,
                output,
                reply,
            })
            .map_err(|_| Error::Gone)?;
        answer.recv().map_err(|_| Error::Gone)?
    }
}

impl Drop for Nftables {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(api: &'static Api, requests: Receiver<Request>, ready: SyncSender<Result<(), Error>>) {
    let mut context = match Context::new(api) {
        Ok(context) => context,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return;
    }
    for request in requests {
        let reply = context.run(&request.commands, request.output);
        let _ = request.reply.send(reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ScratchNetns;

    /// Needs root and libnftables1 (installed with nft).
    #[test]
    fn runs_scripts_and_lists_inside_a_namespace() {
        let ns = ScratchNetns::new("libnft");
        let nft = Nftables::open_in(ns.netns()).expect("libnftables");
        nft.run(
            "add table ip t\nadd chain ip t c\nadd rule ip t c tcp dport 80 accept\n",
            Output::Text,
        )
        .unwrap()
        .expect("a valid script");
        let json = nft
            .run("list table ip t", Output::NumericJson)
            .unwrap()
            .expect("listing");
        assert!(json.contains("\"dport\""), "{json}");
        assert!(json.contains("\"protocol\": \"tcp\"") || json.contains("\"tcp\""));
        // The rule went into the scratch namespace, not this one.
        let here = std::process::Command::new("nft")
            .args(["list", "table", "ip", "t"])
            .output()
            .unwrap();
        assert!(
            !here.status.success(),
            "the table leaked into the caller's namespace"
        );

        // A bad line fails the whole script, with nft's diagnostics.
        let failure = nft
            .run(
                "add chain ip t d\nadd rule ip t d tcp dport eighty accept\n",
                Output::Text,
            )
            .unwrap()
            .expect_err("an invalid script");
        assert!(failure.stderr.contains(":2:"), "{}", failure.stderr);
        let listed = nft.run("list table ip t", Output::Text).unwrap().unwrap();
        assert!(
            !listed.contains("chain d"),
            "half a transaction applied: {listed}"
        );
    }
}
