//! Runs this test binary again inside a small VM, for kernel
//! features this machine's kernel lacks (it has no IPIP and cannot load
//! modules).
//!
//! The host side boots a Debian kernel (`/boot/vmlinuz-*`, package
//! `linux-image-amd64`) under `qemu-system-x86_64` (with `-enable-kvm`
//! where the host's KVM can run it, see [`Accelerator`]) with an
//! initramfs built here: a static busybox for the init script, the kernel
//! modules asked for (with their dependencies from `modules.dep`,
//! decompressed if the distribution compresses them), the programs asked
//! for and this test binary, each with the shared libraries `ldd` lists.
//! The init script loads the modules and runs one test of this binary
//! with an environment variable set, so the test knows it is the guest;
//! then it powers the guest off. Whatever the guest prints reaches the
//! host on the serial console, line by line.
//!
//! Everything is bounded: qemu is killed by its PID when the guest does
//! not finish in time, and the scratch directory is removed on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What to boot.
pub struct Guest<'a> {
    /// The test (its full name in this binary) that runs in the guest.
    pub test: &'a str,
    /// Set to `1` in the guest, so the test can tell where it runs.
    pub env: &'a str,
    /// Kernel modules to load, by name (`ipip`, `veth`, ...); their
    /// dependencies are added. Modules built into the kernel are skipped.
    pub modules: &'a [&'a str],
    /// Host programs copied to the same path in the guest, with their
    /// shared libraries.
    pub programs: &'a [&'a str],
    /// Bound on the whole boot, run and power-off.
    pub timeout: Duration,
}

/// What came out of the guest.
#[derive(Debug)]
pub struct Run {
    /// The serial console, one entry per line.
    pub console: Vec<String>,
    /// The test binary's exit status, as the init script reported it.
    pub exit: Option<i32>,
    pub kernel: PathBuf,
    pub accelerator: Accelerator,
    pub elapsed: Duration,
}

/// How qemu runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    /// Hardware virtualisation (`kvm_intel` or `kvm_amd`).
    Kvm,
    /// qemu's own emulation, because `/dev/kvm` is served by a KVM that
    /// cannot run a stock kernel: PVM (`kvm_pvm`), the paravirtual KVM of
    /// nested sandboxes, runs only kernels built as PVM guests; a Debian
    /// kernel stops in its early boot there.
    Emulation,
}

impl Accelerator {
    pub fn detect() -> Accelerator {
        let hardware = ["kvm_intel", "kvm_amd"]
            .iter()
            .any(|m| Path::new("/sys/module").join(m).exists());
        if hardware {
            Accelerator::Kvm
        } else {
            Accelerator::Emulation
        }
    }

    fn qemu_args(self) -> &'static [&'static str] {
        match self {
            Accelerator::Kvm => &["-enable-kvm", "-cpu", "host"],
            Accelerator::Emulation => &["-accel", "tcg"],
        }
    }
}

/// The prefix of the init script's own lines on the console.
pub const INIT_PREFIX: &str = "vm-init:";

/// Whether this process is the guest side of `env`.
pub fn is_guest(env: &str) -> bool {
    std::env::var_os(env).is_some_and(|v| v == "1")
}

