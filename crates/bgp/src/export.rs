//! What a best path looks like when sent to one peer, or whether it is sent
//! at all: split horizon, well-known communities (RFC 1997), iBGP
//! propagation and route reflection (RFC 4456 §6-8), AS_PATH prepending,
//! LOCAL_PREF and MED handling, next hop self or kept.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::attributes::{PathAttributes, community};
use crate::rib::{DEFAULT_LOCAL_PREF, Path};

/// Which learned prefixes may be passed on to a peer (prefixes this
/// speaker originates always are).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LearnedFilter {
    /// Everything BGP's own rules allow.
    #[default]
    All,
    /// Nothing learned is passed on.
    Nothing,
    /// Only prefixes inside one of these (Calico: the IP pools).
    Within(Vec<IpNet>),
}

impl LearnedFilter {
    pub fn allows(&self, prefix: &IpNet) -> bool {
        match self {
            LearnedFilter::All => true,
            LearnedFilter::Nothing => false,
            LearnedFilter::Within(nets) => nets.iter().any(|n| n.contains(prefix)),
        }
    }
}

/// Everything export needs to know about the receiving peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportTarget {
    pub peer: IpAddr,
    pub local_as: u32,
    pub remote_as: u32,
    pub router_id: Ipv4Addr,
    /// Set when this speaker is a route reflector.
    pub cluster_id: Option<Ipv4Addr>,
    /// The peer is one of our route reflector clients.
    pub rr_client: bool,
    /// Our IPv4 and IPv6 next hops towards this peer.
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Keep the learned next hop even towards an eBGP peer
    /// (Calico's `keepOriginalNextHop`).
    pub keep_next_hop: bool,
    /// Put our address as next hop even on learned routes sent over iBGP
    /// (Calico's `nextHopMode: Self`).
    pub next_hop_self: bool,
    pub learned: LearnedFilter,
}

impl ExportTarget {
    pub fn is_external(&self) -> bool {
        self.local_as != self.remote_as
    }

    fn own_next_hop(&self, prefix: &IpNet) -> Option<IpAddr> {
        match prefix {
            IpNet::V4(_) => self.next_hop_v4.map(IpAddr::V4),
            IpNet::V6(_) => self.next_hop_v6.map(IpAddr::V6),
        }
    }
}

