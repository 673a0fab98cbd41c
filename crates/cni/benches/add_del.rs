//! ADD and DEL latency of the `calico` binary, as a runtime sees it (fork,
//! exec, datastore, IPAM, kernel), side by side with two reference
//! configurations from containernetworking-plugins in the same run,
//! interleaved: `bridge` with `host-local` IPAM (a bridge of its own in the
//! node namespace, `isGateway`, as commonly configured) and `ptp` with
//! `host-local`. Calico runs twice: with the plugin's default durability
//! (`synchronous=NORMAL`) and with `"datastore_durability": "full"` (an
//! fsync per commit). A last row is the floor any plugin pays here:
//! `cat`, spawned the same way, copying the configuration to stdout.
//!
//!     cargo bench -p calico-cni --bench add_del [-- ITERATIONS]
//!
//! With `-- --link-order FILE [--also BINARY]...` (FILE relative to
//! `crates/cni`, where cargo runs benchmarks) it measures nothing: it
//! runs VERSION, ADD and DEL once under valgrind's callgrind, for this
//! build's plugin and each BINARY (a `cargo build --release` copy, whose
//! symbol names differ), and writes the functions they executed to FILE,
//! the symbol ordering `build.rs` hands the linker (see there).
//!
//! Needs root and containernetworking-plugins in /usr/lib/cni. Calico runs
//! with its own IPAM against an embedded datastore file in a temporary
//! directory (a pool, the node and ClusterInformation prepared first).
//! As on a node, where the agent watches the datastore for as long as it
//! runs, the benchmark keeps a watch open on the file throughout: a plugin
//! process then finds SQLite's shared WAL index ready instead of being
//! the first to open the file and rebuilding it.
//! One untimed warm-up round comes first (calico's first ADD claims the
//! node's block, bridge's first ADD creates the bridge); after that each
//! iteration runs ADD then DEL for every configuration, in an order
//! shuffled anew for every iteration (a fixed seed): a DEL leaves deferred
//! kernel work (RCU callbacks, device cleanup) that whatever runs next pays
//! for, so no configuration may always follow the same one.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use calico_client::Client;
use calico_datastore::EmbeddedBackend;
use calico_netlink::testing::ScratchNetns;

/// What a row of the report is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Calico,
    Reference,
    Floor,
}

/// One plugin configuration under test and the times measured for it.
struct Subject {
    name: &'static str,
    role: Role,
    binary: String,
    conf: serde_json::Value,
    add: Vec<Duration>,
    del: Vec<Duration>,
}

impl Subject {
    fn new(name: &'static str, role: Role, binary: &str, conf: serde_json::Value) -> Self {
        Subject {
            name,
            role,
            binary: binary.to_string(),
            conf,
            add: Vec::new(),
            del: Vec::new(),
        }
    }
}