/// Boots the guest and returns its console; an error says what was
/// missing or what went wrong, with the console so far.
pub fn run(guest: &Guest) -> Result<Run, String> {
    let started = Instant::now();
    let qemu = find_in_path("qemu-system-x86_64").ok_or(
        "qemu-system-x86_64 is not installed (Debian package qemu-system-x86; scripts/setup.sh)",
    )?;
    let (kernel, modules_dir) = find_kernel()?;
    let scratch = Scratch::new()?;
    let initramfs = scratch.0.join("initramfs.cpio");
    let image = build_initramfs(guest, &modules_dir, &scratch.0)?;
    fs::write(&initramfs, image).map_err(|e| format!("writing {}: {e}", initramfs.display()))?;

    let accelerator = Accelerator::detect();
    // qemu boots an uncompressed kernel straight into its PVH entry point,
    // skipping the firmware's copy and the decompressor, which take most
    // of the boot when emulated.
    let vmlinux = uncompressed_kernel(&kernel);
    let boot_image = vmlinux.clone().unwrap_or_else(|| kernel.clone());
    eprintln!(
        "booting {} ({}) with {accelerator:?}",
        kernel.display(),
        if vmlinux.is_some() {
            "uncompressed, PVH entry"
        } else {
            "as is"
        }
    );
    let mut child = Command::new(qemu)
        .args(accelerator.qemu_args())
        .args(["-smp", "1", "-m", "768"])
        .args(["-nodefaults", "-no-user-config", "-no-reboot"])
        .args(["-display", "none", "-serial", "stdio"])
        .arg("-kernel")
        .arg(&boot_image)
        .arg("-initrd")
        .arg(&initramfs)
        .args([
            "-append",
            "console=ttyS0 quiet panic=-1 mitigations=off rdinit=/init",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting qemu: {e}"))?;
    let pid = child.id();
    eprintln!(
        "qemu (pid {pid}) started {:.1} s after the initramfs was begun",
        started.elapsed().as_secs_f64()
    );
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = started + guest.timeout;
    let mut console = Vec::new();
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => {
                eprintln!("guest {:>5.1}s| {line}", started.elapsed().as_secs_f64());
                console.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // The console closes when qemu exits; give it a moment, then stop it
    // by its PID.
    let mut status = None;
    let grace = Instant::now() + Duration::from_secs(5);
    while !timed_out && Instant::now() < grace {
        match child.try_wait() {
            Ok(Some(s)) => {
                status = Some(s);
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break,
        }
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = reader.join();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    if timed_out {
        return Err(format!(
            "the guest did not finish within {:?}; qemu (pid {pid}) was killed. qemu said: {}\nconsole:\n{}",
            guest.timeout,
            stderr.trim(),
            console.join("\n")
        ));
    }
    if status.is_none_or(|s| !s.success()) {
        return Err(format!(
            "qemu (pid {pid}) exited with {status:?}: {}\nconsole:\n{}",
            stderr.trim(),
            console.join("\n")
        ));
    }
    let exit = console.iter().find_map(|l| {
        l.strip_prefix(INIT_PREFIX)?
            .trim()
            .strip_prefix("exit ")?
            .parse()
            .ok()
    });
    Ok(Run {
        console,
        exit,
        kernel,
        accelerator,
        elapsed: started.elapsed(),
    })
}

/// The ELF kernel inside `bz_image`, extracted once per kernel into the
/// build's scratch directory for tests (`CARGO_TARGET_TMPDIR`); `None` if
/// it cannot be had, and the bzImage is booted instead.
fn uncompressed_kernel(bz_image: &Path) -> Option<PathBuf> {
    let name = bz_image
        .file_name()?
        .to_string_lossy()
        .replace("vmlinuz", "vmlinux");
    let size = fs::metadata(bz_image).ok()?.len();
    let cached = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{size}"));
    if cached.is_file() {
        return Some(cached);
    }
    let elf = extract_vmlinux(bz_image)?;
    // Written aside and renamed, so a concurrent run never boots half a
    // file.
    let partial = cached.with_extension(format!("partial-{}", std::process::id()));
    fs::write(&partial, elf).ok()?;
    fs::rename(&partial, &cached).ok()?;
    Some(cached)
}

/// The ELF kernel inside a bzImage, if it decompresses with a tool at
/// hand and carries a PVH entry note (`CONFIG_PVH`, which Debian's has).
fn extract_vmlinux(bz_image: &Path) -> Option<Vec<u8>> {
    let image = fs::read(bz_image).ok()?;
    let formats: [(&[u8], &[&str]); 3] = [
        (b"\xfd7zXZ\x00", &["xz", "-dc"]),
        (b"\x28\xb5\x2f\xfd", &["zstd", "-dcq"]),
        (b"\x1f\x8b\x08", &["gzip", "-dc"]),
    ];
    for (magic, argv) in formats {
        let Some(start) = image.windows(magic.len()).position(|w| w == magic) else {
            continue;
        };
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take()?;
        let payload = image[start..].to_vec();
        // The payload is followed by the rest of the image, which the
        // tools call trailing garbage: their exit status is ignored, the
        // output is checked instead.
        let writer = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &payload);
        });
        let output = child.wait_with_output().ok()?;
        let _ = writer.join();
        let elf = output.stdout;
        if elf.starts_with(b"\x7fELF") && has_pvh_note(&elf) {
            return Some(elf);
        }
    }
    None
}

/// Whether an ELF kernel has the note qemu boots it by: name "Xen",
/// type 18 (`XEN_ELFNOTE_PHYS32_ENTRY`), in a `PT_NOTE` segment.
fn has_pvh_note(elf: &[u8]) -> bool {
    const PT_NOTE: u32 = 4;
    const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    let notes = || -> Option<bool> {
        // ELF64, little endian.
        if elf.get(4..6)? != [2, 1] {
            return Some(false);
        }
        let phoff = usize::try_from(u64_at(0x20)?).ok()?;
        let phentsize = usize::from(u16_at(0x36)?);
        let phnum = usize::from(u16_at(0x38)?);
        for i in 0..phnum {
            let ph = phoff + i * phentsize;
            if u32_at(ph)? != PT_NOTE {
                continue;
            }
            let mut at = usize::try_from(u64_at(ph + 8)?).ok()?;
            let end = at + usize::try_from(u64_at(ph + 32)?).ok()?;
            while at + 12 <= end {
                let namesz = u32_at(at)? as usize;
                let descsz = u32_at(at + 4)? as usize;
                let kind = u32_at(at + 8)?;
                let name = elf.get(at + 12..at + 12 + namesz)?;
                if name == b"Xen\0" && kind == XEN_ELFNOTE_PHYS32_ENTRY {
                    return Some(true);
                }
                at += 12 + namesz.next_multiple_of(4) + descsz.next_multiple_of(4);
            }
        }
        Some(false)
    };
    notes().unwrap_or(false)
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("calico-routing-vm-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The newest `/boot/vmlinuz-VERSION` whose modules are installed.
fn find_kernel() -> Result<(PathBuf, PathBuf), String> {
    let mut found: Vec<(PathBuf, PathBuf)> = fs::read_dir("/boot")
        .map_err(|e| format!("reading /boot: {e}"))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let version = path.file_name()?.to_str()?.strip_prefix("vmlinuz-")?;
            let modules = Path::new("/lib/modules").join(version);
            modules
                .join("modules.dep")
                .is_file()
                .then_some((path, modules))
        })
        .collect();
    found.sort();
    found.pop().ok_or_else(|| {
        "no /boot/vmlinuz-* with its /lib/modules/VERSION/modules.dep \
         (Debian package linux-image-amd64; scripts/setup.sh)"
            .to_string()
    })
}

/// Module files to load, dependencies first, as paths relative to the
/// modules directory. Soft dependencies (`modules.softdep`, "pre:") count
/// too: `libcrc32c` fails to load without a `crc32c` implementation.
fn module_order(modules_dir: &Path, wanted: &[&str]) -> Result<Vec<String>, String> {
    let read = |name: &str| {
        fs::read_to_string(modules_dir.join(name))
            .map_err(|e| format!("reading {}: {e}", modules_dir.join(name).display()))
    };
    let dep_text = read("modules.dep")?;
    let builtin = read("modules.builtin").unwrap_or_default();
    let softdep = read("modules.softdep").unwrap_or_default();
    let aliases = read("modules.alias").unwrap_or_default();
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for line in dep_text.lines() {
        let Some((module, rest)) = line.split_once(':') else {
            continue;
        };
        by_name.insert(module_name(module), module.to_string());
        deps.insert(
            module.to_string(),
            rest.split_whitespace().map(str::to_string).collect(),
        );
    }
    // An alias names a module; of several, the portable `_generic` one.
    let resolve = |name: &str| -> Option<String> {
        let key = name.replace('-', "_");
        if let Some(module) = by_name.get(&key) {
            return Some(module.clone());
        }
        let candidates: Vec<&str> = aliases
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some("alias") && words.next() == Some(name))
                    .then(|| words.next())
                    .flatten()
            })
            .collect();
        let chosen = candidates
            .iter()
            .find(|m| m.ends_with("_generic"))
            .or(candidates.first())?;
        by_name.get(&chosen.replace('-', "_")).cloned()
    };
    // Only the soft dependencies of modules that are loaded are resolved:
    // resolving one scans every alias.
    let mut pre_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in softdep.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("softdep") {
            continue;
        }
        let Some(module) = words.next().and_then(|m| by_name.get(&m.replace('-', "_"))) else {
            continue;
        };
        let mut in_pre = false;
        for word in words {
            match word {
                "pre:" => in_pre = true,
                "post:" => in_pre = false,
                name if in_pre => pre_names
                    .entry(module.clone())
                    .or_default()
                    .push(name.to_string()),
                _ => {}
            }
        }
    }
    let mut pending: Vec<String> = wanted
        .iter()
        .filter_map(|name| by_name.get(&name.replace('-', "_")).cloned())
        .collect();
    let mut examined = BTreeSet::new();
    while let Some(module) = pending.pop() {
        if !examined.insert(module.clone()) {
            continue;
        }
        let pre: Vec<String> = pre_names
            .get(&module)
            .into_iter()
            .flatten()
            .filter_map(|name| resolve(name))
            .collect();
        let list = deps.entry(module.clone()).or_default();
        for p in pre.into_iter().rev() {
            list.insert(0, p);
        }
        pending.extend(list.iter().cloned());
    }
    let builtin: BTreeSet<String> = builtin.lines().map(module_name).collect();

    fn visit(
        module: &str,
        deps: &BTreeMap<String, Vec<String>>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(module.to_string()) {
            return;
        }
        for dep in deps.get(module).into_iter().flatten() {
            visit(dep, deps, seen, order);
        }
        order.push(module.to_string());
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for name in wanted {
        let key = name.replace('-', "_");
        match by_name.get(&key) {
            Some(module) => visit(module, &deps, &mut seen, &mut order),
            None if builtin.contains(&key) => {}
            None => {
                return Err(format!(
                    "kernel module {name} is neither in {}/modules.dep nor built in",
                    modules_dir.display()
                ));
            }
        }
    }
    Ok(order)
}

