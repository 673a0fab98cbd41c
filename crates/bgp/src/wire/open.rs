//! OPEN (RFC 4271 §4.2) with capabilities (RFC 5492): multiprotocol
//! (RFC 4760), route refresh (RFC 2918), graceful restart (RFC 4724) and
//! four-octet AS numbers (RFC 6793). Other capabilities are kept as bytes.

use std::fmt;
use std::net::Ipv4Addr;

use super::reader::Reader;
use super::{DecodeError, EncodeError, code, open_error};

/// The optional parameter that carries capabilities.
const PARAM_CAPABILITIES: u8 = 2;

/// Capability codes.
pub mod capability_code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
}

/// An address family: AFI and SAFI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    pub afi: u16,
    pub safi: u8,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family { afi: 1, safi: 1 };
    pub const IPV6_UNICAST: Family = Family { afi: 2, safi: 1 };

    /// The unicast family of an address.
    pub fn unicast_of(ip: std::net::IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::IPV4_UNICAST
        } else {
            Family::IPV6_UNICAST
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Family::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            Family::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            Family { afi, safi } => write!(f, "afi {afi}/safi {safi}"),
        }
    }
}

/// The graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestart {
    /// The four flag bits: Restart State (0x8), Notification (0x4, RFC 8538).
    pub flags: u8,
    /// Seconds, 12 bits.
    pub restart_time: u16,
    pub families: Vec<GracefulRestartFamily>,
}

impl GracefulRestart {
    pub const RESTART_STATE: u8 = 0x8;
    pub const NOTIFICATION: u8 = 0x4;

    pub fn restart_state(&self) -> bool {
        self.flags & Self::RESTART_STATE != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    pub family: Family,
    /// Flags byte; 0x80 is "forwarding state preserved".
    pub flags: u8,
}

impl GracefulRestartFamily {
    pub const FORWARDING_PRESERVED: u8 = 0x80;

    pub fn forwarding_preserved(&self) -> bool {
        self.flags & Self::FORWARDING_PRESERVED != 0
    }
}

/// One capability advertised in an OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    Multiprotocol(Family),
    RouteRefresh,
    GracefulRestart(GracefulRestart),
    FourOctetAs(u32),
    /// Any other capability, kept as it came.
    Unknown {
        code: u8,
        data: Vec<u8>,
    },
}

impl Capability {
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => capability_code::MULTIPROTOCOL,
            Capability::RouteRefresh => capability_code::ROUTE_REFRESH,
            Capability::GracefulRestart(_) => capability_code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => capability_code::FOUR_OCTET_AS,
            Capability::Unknown { code, .. } => *code,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.code());
        let length_at = out.len();
        out.push(0);
        match self {
            Capability::Multiprotocol(family) => {
                out.extend_from_slice(&family.afi.to_be_bytes());
                out.push(0);
                out.push(family.safi);
            }
            Capability::RouteRefresh => {}
            Capability::GracefulRestart(gr) => {
                let word = (u16::from(gr.flags & 0xf) << 12) | (gr.restart_time & 0x0fff);
                out.extend_from_slice(&word.to_be_bytes());
                for f in &gr.families {
                    out.extend_from_slice(&f.family.afi.to_be_bytes());
                    out.push(f.family.safi);
                    out.push(f.flags);
                }
            }
            Capability::FourOctetAs(asn) => out.extend_from_slice(&asn.to_be_bytes()),
            Capability::Unknown { data, .. } => out.extend_from_slice(data),
        }
        let length = out.len() - length_at - 1;
        out[length_at] =
            u8::try_from(length).map_err(|_| EncodeError::FieldTooLong { what: "capability" })?;
        Ok(())
    }

    fn decode(code: u8, mut value: Reader<'_>) -> Result<Capability, DecodeError> {
        let bad = |what: &str| {
            DecodeError::new(
                code::OPEN_MESSAGE,
                open_error::UNSPECIFIC,
                Vec::new(),
                format!("malformed {what} capability"),
            )
        };
        Ok(match code {
            capability_code::MULTIPROTOCOL => {
                if value.len() != 4 {
                    return Err(bad("multiprotocol"));
                }
                let afi = value.u16().ok_or_else(|| bad("multiprotocol"))?;
                let _reserved = value.u8();
                let safi = value.u8().ok_or_else(|| bad("multiprotocol"))?;
                Capability::Multiprotocol(Family { afi, safi })
            }
            capability_code::ROUTE_REFRESH => {
                if !value.is_empty() {
                    return Err(bad("route refresh"));
                }
                Capability::RouteRefresh
            }
            capability_code::GRACEFUL_RESTART => {
                if value.len() < 2 || (value.len() - 2) % 4 != 0 {
                    return Err(bad("graceful restart"));
                }
                let word = value.u16().ok_or_else(|| bad("graceful restart"))?;
                let mut families = Vec::new();
                while !value.is_empty() {
                    let (Some(afi), Some(safi), Some(flags)) =
                        (value.u16(), value.u8(), value.u8())
                    else {
                        return Err(bad("graceful restart"));
                    };
                    families.push(GracefulRestartFamily {
                        family: Family { afi, safi },
                        flags,
                    });
                }
                Capability::GracefulRestart(GracefulRestart {
                    flags: (word >> 12) as u8,
                    restart_time: word & 0x0fff,
                    families,
                })
            }
            capability_code::FOUR_OCTET_AS => {
                if value.len() != 4 {
                    return Err(bad("four-octet AS"));
                }
                Capability::FourOctetAs(value.u32().ok_or_else(|| bad("four-octet AS"))?)
            }
            code => Capability::Unknown {
                code,
                data: value.rest().to_vec(),
            },
        })
    }
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The two-octet "My Autonomous System" field: the AS, or `AS_TRANS`
    /// when it does not fit (the real one is in [`Capability::FourOctetAs`]).
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
    /// One optional parameter per capability (as GoBGP and FRR send them)
    /// rather than all in one (as BIRD does). Only affects encoding.
    pub parameter_per_capability: bool,
}