/// The attributes `path` to `prefix` is sent to `to` with, or `None` when
/// it must not be sent there.
pub fn export(prefix: &IpNet, path: &Path, to: &ExportTarget) -> Option<Arc<PathAttributes>> {
    let attrs = &*path.attrs;
    if path.source.peer == Some(to.peer) {
        return None;
    }
    if attrs.has_community(community::NO_ADVERTISE) {
        return None;
    }
    let external = to.is_external();
    if external
        && (attrs.has_community(community::NO_EXPORT)
            || attrs.has_community(community::NO_EXPORT_SUBCONFED))
    {
        return None;
    }
    let learned = !path.is_local();
    if learned && !to.learned.allows(prefix) {
        return None;
    }
    let from_ibgp = learned && !path.source.external;
    let reflecting = from_ibgp && !external;
    if reflecting {
        // iBGP-learned routes go to iBGP peers only through a reflector:
        // from a client to everyone, from a non-client to clients.
        to.cluster_id?;
        if !path.source.rr_client && !to.rr_client {
            return None;
        }
    }

    let mut out = attrs.clone();
    if external {
        out.as_path.prepend(to.local_as, 1);
        out.local_pref = None;
        out.originator_id = None;
        out.cluster_list.clear();
        if learned {
            // A MED learned from one AS means nothing to another.
            out.med = None;
        }
        if !(to.keep_next_hop && learned && out.next_hop.is_some()) {
            out.next_hop = Some(to.own_next_hop(prefix)?);
            out.link_local_next_hop = None;
        }
    } else {
        out.local_pref = Some(attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF));
        if reflecting {
            out.originator_id = Some(attrs.originator_id.unwrap_or(path.source.router_id));
            if let Some(cluster) = to.cluster_id {
                out.cluster_list.insert(0, cluster);
            }
        }
        let keep = learned && !to.next_hop_self && out.next_hop.is_some();
        if !keep {
            out.next_hop = Some(to.own_next_hop(prefix)?);
            out.link_local_next_hop = None;
        }
    }
    Some(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::PathSource;
    use crate::wire::AsPath;

    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const CLUSTER: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);

    fn target(peer: u8, remote_as: u32) -> ExportTarget {
        ExportTarget {
            peer: IpAddr::from([10, 0, 0, peer]),
            local_as: 64512,
            remote_as,
            router_id: ME,
            cluster_id: None,
            rr_client: false,
            next_hop_v4: Some(ME),
            next_hop_v6: None,
            keep_next_hop: false,
            next_hop_self: false,
            learned: LearnedFilter::All,
        }
    }

    fn learned(peer: u8, external: bool, rr_client: bool) -> Path {
        Path {
            attrs: Arc::new(PathAttributes {
                as_path: if external {
                    AsPath::sequence([65000])
                } else {
                    AsPath::default()
                },
                next_hop: Some(IpAddr::from([10, 0, 0, peer])),
                local_pref: Some(150),
                med: Some(7),
                ..PathAttributes::default()
            }),
            source: PathSource {
                peer: Some(IpAddr::from([10, 0, 0, peer])),
                external,
                router_id: Ipv4Addr::new(10, 0, 0, peer),
                rr_client,
            },
            stale: false,
        }
    }

    fn local() -> Path {
        Path {
            attrs: Arc::new(PathAttributes {
                communities: vec![(64512 << 16) | 100],
                ..PathAttributes::default()
            }),
            source: PathSource::local(ME),
            stale: false,
        }
    }

    fn prefix() -> IpNet {
        "192.168.5.0/26".parse().unwrap()
    }

    #[test]
    fn local_routes_go_everywhere_with_next_hop_self() {
        let to_ibgp = export(&prefix(), &local(), &target(2, 64512)).unwrap();
        assert_eq!(to_ibgp.next_hop, Some(IpAddr::V4(ME)));
        assert_eq!(to_ibgp.local_pref, Some(100));
        assert!(to_ibgp.as_path.segments.is_empty());
        assert_eq!(to_ibgp.communities, vec![(64512 << 16) | 100]);
        let to_ebgp = export(&prefix(), &local(), &target(3, 65000)).unwrap();
        assert_eq!(to_ebgp.as_path, AsPath::sequence([64512]));
        assert_eq!(to_ebgp.local_pref, None);
        // No address of the prefix's family: cannot be sent.
        assert_eq!(
            export(&"fd00::/64".parse().unwrap(), &local(), &target(3, 65000)),
            None
        );
    }

    #[test]
    fn ibgp_rules_and_route_reflection() {
        let mut rr = target(3, 64512);
        rr.cluster_id = Some(CLUSTER);
        let mut rr_client = rr.clone();
        rr_client.rr_client = true;
        // (name, path, target, sent?)
        let cases = [
            (
                "split horizon",
                learned(3, false, false),
                target(3, 64512),
                false,
            ),
            (
                "ibgp to ibgp without reflection",
                learned(2, false, false),
                target(3, 64512),
                false,
            ),
            (
                "non-client to non-client",
                learned(2, false, false),
                rr.clone(),
                false,
            ),
            (
                "non-client to client",
                learned(2, false, false),
                rr_client.clone(),
                true,
            ),
            (
                "client to non-client",
                learned(2, false, true),
                rr.clone(),
                true,
            ),
            (
                "client to client",
                learned(2, false, true),
                rr_client.clone(),
                true,
            ),
            (
                "ebgp to ibgp",
                learned(2, true, false),
                target(3, 64512),
                true,
            ),
            (
                "ibgp to ebgp",
                learned(2, false, false),
                target(3, 65000),
                true,
            ),
        ];
        for (name, path, to, sent) in cases {
            assert_eq!(export(&prefix(), &path, &to).is_some(), sent, "{name}");
        }
        let reflected = export(&prefix(), &learned(2, false, true), &rr).unwrap();
        assert_eq!(reflected.originator_id, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(reflected.cluster_list, vec![CLUSTER]);
        assert_eq!(
            reflected.next_hop,
            Some(IpAddr::from([10, 0, 0, 2])),
            "reflection keeps the next hop"
        );
        assert_eq!(reflected.local_pref, Some(150));
        // Reflecting an already reflected route keeps its originator and
        // adds our cluster in front.
        let mut again = learned(2, false, true);
        let mut attrs = (*again.attrs).clone();
        attrs.originator_id = Some(Ipv4Addr::new(10, 9, 9, 9));
        attrs.cluster_list = vec![Ipv4Addr::new(1, 1, 1, 1)];
        again.attrs = Arc::new(attrs);
        let twice = export(&prefix(), &again, &rr).unwrap();
        assert_eq!(twice.originator_id, Some(Ipv4Addr::new(10, 9, 9, 9)));
        assert_eq!(twice.cluster_list, vec![CLUSTER, Ipv4Addr::new(1, 1, 1, 1)]);
        let mut self_rr = rr.clone();
        self_rr.next_hop_self = true;
        assert_eq!(
            export(&prefix(), &learned(2, false, true), &self_rr)
                .unwrap()
                .next_hop,
            Some(IpAddr::V4(ME))
        );
    }

    #[test]
    fn ebgp_export_prepends_and_strips() {
        let out = export(&prefix(), &learned(2, false, false), &target(3, 65000)).unwrap();
        assert_eq!(out.as_path, AsPath::sequence([64512]));
        assert_eq!(out.local_pref, None);
        assert_eq!(out.med, None);
        assert_eq!(out.next_hop, Some(IpAddr::V4(ME)));
        let mut keep = target(3, 65000);
        keep.keep_next_hop = true;
        assert_eq!(
            export(&prefix(), &learned(2, false, false), &keep)
                .unwrap()
                .next_hop,
            Some(IpAddr::from([10, 0, 0, 2]))
        );
    }

    #[test]
    fn well_known_communities_limit_export() {
        for (c, ibgp, ebgp) in [
            (community::NO_ADVERTISE, false, false),
            (community::NO_EXPORT, true, false),
            (community::NO_EXPORT_SUBCONFED, true, false),
        ] {
            let mut path = local();
            Arc::make_mut(&mut path.attrs).communities.push(c);
            assert_eq!(export(&prefix(), &path, &target(2, 64512)).is_some(), ibgp);
            assert_eq!(export(&prefix(), &path, &target(2, 65000)).is_some(), ebgp);
        }
    }

    #[test]
    fn learned_filter_limits_learned_routes_only() {
        let mut to = target(3, 65000);
        to.learned = LearnedFilter::Within(vec!["192.168.0.0/16".parse().unwrap()]);
        assert!(export(&prefix(), &learned(2, false, false), &to).is_some());
        assert!(
            export(
                &"10.5.0.0/16".parse().unwrap(),
                &learned(2, false, false),
                &to
            )
            .is_none()
        );
        assert!(export(&"10.5.0.0/16".parse().unwrap(), &local(), &to).is_some());
        to.learned = LearnedFilter::Nothing;
        assert!(export(&prefix(), &learned(2, false, false), &to).is_none());
    }
}