/// `kernel/net/ipv4/ip_tunnel.ko.xz` -> `ip_tunnel`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// A module file's contents, decompressed the way its name says.
fn module_bytes(path: &Path) -> Result<Vec<u8>, String> {
    let name = path.to_string_lossy();
    let tool: Option<&[&str]> = if name.ends_with(".ko.xz") {
        Some(&["xz", "-dc"])
    } else if name.ends_with(".ko.zst") {
        Some(&["zstd", "-dcq"])
    } else if name.ends_with(".ko.gz") {
        Some(&["gzip", "-dc"])
    } else {
        None
    };
    match tool {
        None => fs::read(path).map_err(|e| format!("reading {name}: {e}")),
        Some(argv) => {
            let output = Command::new(argv[0])
                .args(&argv[1..])
                .arg(path)
                .output()
                .map_err(|e| format!("running {} on {name}: {e}", argv[0]))?;
            if !output.status.success() {
                return Err(format!(
                    "{} {name}: {}",
                    argv.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            Ok(output.stdout)
        }
    }
}

/// The shared libraries (and the dynamic loader) `ldd` lists for a
/// program; none for a static one.
fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>, String> {
    let output = Command::new("ldd")
        .arg(program)
        .output()
        .map_err(|e| format!("running ldd {}: {e}", program.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        if text.contains("not a dynamic executable")
            || String::from_utf8_lossy(&output.stderr).contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(format!(
            "ldd {}: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let mut libraries = Vec::new();
    for line in text.lines() {
        let target = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = target.filter(|p| p.starts_with('/')) {
            libraries.push(PathBuf::from(path));
        }
    }
    Ok(libraries)
}

/// A binary without its debug sections (a third of the size, so a faster
/// boot), or as it is when `objcopy` is not at hand. Panic messages keep
/// their file and line either way.
fn without_debug_info(binary: &Path, scratch: &Path) -> Result<Vec<u8>, String> {
    let stripped = scratch.join("stripped");
    let done = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(binary)
        .arg(&stripped)
        .status()
        .is_ok_and(|s| s.success());
    let path = if done { stripped.as_path() } else { binary };
    fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn build_initramfs(guest: &Guest, modules_dir: &Path, scratch: &Path) -> Result<Vec<u8>, String> {
    let mut archive = Cpio::default();
    for dir in ["proc", "sys", "dev", "run", "tmp", "modules", "guest"] {
        archive.dir(dir);
    }
    archive.symlink("var/run", "/run");
    archive.char_device("dev/console", 5, 1);

    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or("busybox is not installed (Debian package busybox-static; scripts/setup.sh)")?;
    let mut programs: Vec<(PathBuf, String)> = vec![(busybox.to_path_buf(), "bin/busybox".into())];
    for program in guest.programs {
        let path = find_in_path(program)
            .or_else(|| Some(PathBuf::from(program)).filter(|p| p.is_file()))
            .ok_or_else(|| format!("{program} is not installed on this machine"))?;
        let inside = path.to_string_lossy().trim_start_matches('/').to_string();
        programs.push((path, inside));
    }
    let me = std::env::current_exe().map_err(|e| format!("finding this test binary: {e}"))?;
    programs.push((me.clone(), "guest/test".into()));

    let mut libraries = BTreeSet::new();
    for (host, inside) in &programs {
        let bytes = if *host == me {
            without_debug_info(host, scratch)?
        } else {
            fs::read(host).map_err(|e| format!("reading {}: {e}", host.display()))?
        };
        archive.file(inside, 0o755, &bytes);
        libraries.extend(shared_libraries(host)?);
    }
    for library in &libraries {
        // Read through symlinks (the loader is one), stored at the path
        // the programs ask for.
        let bytes = fs::read(library).map_err(|e| format!("reading {}: {e}", library.display()))?;
        archive.file(
            library.to_string_lossy().trim_start_matches('/'),
            0o755,
            &bytes,
        );
    }

    let mut order = String::new();
    for module in module_order(modules_dir, guest.modules)? {
        let bytes = module_bytes(&modules_dir.join(&module))?;
        let name = format!("{}.ko", module_name(&module));
        archive.file(&format!("modules/{name}"), 0o644, &bytes);
        order.push_str(&name);
        order.push('\n');
    }
    archive.file("modules/order", 0o644, order.as_bytes());

    let init = format!(
        r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
for m in $(cat /modules/order); do
  insmod /modules/$m || echo "{INIT_PREFIX} insmod $m failed"
done
echo "{INIT_PREFIX} kernel $(uname -r), modules loaded: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
{env}=1 RUST_BACKTRACE=1 /guest/test --exact {test} --nocapture --test-threads=1
echo "{INIT_PREFIX} exit $?"
poweroff -f
"#,
        env = guest.env,
        test = guest.test,
    );
    archive.file("init", 0o755, init.as_bytes());
    Ok(archive.finish())
}

/// An uncompressed initramfs: the cpio "newc" format the kernel unpacks.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    inode: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.inode += 1;
        let fields = [
            self.inode,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    fn parents(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn dir(&mut self, path: &str) {
        if self.dirs.contains(path) {
            return;
        }
        self.parents(path);
        self.dirs.insert(path.to_string());
        self.entry(path, 0o040755, (0, 0), &[]);
    }

    fn file(&mut self, path: &str, permissions: u32, data: &[u8]) {
        self.parents(path);
        self.entry(path, 0o100000 | permissions, (0, 0), data);
    }

    fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        self.entry(path, 0o120777, (0, 0), target.as_bytes());
    }

    fn char_device(&mut self, path: &str, major: u32, minor: u32) {
        self.parents(path);
        self.entry(path, 0o020600, (major, minor), &[]);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_drop_path_and_compression() {
        assert_eq!(module_name("kernel/net/ipv4/ip_tunnel.ko"), "ip_tunnel");
        assert_eq!(module_name("kernel/net/ipv4/ipip.ko.xz"), "ipip");
        assert_eq!(
            module_name("kernel/drivers/net/nf-tables.ko.zst"),
            "nf_tables"
        );
    }
}