fn main() {
    let args_given: Vec<String> = std::env::args().skip(1).collect();
    let iterations: usize = args_given.iter().find_map(|a| a.parse().ok()).unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("calico.db");
    prepare(&db);
    let node = common::node_namespace();
    let pod = ScratchNetns::new("benchpod");
    let netns = pod.path().display().to_string();

    let host_local = |data: &str, subnet: &str| {
        serde_json::json!({
            "type": "host-local", "dataDir": dir.path().join(data),
            "ranges": [[{"subnet": subnet}]],
        })
    };
    let installed = install_plugin(dir.path(), env!("CARGO_BIN_EXE_calico"));
    let calico = |durability: &str| {
        serde_json::json!({
            "cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico",
            "log_level": "error", "nodename": "node-1", "mtu": 1450,
            "datastore_durability": durability,
            "ipam": {"type": "calico-ipam"},
        })
    };
    let mut subjects = [
        Subject::new(
            "calico + calico-ipam",
            Role::Calico,
            &installed,
            calico("normal"),
        ),
        Subject::new(
            "calico, durability full",
            Role::Calico,
            &installed,
            calico("full"),
        ),
        Subject::new(
            "bridge + host-local",
            Role::Reference,
            "/usr/lib/cni/bridge",
            serde_json::json!({
                "cniVersion": "1.0.0", "name": "bench-bridge", "type": "bridge",
                "bridge": "benchbr0", "isGateway": true, "mtu": 1450,
                "ipam": host_local("host-local-bridge", "10.89.0.0/16"),
            }),
        ),
        Subject::new(
            "ptp + host-local",
            Role::Reference,
            "/usr/lib/cni/ptp",
            serde_json::json!({
                "cniVersion": "1.0.0", "name": "bench-ptp", "type": "ptp", "mtu": 1450,
                "ipam": host_local("host-local-ptp", "10.88.0.0/16"),
            }),
        ),
        Subject::new(
            "floor: spawn cat",
            Role::Floor,
            "/bin/cat",
            serde_json::json!({}),
        ),
    ];
    let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench;K8S_POD_INFRA_CONTAINER_ID=bench;K8S_POD_UID=u";
    if let Some(out) = flag_values(&args_given, "--link-order").first() {
        let mut binaries = vec![installed.clone()];
        binaries.extend(flag_values(&args_given, "--also"));
        let conf = calico("normal");
        let profile = |program: &[&str], command: &str| {
            invoke(program, &node, &db, command, "order", &netns, args, &conf);
        };
        write_link_order(&binaries, dir.path(), profile, std::path::Path::new(out));
        return;
    }
    let run = |subject: &Subject, command: &str, id: &str| {
        invoke(
            &[&subject.binary],
            &node,
            &db,
            command,
            id,
            &netns,
            args,
            &subject.conf,
        )
    };

    let load_before = load_average();
    for subject in &subjects {
        run(subject, "ADD", "warmup");
        run(subject, "DEL", "warmup");
    }
    let mut order: Vec<usize> = (0..subjects.len()).collect();
    let mut shuffle = Shuffle(0x9e37_79b9_7f4a_7c15);
    for i in 0..iterations {
        let id = format!("bench{i}");
        shuffle.permute(&mut order);
        for &k in &order {
            let subject = &mut subjects[k];
            let add = run(subject, "ADD", &id);
            let del = run(subject, "DEL", &id);
            subject.add.push(add);
            subject.del.push(del);
        }
    }
    let load_after = load_average();

    println!("CNI ADD/DEL through the binaries, {iterations} iterations, interleaved (ms):");
    println!("  load average before: {load_before}; after: {load_after}");
    println!(
        "  {:<24} {:>9} {:>9} {:>9} {:>9}",
        "plugins", "ADD p50", "ADD p95", "DEL p50", "DEL p95"
    );
    let mut medians = Vec::new();
    for subject in &mut subjects {
        subject.add.sort();
        subject.del.sort();
        println!(
            "  {:<24} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            subject.name,
            millis(percentile(&subject.add, 50)),
            millis(percentile(&subject.add, 95)),
            millis(percentile(&subject.del, 50)),
            millis(percentile(&subject.del, 95)),
        );
        medians.push((
            millis(percentile(&subject.add, 50)),
            millis(percentile(&subject.del, 50)),
        ));
    }
    for (calico, (calico_add, calico_del)) in subjects.iter().zip(&medians) {
        if calico.role != Role::Calico {
            continue;
        }
        for (reference, (add, del)) in subjects.iter().zip(&medians) {
            if reference.role != Role::Reference {
                continue;
            }
            println!(
                "  {} / {}: ADD p50 {:.2}x   DEL p50 {:.2}x",
                calico.name,
                reference.name,
                calico_add / add,
                calico_del / del
            );
        }
    }
}

/// The values given after each occurrence of `flag`.
fn flag_values(args: &[String], flag: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].clone())
        .collect()
}

/// Runs VERSION, ADD and DEL of each binary under callgrind and writes the
/// functions of the binary they executed, in the order first met, to `out`:
/// the symbol ordering file `build.rs` gives the linker.
fn write_link_order(
    binaries: &[String],
    scratch: &std::path::Path,
    profile: impl Fn(&[&str], &str),
    out: &std::path::Path,
) {
    let mut symbols = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, binary) in binaries.iter().enumerate() {
        let object = std::fs::canonicalize(binary).expect("the binary to profile");
        for command in ["VERSION", "ADD", "DEL"] {
            let record = scratch.join(format!("callgrind.{n}.{command}"));
            let record_flag = format!("--callgrind-out-file={}", record.display());
            profile(
                &[
                    "valgrind",
                    "--tool=callgrind",
                    "--demangle=no",
                    &record_flag,
                    binary,
                ],
                command,
            );
            let text = std::fs::read_to_string(&record).expect("reading the callgrind record");
            for symbol in executed_functions(&text, &object) {
                if seen.insert(symbol.clone()) {
                    symbols.push(symbol);
                }
            }
        }
    }
    let mut file = String::from(
        "# Functions the calico plugin runs for VERSION, ADD and DEL, in the order first met.\n\
         # Generated by: cargo bench -p calico-cni --bench add_del -- --link-order link-order.txt --also <copy of a release build>\n",
    );
    for symbol in &symbols {
        file.push_str(symbol);
        file.push('\n');
    }
    std::fs::write(out, file).expect("writing the link order");
    println!("{} functions written to {}", symbols.len(), out.display());
}

