//! The driver: makes one network namespace's kernel state match a
//! [`Desired`], reading what is there and changing only the difference.
//!
//! Owns, in that namespace: the device called `vxlan.calico` (created,
//! re-created when its VNI, port, local address or parent changed,
//! deleted when no longer wanted), the configuration of `tunl0`, the
//! permanent ARP and FDB entries on the VXLAN device, the IPv4 routes in
//! the main table with [`Reconciler::protocol`] as their protocol, and the
//! `ip calico-nat` nftables table. Nothing else is read as ours or
//! changed.
//!
//! Every step is tried even when an earlier one failed (a missing VXLAN
//! parent does not stop the unencapsulated routes); the failures are
//! returned together.

mod link;
mod neighbour;
mod route;

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use calico_netlink::{NetNs, NetNsError, Netlink, NetlinkError, format_mac};
use calico_nftables::{BlockingNft, NftCli, NftCommand, NftError};
use ipnet::Ipv4Net;
use nix::errno::Errno;
use regex::Regex;

use crate::desired::{Desired, IpipDevice, Via, VxlanDevice};
use crate::input::{DEFAULT_ROUTE_PROTOCOL, IPIP_DEVICE, VXLAN_DEVICE};
use crate::mtu::{Interface, host_mtu};
use crate::nat::NatOutgoing;

use neighbour::{Entry, Table};
use route::KernelRoute;

/// Opening the driver failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("opening network namespace {}", path.display())]
    Namespace {
        path: std::path::PathBuf,
        #[source]
        source: NetNsError,
    },
    #[error("opening a netlink socket in network namespace {}", path.display())]
    Socket {
        path: std::path::PathBuf,
        #[source]
        source: NetlinkError,
    },
}

/// One step that failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("reading the links")]
    ReadLinks {
        #[source]
        source: NetlinkError,
    },
    #[error(
        "no interface holds this node's address {address}: the VXLAN device has no parent, and same-subnet routes no interface"
    )]
    ParentNotFound { address: Ipv4Addr },
    #[error("creating device {name}")]
    CreateDevice {
        name: String,
        #[source]
        source: NetlinkError,
    },
    #[error("deleting device {name} ({reason})")]
    DeleteDevice {
        name: String,
        reason: String,
        #[source]
        source: NetlinkError,
    },
    #[error("setting the {what} of device {name}")]
    ConfigureDevice {
        name: String,
        what: &'static str,
        #[source]
        source: NetlinkError,
    },
    #[error(
        "this kernel has no IPIP support, which IP pools with ipipMode Always or CrossSubnet need (creating {name} failed: the `ipip` module is not built in or loaded); use VXLAN encapsulation (vxlanMode) instead, or a kernel with IPIP"
    )]
    IpipUnsupported { name: String },
    #[error("reading the {table} entries of {device}")]
    ReadNeighbours {
        table: &'static str,
        device: String,
        #[source]
        source: NetlinkError,
    },
    #[error("{action} {table} entry {ip} {mac} on {device}")]
    WriteNeighbour {
        action: &'static str,
        table: &'static str,
        ip: Ipv4Addr,
        mac: String,
        device: String,
        #[source]
        source: NetlinkError,
    },
    #[error("reading the routes")]
    ReadRoutes {
        #[source]
        source: NetlinkError,
    },
    #[error("{action} route to {destination}")]
    WriteRoute {
        action: &'static str,
        destination: Ipv4Net,
        #[source]
        source: NetlinkError,
    },
    #[error("route to {destination} needs device {device}, which is not there")]
    DeviceMissing {
        destination: Ipv4Net,
        device: String,
    },
    #[error("writing the NAT outgoing table")]
    Nat {
        #[source]
        source: NftError,
    },
}

/// Some steps failed; the others were applied.
#[derive(Debug)]
pub struct ApplyError {
    pub failures: Vec<StepError>,
    /// What was changed despite the failures.
    pub changes: Vec<String>,
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} routing step(s) failed", self.failures.len())?;
        for failure in &self.failures {
            write!(f, "; {}", chain(failure))?;
        }
        Ok(())
    }
}

impl std::error::Error for ApplyError {}

/// An error and its causes on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Interface indexes the routes need.
#[derive(Debug, Default, Clone, Copy)]
struct Devices {
    parent: Option<u32>,
    vxlan: Option<u32>,
    ipip: Option<u32>,
}

/// The driver for one namespace.
#[derive(Debug)]
pub struct Reconciler {
    netlink: Netlink,
    nft: NftCli,
    protocol: u8,
    /// The NAT table last written, to skip running nft when unchanged.
    nat_applied: Option<NatOutgoing>,
}

