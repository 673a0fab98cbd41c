//! The command line: calicoctl's commands and flags, plus `selector`,
//! `convert` and `policy explain`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Calico CLI tool for managing Calico resources.
#[derive(Debug, Parser)]
#[command(
    name = "calicoctl",
    version = crate::VERSION,
    about = "Manage Calico resources: network policy, IP pools, BGP and endpoint configuration",
    long_about = "calicoctl manages Calico resources in the datastore named by --config \
                  (default /etc/calico/calicoctl.cfg) or by DATASTORE_TYPE, ETCD_ENDPOINTS, \
                  ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE and EMBEDDED_DATASTORE_PATH."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Path to the file containing connection configuration in YAML or JSON
    /// format [default: /etc/calico/calicoctl.cfg, else the environment].
    #[arg(short = 'c', long, global = true, value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// Allow client and cluster versions mismatch.
    #[arg(long, global = true)]
    pub allow_version_mismatch: bool,
    /// Set the log level (panic, fatal, error, warn, info, debug).
    #[arg(short = 'l', long, global = true, default_value = "panic")]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create resources by file, directory or stdin; fails for resources that exist.
    Create(CreateArgs),
    /// Create or update resources by file, directory or stdin.
    Apply(FileArgs),
    /// Replace existing resources by file, directory or stdin.
    Replace(FileArgs),
    /// Delete resources by file, directory, stdin, or kind and name.
    Delete(DeleteArgs),
    /// Get resources by kind and name, or all of a kind.
    Get(GetArgs),
    /// Patch a resource in place with a JSON merge patch.
    Patch(PatchArgs),
    /// Add, update or remove a label of a resource.
    Label(LabelArgs),
    /// Validate resources by file, directory or stdin without applying them.
    Validate(FileArgs),
    /// Convert Kubernetes NetworkPolicies to Calico v3 NetworkPolicies.
    Convert(ConvertArgs),
    /// Display the version of calicoctl and of the cluster.
    Version(VersionArgs),
    /// Check a selector or test it against labels.
    #[command(subcommand)]
    Selector(SelectorCommand),
    /// Explain what policy decides for traffic between two endpoints.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// IP address management: usage, consistency checks, releasing
    /// addresses, settings.
    #[command(subcommand)]
    Ipam(IpamCommand),
    /// Calico node management.
    #[command(subcommand)]
    Node(NodeCommand),
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Check the status of the Calico node instance: whether it runs, and
    /// its BGP peerings. Reads the agent's status socket
    /// (CALICO_BGP_STATUS_SOCKET, default /var/run/calico/bgp.ctl).
    Status,
}

