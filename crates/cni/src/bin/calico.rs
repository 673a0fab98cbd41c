//! The `calico` CNI plugin; run as `calico-ipam` (a copy or a link), it is
//! Calico's IPAM plugin.

fn main() -> std::process::ExitCode {
    let argv0 = std::env::args().next().unwrap_or_default();
    calico_cni::cli::main(calico_cni::cli::Program::from_argv0(&argv0))
}