impl Reconciler {
    /// A driver for the namespace bound at `netns` (for example
    /// `/var/run/netns/NAME`), owning routes with protocol `protocol`
    /// ([`crate::Settings::route_protocol`]).
    pub fn open(netns: &Path, protocol: u8) -> Result<Reconciler, OpenError> {
        let ns = NetNs::open(netns).map_err(|source| OpenError::Namespace {
            path: netns.to_path_buf(),
            source,
        })?;
        let netlink = Netlink::open_in(&ns).map_err(|source| OpenError::Socket {
            path: netns.to_path_buf(),
            source,
        })?;
        Ok(Reconciler {
            netlink,
            nft: NftCli::new(NftCommand::in_netns(netns)),
            protocol,
            nat_applied: None,
        })
    }

    /// A driver with Calico's default route protocol.
    pub fn open_default(netns: &Path) -> Result<Reconciler, OpenError> {
        Reconciler::open(netns, DEFAULT_ROUTE_PROTOCOL)
    }

    /// The protocol number of the routes this driver owns.
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// The namespace's host MTU ([`crate::mtu`]), for
    /// [`crate::Settings::host_mtu`].
    pub fn host_mtu(&mut self, pattern: &Regex) -> Result<u32, StepError> {
        let links =
            link::all_links(&mut self.netlink).map_err(|source| StepError::ReadLinks { source })?;
        Ok(host_mtu(
            links.iter().map(|(name, mtu, up)| Interface {
                name,
                mtu: *mtu,
                up: *up,
            }),
            pattern,
        ))
    }

    /// Whether the kernel can make IPIP devices: `tunl0` exists (the
    /// `ipip` module creates it in every namespace), or one can be made.
    pub fn ipip_supported(&mut self) -> Result<bool, StepError> {
        self.ensure_ipip_device()
            .map(|_| true)
            .or_else(|e| match e {
                StepError::IpipUnsupported { .. } => Ok(false),
                other => Err(other),
            })
    }

    /// Makes the kernel match `desired`. Returns what changed, one line
    /// per change; an error lists every step that failed and what was
    /// changed anyway.
    pub fn apply(&mut self, desired: &Desired) -> Result<Vec<String>, ApplyError> {
        let mut changes = Vec::new();
        let mut failures = Vec::new();
        let mut devices = Devices::default();

        let local = desired.vxlan.as_ref().map(|v| v.local).or(desired.local);
        if let Some(address) = local {
            match link::interface_with(&mut self.netlink, address) {
                Ok(Some(index)) => devices.parent = Some(index),
                Ok(None) => failures.push(StepError::ParentNotFound { address }),
                Err(source) => failures.push(StepError::ReadLinks { source }),
            }
        }

        match (&desired.vxlan, devices.parent) {
            (Some(device), Some(parent)) => match self.ensure_vxlan(device, parent, &mut changes) {
                Ok(index) => devices.vxlan = Some(index),
                Err(e) => failures.push(e),
            },
            (Some(_), None) => {}
            (None, _) => {
                if let Err(e) = self.remove_vxlan(&mut changes) {
                    failures.push(e);
                }
            }
        }
        if let Some(index) = devices.vxlan {
            self.sync_vteps(desired, index, &mut changes, &mut failures);
        }

        if let Some(device) = &desired.ipip {
            match self.configure_ipip(device, &mut changes) {
                Ok(index) => devices.ipip = Some(index),
                Err(e) => failures.push(e),
            }
        }

        self.sync_routes(desired, devices, &mut changes, &mut failures);

        if self.nat_applied.as_ref() != Some(&desired.nat) {
            match self.nft.apply_blocking(&desired.nat.replace_script()) {
                Ok(()) => {
                    if !desired.nat.is_empty() || self.nat_applied.is_some() {
                        changes.push(format!(
                            "nat outgoing table written ({} masquerading pools)",
                            desired.nat.masquerade.len()
                        ));
                    }
                    self.nat_applied = Some(desired.nat.clone());
                }
                Err(source) => failures.push(StepError::Nat { source }),
            }
        }

        if failures.is_empty() {
            Ok(changes)
        } else {
            Err(ApplyError { failures, changes })
        }
    }

    /// Removes everything this driver owns: the VXLAN device (and with it
    /// its neighbours), our routes, the NAT table. Idempotent.
    pub fn remove_all(&mut self) -> Result<Vec<String>, ApplyError> {
        let empty = Desired::default();
        self.nat_applied = None;
        self.apply(&empty)
    }