/// Where resources are read from.
#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// Filename, directory, or '-' for stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILENAME")]
    pub filename: PathBuf,
    /// Process the directory given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Do not error if files contain no data.
    #[arg(long)]
    pub skip_empty: bool,
    /// Namespace of the resources (for namespaced kinds that name none).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Write the valid resources even when others in the files are invalid
    /// (the invalid ones are reported and the command still fails).
    #[arg(long)]
    pub continue_on_error: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Skip over and treat as successful any resources that already exist.
    #[arg(long)]
    pub skip_exists: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// The kind of resource to delete (when no file is given).
    #[arg(value_name = "KIND", required_unless_present = "filename")]
    pub kind: Option<String>,
    /// Names of the resources to delete.
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Filename, directory, or '-' for stdin.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILENAME",
        conflicts_with = "kind"
    )]
    pub filename: Option<PathBuf>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    #[arg(long)]
    pub skip_empty: bool,
    /// Skip over and treat as successful any resources that do not exist.
    #[arg(short = 's', long)]
    pub skip_not_exists: bool,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// The kind of resource (ippool, gnp, networkpolicy, ...).
    #[arg(value_name = "KIND")]
    pub kind: String,
    /// Names of the resources; all of the kind when none are given.
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Output format: ps, wide, yaml, json, custom-columns=COL,...
    #[arg(short = 'o', long, default_value = "ps")]
    pub output: String,
    /// Namespace of the resources (namespaced kinds; default "default").
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// List the resources across all namespaces.
    #[arg(short = 'A', long, visible_short_alias = 'a')]
    pub all_namespaces: bool,
    /// Only list resources whose labels match this selector.
    #[arg(long)]
    pub selector: Option<String>,
    /// Strip cluster-specific information from the output of named resources.
    #[arg(long)]
    pub export: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PatchArgs {
    #[arg(value_name = "KIND")]
    pub kind: String,
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The patch, as JSON (or YAML).
    #[arg(short = 'p', long)]
    pub patch: String,
    /// Patch type: merge (JSON merge patch) or strategic (the same for
    /// Calico resources, whose lists are replaced whole).
    #[arg(short = 't', long = "type", default_value = "strategic")]
    pub patch_type: String,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LabelArgs {
    #[arg(value_name = "KIND")]
    pub kind: String,
    #[arg(value_name = "NAME")]
    pub name: String,
    /// key=value to set, or the key to remove with --remove.
    #[arg(value_name = "LABEL")]
    pub label: String,
    /// Overwrite the value when the key is already present.
    #[arg(long)]
    pub overwrite: bool,
    /// Remove the label with this key.
    #[arg(long)]
    pub remove: bool,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// Filename or '-' for stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILENAME")]
    pub filename: PathBuf,
    /// Output format: yaml or json.
    #[arg(short = 'o', long, default_value = "yaml")]
    pub output: String,
    /// Print the converted resources even if they fail validation.
    #[arg(long)]
    pub ignore_validation: bool,
}

#[derive(Debug, Clone, Args)]
pub struct VersionArgs {
    /// Display the client version only.
    #[arg(long)]
    pub client: bool,
}

#[derive(Debug, Subcommand)]
pub enum SelectorCommand {
    /// Check a selector: valid or not (with the position of the problem),
    /// its canonical form and unique ID.
    Check {
        #[arg(value_name = "EXPR")]
        expression: String,
    },
    /// Evaluate a selector against labels: exit 0 on a match, 1 on no
    /// match, 2 on a bad selector.
    Match {
        #[arg(value_name = "EXPR")]
        expression: String,
        /// Labels as key=value,key2=value2 (may be repeated).
        #[arg(long, value_name = "LABELS")]
        labels: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Explain which tier, policy and rule decide traffic from one endpoint
    /// to another.
    Explain(ExplainArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// Source: namespace/pod (a workload endpoint) or an IP address.
    #[arg(long, value_name = "NS/POD|IP")]
    pub from: String,
    /// Destination: namespace/pod (a workload endpoint) or an IP address.
    #[arg(long, value_name = "NS/POD|IP")]
    pub to: String,
    /// Destination port and protocol, e.g. 80/tcp (protocol defaults to tcp).
    #[arg(long, value_name = "PORT[/PROTO]")]
    pub port: Option<String>,
    /// Protocol when no port is given (tcp, udp, sctp, icmp or a number).
    #[arg(long)]
    pub protocol: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum IpamCommand {
    /// Show IP pool and block usage, or details of one address.
    Show {
        /// Report whether this specific IP address is in use.
        #[arg(long)]
        ip: Option<String>,
        /// Show detailed information for IP blocks as well as pools.
        #[arg(long)]
        show_blocks: bool,
        /// Show detailed information for borrowed IP addresses.
        #[arg(long)]
        show_borrowed: bool,
        /// Show the current Calico IPAM configuration.
        #[arg(long)]
        show_configuration: bool,
    },
    /// Check the integrity of the IPAM data structures.
    Check {
        /// Print all IPs that are checked.
        #[arg(long)]
        show_all_ips: bool,
        /// Print all IPs that are leaked or not allocated properly.
        #[arg(long)]
        show_problem_ips: bool,
        /// Path to write a report file to (for `ipam release --from-report`).
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<String>,
        /// Accepted for compatibility; Kubernetes services are not read.
        #[arg(long, hide = true)]
        kubeconfig: Option<String>,
    },
    /// Release a Calico-assigned IP address, or the leaks in check reports.
    Release {
        /// IP address to release.
        #[arg(long)]
        ip: Option<String>,
        /// Release the leaked addresses every given report agrees on.
        #[arg(long = "from-report", value_name = "FILE")]
        from_report: Vec<String>,
        /// Release even if the datastore is not locked or the reports are
        /// from another calicoctl version.
        #[arg(long)]
        force: bool,
    },
    /// Change the cluster-wide IPAM settings.
    Configure {
        /// Set StrictAffinity to true/false.
        #[arg(long, default_value = "")]
        strictaffinity: String,
        /// Set the maximum number of blocks that can be affine to a host.
        #[arg(long, default_value = "")]
        max_blocks_per_host: String,
        /// Whether KubeVirt VMs keep their addresses (Enabled|Disabled).
        #[arg(long, default_value = "")]
        kubevirt_ip_persistence: String,
        /// Minimum time between release and re-allocation of an address.
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        ip_cooldown_seconds: i64,
    },
}