/// The functions of `object` in a callgrind record, in the order they
/// first appear. Records name objects and functions once in full
/// (`ob=(3) /path`, `fn=(12) name`) and by number after that.
fn executed_functions(record: &str, object: &std::path::Path) -> Vec<String> {
    let object = object.display().to_string();
    let mut objects = std::collections::HashMap::new();
    let mut functions = std::collections::HashMap::new();
    let mut current_object_is_ours = false;
    let mut out = Vec::new();
    for line in record.lines() {
        let Some((key, rest)) = line.split_once('=') else {
            continue;
        };
        let Some((id, name)) = rest
            .strip_prefix('(')
            .and_then(|r| r.split_once(')'))
            .map(|(id, name)| (id.to_string(), name.trim().to_string()))
        else {
            continue;
        };
        match key {
            "ob" | "cob" => {
                if !name.is_empty() {
                    objects.insert(id.clone(), name);
                }
                if key == "ob" {
                    current_object_is_ours = objects.get(&id) == Some(&object);
                }
            }
            "fn" | "cfn" => {
                if !name.is_empty() {
                    functions.insert(id.clone(), name);
                }
                if key == "fn"
                    && current_object_is_ours
                    && let Some(name) = functions.get(&id)
                    && !name.starts_with("0x")
                {
                    out.push(name.clone());
                }
            }
            _ => {}
        }
    }
    out
}

/// A fixed-seed xorshift generator: each iteration runs the subjects in a
/// new order, so that none always follows the same predecessor (a DEL
/// leaves deferred kernel work behind that the next command pays for).
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Fisher-Yates.
    fn permute(&mut self, items: &mut [usize]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Copies the plugin into `dir`, as it is installed on a node (into
/// `/opt/cni/bin`), and returns its path. Executing the linker's own output
/// instead cost about 0.5 ms more per ADD here (identical binaries, same
/// runs): an ADD of it took 116 page faults in the text, one of a copy next
/// to none, presumably because the page cache holds a file written through
/// a memory map in smaller pieces than a copied one.
fn install_plugin(dir: &std::path::Path, built: &str) -> String {
    let installed = dir.join("calico");
    std::fs::copy(built, &installed).expect("installing the plugin");
    installed.display().to_string()
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p).div_ceil(100).max(1) - 1]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[allow(clippy::too_many_arguments)]
fn invoke(
    program: &[&str],
    node: &ScratchNetns,
    db: &std::path::Path,
    command: &str,
    id: &str,
    netns: &str,
    args: &str,
    conf: &serde_json::Value,
) -> Duration {
    // The plugin is exec'd from a thread already inside the node's
    // namespace, as a runtime on the node would; entering it is not timed.
    let stdin = conf.to_string();
    let (output, elapsed) = node
        .netns()
        .run(|| {
            let start = Instant::now();
            let mut child = Command::new(program[0])
                .args(&program[1..])
                .env_clear()
                .env("CNI_COMMAND", command)
                .env("CNI_CONTAINERID", id)
                .env("CNI_NETNS", netns)
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", "/usr/lib/cni")
                .env("CNI_ARGS", args)
                .env("EMBEDDED_DATASTORE_PATH", db)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawning the plugin");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            let output = child.wait_with_output().unwrap();
            (output, start.elapsed())
        })
        .expect("entering the node namespace");
    assert!(
        output.status.success(),
        "{} {command} failed: {}",
        program.join(" "),
        String::from_utf8_lossy(&output.stdout)
    );
    elapsed
}

/// Writes the pool, the node and ClusterInformation, then holds the
/// datastore open as the node agent does: a watch with its own connection,
/// read on a thread of its own until the process ends.
fn prepare(db: &std::path::Path) {
    use calico_datastore::Backend as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::new(EmbeddedBackend::open(db).await.unwrap());
        common::datastore::seed(&client, &[("default-ipv4-ippool", "10.66.0.0/16", 26)]).await;
    });
    let db = db.to_path_buf();
    let (ready, opened) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        runtime.block_on(async {
            use futures::StreamExt as _;
            let backend = EmbeddedBackend::open(&db).await.unwrap();
            let now = backend.revision().await.unwrap();
            let mut watch = backend.watch("/calico/", now).await.unwrap();
            ready.send(()).unwrap();
            while watch.next().await.is_some() {}
        })
    });
    opened.recv().expect("the datastore watch");
}