    fn ensure_vxlan(
        &mut self,
        device: &VxlanDevice,
        parent: u32,
        changes: &mut Vec<String>,
    ) -> Result<u32, StepError> {
        let name = device.name.clone();
        let existing = link::link(&mut self.netlink, &name)
            .map_err(|source| StepError::ReadLinks { source })?;
        let existing = match existing {
            Some(state) => match link::vxlan_mismatch(&state, device, parent) {
                None => Some(state),
                Some(reason) => {
                    self.netlink.delete_link(state.index).map_err(|source| {
                        StepError::DeleteDevice {
                            name: name.clone(),
                            reason: reason.clone(),
                            source,
                        }
                    })?;
                    changes.push(format!("deleted {name}: {reason}"));
                    None
                }
            },
            None => None,
        };
        let state = match existing {
            Some(state) => state,
            None => {
                link::create_vxlan(&mut self.netlink, device, parent).map_err(|source| {
                    StepError::CreateDevice {
                        name: name.clone(),
                        source,
                    }
                })?;
                changes.push(format!(
                    "created {name} (vni {}, port {}, local {})",
                    device.vni, device.port, device.local
                ));
                link::link(&mut self.netlink, &name)
                    .map_err(|source| StepError::ReadLinks { source })?
                    .ok_or_else(|| StepError::CreateDevice {
                        name: name.clone(),
                        source: NetlinkError::Kernel {
                            errno: Errno::ENODEV,
                        },
                    })?
            }
        };
        let configure = |what| {
            let name = name.clone();
            move |source| StepError::ConfigureDevice { name, what, source }
        };
        if state.mac != Some(device.mac) {
            self.netlink
                .set_link_mac(state.index, device.mac)
                .map_err(configure("MAC"))?;
            changes.push(format!("{name} mac {}", format_mac(&device.mac)));
        }
        if state.mtu != Some(device.mtu) {
            link::set_mtu(&mut self.netlink, state.index, device.mtu).map_err(configure("MTU"))?;
            changes.push(format!("{name} mtu {}", device.mtu));
        }
        if link::ensure_only_address(&mut self.netlink, state.index, device.address)
            .map_err(configure("address"))?
        {
            changes.push(format!("{name} address {}/32", device.address));
        }
        if !state.up {
            self.netlink
                .set_link_up(state.index)
                .map_err(configure("state"))?;
            changes.push(format!("{name} up"));
        }
        Ok(state.index)
    }

