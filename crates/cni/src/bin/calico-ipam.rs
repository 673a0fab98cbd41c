//! The `calico-ipam` CNI plugin: Calico's IP address management.

fn main() -> std::process::ExitCode {
    calico_cni::cli::main(calico_cni::cli::Program::CalicoIpam)
}