impl Open {
    /// The speaker's AS: from the four-octet capability if present.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// Multiprotocol families; RFC 4760 says a speaker that lists none
    /// supports IPv4 unicast only.
    pub fn families(&self) -> Vec<Family> {
        let listed: Vec<Family> = self
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if listed.is_empty() {
            vec![Family::IPV4_UNICAST]
        } else {
            listed
        }
    }

    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }

    pub fn route_refresh(&self) -> bool {
        self.capabilities.contains(&Capability::RouteRefresh)
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(4);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let params_at = out.len();
        out.push(0);
        let groups: Vec<&[Capability]> = if self.parameter_per_capability {
            self.capabilities.chunks(1).collect()
        } else if self.capabilities.is_empty() {
            Vec::new()
        } else {
            vec![&self.capabilities[..]]
        };
        for group in groups {
            out.push(PARAM_CAPABILITIES);
            let length_at = out.len();
            out.push(0);
            for capability in group {
                capability.encode(out)?;
            }
            out[length_at] =
                u8::try_from(out.len() - length_at - 1).map_err(|_| EncodeError::FieldTooLong {
                    what: "capabilities parameter",
                })?;
        }
        out[params_at] =
            u8::try_from(out.len() - params_at - 1).map_err(|_| EncodeError::FieldTooLong {
                what: "optional parameters",
            })?;
        Ok(())
    }

    pub(super) fn decode(mut body: Reader<'_>) -> Result<Open, DecodeError> {
        let unspecific = |detail: &str| {
            DecodeError::new(
                code::OPEN_MESSAGE,
                open_error::UNSPECIFIC,
                Vec::new(),
                detail,
            )
        };
        // The header check guarantees the 10 fixed bytes.
        let version = body.u8().unwrap_or_default();
        if version != 4 {
            return Err(DecodeError::new(
                code::OPEN_MESSAGE,
                open_error::UNSUPPORTED_VERSION,
                4u16.to_be_bytes(),
                format!("BGP version {version} is not supported"),
            ));
        }
        let my_as = body.u16().unwrap_or_default();
        let hold_time = body.u16().unwrap_or_default();
        if hold_time == 1 || hold_time == 2 {
            return Err(DecodeError::new(
                code::OPEN_MESSAGE,
                open_error::UNACCEPTABLE_HOLD_TIME,
                Vec::new(),
                format!("hold time {hold_time} s is below 3 s"),
            ));
        }
        let bgp_id = Ipv4Addr::from(body.u32().unwrap_or_default());
        let params_len = body.u8().unwrap_or_default() as usize;
        if body.len() != params_len {
            return Err(unspecific(
                "optional parameters length disagrees with the message length",
            ));
        }
        let mut capabilities = Vec::new();
        let mut parameters = 0;
        while !body.is_empty() {
            let (Some(kind), Some(len)) = (body.u8(), body.u8()) else {
                return Err(unspecific("truncated optional parameter"));
            };
            let Some(mut value) = body.sub(len as usize) else {
                return Err(unspecific("optional parameter overruns the message"));
            };
            if kind != PARAM_CAPABILITIES {
                return Err(DecodeError::new(
                    code::OPEN_MESSAGE,
                    open_error::UNSUPPORTED_OPTIONAL_PARAMETER,
                    Vec::new(),
                    format!("optional parameter type {kind} is not supported"),
                ));
            }
            parameters += 1;
            while !value.is_empty() {
                let (Some(code), Some(len)) = (value.u8(), value.u8()) else {
                    return Err(unspecific("truncated capability"));
                };
                let Some(data) = value.sub(len as usize) else {
                    return Err(unspecific("capability overruns its parameter"));
                };
                capabilities.push(Capability::decode(code, data)?);
            }
        }
        let parameter_per_capability = parameters > 1 && parameters == capabilities.len();
        Ok(Open {
            my_as,
            hold_time,
            bgp_id,
            capabilities,
            parameter_per_capability,
        })
    }
}

/// A ROUTE-REFRESH request (RFC 2918; the subtype byte is RFC 7313's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    pub family: Family,
    pub subtype: u8,
}

impl RouteRefresh {
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.family.afi.to_be_bytes());
        out.push(self.subtype);
        out.push(self.family.safi);
    }

    /// `body` is exactly four bytes (checked by the header).
    pub(super) fn decode(body: &[u8]) -> RouteRefresh {
        RouteRefresh {
            family: Family {
                afi: u16::from_be_bytes([body[0], body[1]]),
                safi: body[3],
            },
            subtype: body[2],
        }
    }
}