    fn remove_vxlan(&mut self, changes: &mut Vec<String>) -> Result<(), StepError> {
        match self.netlink.delete_link_by_name(VXLAN_DEVICE) {
            Ok(true) => {
                changes.push(format!("deleted {VXLAN_DEVICE}: no VXLAN pool"));
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(source) => Err(StepError::DeleteDevice {
                name: VXLAN_DEVICE.into(),
                reason: "no VXLAN pool".into(),
                source,
            }),
        }
    }

    /// `tunl0`, created if the kernel does not have it yet.
    fn ensure_ipip_device(&mut self) -> Result<link::LinkState, StepError> {
        if let Some(state) = link::link(&mut self.netlink, IPIP_DEVICE)
            .map_err(|source| StepError::ReadLinks { source })?
        {
            return Ok(state);
        }
        match link::create_ipip(&mut self.netlink, IPIP_DEVICE) {
            Ok(()) => {}
            Err(e) if e.errno().is_some_and(is_not_supported) => {
                return Err(StepError::IpipUnsupported {
                    name: IPIP_DEVICE.into(),
                });
            }
            Err(e) if e.is_exists() => {}
            Err(source) => {
                return Err(StepError::CreateDevice {
                    name: IPIP_DEVICE.into(),
                    source,
                });
            }
        }
        link::link(&mut self.netlink, IPIP_DEVICE)
            .map_err(|source| StepError::ReadLinks { source })?
            .ok_or(StepError::IpipUnsupported {
                name: IPIP_DEVICE.into(),
            })
    }

    fn configure_ipip(
        &mut self,
        device: &IpipDevice,
        changes: &mut Vec<String>,
    ) -> Result<u32, StepError> {
        let state = self.ensure_ipip_device()?;
        let configure = |what| {
            move |source| StepError::ConfigureDevice {
                name: IPIP_DEVICE.into(),
                what,
                source,
            }
        };
        if state.mtu != Some(device.mtu) {
            link::set_mtu(&mut self.netlink, state.index, device.mtu).map_err(configure("MTU"))?;
            changes.push(format!("{IPIP_DEVICE} mtu {}", device.mtu));
        }
        if link::ensure_only_address(&mut self.netlink, state.index, device.address)
            .map_err(configure("address"))?
        {
            changes.push(format!("{IPIP_DEVICE} address {}/32", device.address));
        }
        if !state.up {
            self.netlink
                .set_link_up(state.index)
                .map_err(configure("state"))?;
            changes.push(format!("{IPIP_DEVICE} up"));
        }
        Ok(state.index)
    }

    fn sync_vteps(
        &mut self,
        desired: &Desired,
        index: u32,
        changes: &mut Vec<String>,
        failures: &mut Vec<StepError>,
    ) {
        for (table, name) in [(Table::Arp, "ARP"), (Table::Fdb, "FDB")] {
            let wanted: Vec<Entry> = desired
                .vteps
                .values()
                .map(|v| Entry {
                    ip: match table {
                        Table::Arp => v.tunnel_address,
                        Table::Fdb => v.node_address,
                    },
                    mac: v.mac,
                })
                .collect();
            let current = match neighbour::list(&mut self.netlink, table, index) {
                Ok(current) => current,
                Err(source) => {
                    failures.push(StepError::ReadNeighbours {
                        table: name,
                        device: VXLAN_DEVICE.into(),
                        source,
                    });
                    continue;
                }
            };
            let (stale, missing) = neighbour::diff(&current, &wanted);
            for (action, entries) in [("deleting", stale), ("writing", missing)] {
                for entry in entries {
                    let result = if action == "deleting" {
                        neighbour::delete(&mut self.netlink, table, index, &entry)
                    } else {
                        neighbour::set(&mut self.netlink, table, index, &entry)
                    };
                    let mac = format_mac(&entry.mac);
                    match result {
                        Ok(()) => changes.push(format!(
                            "{} {name} {} {mac}",
                            if action == "deleting" {
                                "removed"
                            } else {
                                "set"
                            },
                            entry.ip
                        )),
                        Err(source) => failures.push(StepError::WriteNeighbour {
                            action,
                            table: name,
                            ip: entry.ip,
                            mac,
                            device: VXLAN_DEVICE.into(),
                            source,
                        }),
                    }
                }
            }
        }
    }

    fn sync_routes(
        &mut self,
        desired: &Desired,
        devices: Devices,
        changes: &mut Vec<String>,
        failures: &mut Vec<StepError>,
    ) {
        let device_failed = !failures.is_empty();
        let mut wanted = Vec::new();
        for (destination, via) in &desired.routes {
            let device = |index: Option<u32>, name: &str| {
                index.ok_or_else(|| StepError::DeviceMissing {
                    destination: *destination,
                    device: name.to_string(),
                })
            };
            let route = match *via {
                Via::Blackhole => Ok(KernelRoute {
                    destination: *destination,
                    blackhole: true,
                    gateway: None,
                    interface: None,
                    onlink: false,
                }),
                Via::Vxlan { gateway } => {
                    device(devices.vxlan, VXLAN_DEVICE).map(|index| KernelRoute {
                        destination: *destination,
                        blackhole: false,
                        gateway: Some(gateway),
                        interface: Some(index),
                        onlink: true,
                    })
                }
                Via::Ipip { gateway } => {
                    device(devices.ipip, IPIP_DEVICE).map(|index| KernelRoute {
                        destination: *destination,
                        blackhole: false,
                        gateway: Some(gateway),
                        interface: Some(index),
                        onlink: true,
                    })
                }
                Via::Underlay { gateway } => {
                    device(devices.parent, "of this node's address").map(|index| KernelRoute {
                        destination: *destination,
                        blackhole: false,
                        gateway: Some(gateway),
                        interface: Some(index),
                        onlink: false,
                    })
                }
            };
            match route {
                Ok(route) => wanted.push(route),
                // A device that failed has its own failure reported; one
                // missing for no reported reason is worth reporting here.
                Err(e) if !device_failed => failures.push(e),
                Err(_) => {}
            }
        }
        let current = match route::list(&mut self.netlink, self.protocol) {
            Ok(current) => current,
            Err(source) => {
                failures.push(StepError::ReadRoutes { source });
                return;
            }
        };
        let (stale, missing) = route::diff(&current, &wanted);
        for route in stale {
            match route::delete(&mut self.netlink, &route, self.protocol) {
                Ok(()) => changes.push(format!("removed route {}", route.destination)),
                Err(source) => failures.push(StepError::WriteRoute {
                    action: "deleting",
                    destination: route.destination,
                    source,
                }),
            }
        }
        for route in missing {
            match route::replace(&mut self.netlink, &route, self.protocol) {
                Ok(()) => changes.push(format!(
                    "route {} {}",
                    route.destination, desired.routes[&route.destination]
                )),
                Err(source) => failures.push(StepError::WriteRoute {
                    action: "writing",
                    destination: route.destination,
                    source,
                }),
            }
        }
    }
}

/// "Operation not supported": what the kernel answers when asked for a
/// link kind it does not have.
fn is_not_supported(errno: Errno) -> bool {
    errno == Errno::EOPNOTSUPP
}
