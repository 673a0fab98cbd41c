//! Address arithmetic for IPAM: blocks inside pools, ordinals inside
//! blocks, and the order in which a host walks a pool looking for a block.
//!
//! Addresses of both families are handled as `u128` integers (an IPv4
//! address is its 32-bit value), so one set of functions serves IPv4 and
//! IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// An IP family, as Calico numbers them (`4` or `6` in keys and messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    V4,
    V6,
}

impl IpVersion {
    pub fn of_addr(addr: IpAddr) -> IpVersion {
        if addr.is_ipv4() {
            IpVersion::V4
        } else {
            IpVersion::V6
        }
    }

    pub fn of_net(net: &IpNet) -> IpVersion {
        IpVersion::of_addr(net.addr())
    }

    /// 4 or 6.
    pub fn number(self) -> u8 {
        match self {
            IpVersion::V4 => 4,
            IpVersion::V6 => 6,
        }
    }

    /// Address width in bits (32 or 128).
    pub fn bits(self) -> u8 {
        match self {
            IpVersion::V4 => 32,
            IpVersion::V6 => 128,
        }
    }
}

impl std::fmt::Display for IpVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IPv{}", self.number())
    }
}

/// The address as an integer.
pub fn addr_to_int(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of family `version` with integer value `value` (truncated
/// to 32 bits for IPv4).
pub fn int_to_addr(value: u128, version: IpVersion) -> IpAddr {
    match version {
        IpVersion::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpVersion::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// First and last address of `net` as integers.
pub fn net_range(net: &IpNet) -> (u128, u128) {
    let start = addr_to_int(net.network());
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    let span = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (start, start.saturating_add(span))
}

/// Number of addresses in `net`, saturating at `u128::MAX` (only `::/0`
/// does not fit).
pub fn net_size(net: &IpNet) -> u128 {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    if host_bits >= 128 {
        u128::MAX
    } else {
        1u128 << host_bits
    }
}

/// Builds a network from an address and prefix length, host bits cleared.
/// `None` when the length is too long for the family.
pub fn make_net(addr: IpAddr, prefix_len: u8) -> Option<IpNet> {
    match addr {
        IpAddr::V4(a) => Ipv4Net::new(a, prefix_len)
            .ok()
            .map(|n| IpNet::V4(n.trunc())),
        IpAddr::V6(a) => Ipv6Net::new(a, prefix_len)
            .ok()
            .map(|n| IpNet::V6(n.trunc())),
    }
}

/// The block of prefix length `block_len` holding `addr`.
pub fn block_containing(addr: IpAddr, block_len: u8) -> Option<IpNet> {
    make_net(addr, block_len)
}

/// Whether `outer` contains every address of `inner` (same family).
pub fn covers(outer: &IpNet, inner: &IpNet) -> bool {
    same_family(outer, inner) && {
        let (os, oe) = net_range(outer);
        let (is, ie) = net_range(inner);
        os <= is && ie <= oe
    }
}

/// Whether `a` and `b` share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    same_family(a, b) && {
        let (as_, ae) = net_range(a);
        let (bs, be) = net_range(b);
        as_ <= be && bs <= ae
    }
}

fn same_family(a: &IpNet, b: &IpNet) -> bool {
    a.addr().is_ipv4() == b.addr().is_ipv4()
}

/// Number of addresses in a block. Blocks are at most 2^16 addresses in any
/// valid pool; larger ones are refused by [`Pool`](crate::pools::Pool).
pub fn block_len_to_size(block: &IpNet) -> usize {
    usize::try_from(net_size(block)).unwrap_or(usize::MAX)
}

/// The ordinal of `addr` inside `block` (its offset from the block's first
/// address), or `None` when it is outside.
pub fn ordinal_of(block: &IpNet, addr: IpAddr) -> Option<usize> {
    if addr.is_ipv4() != block.addr().is_ipv4() {
        return None;
    }
    let (start, end) = net_range(block);
    let value = addr_to_int(addr);
    if value < start || value > end {
        return None;
    }
    usize::try_from(value - start).ok()
}

/// The address at `ordinal` inside `block`.
pub fn address_at(block: &IpNet, ordinal: usize) -> IpAddr {
    let (start, _) = net_range(block);
    int_to_addr(start + ordinal as u128, IpVersion::of_net(block))
}

/// The block-sized subnets of `cidr`, in address order. `cidr` must be at
/// least as large as a block.
#[derive(Debug, Clone)]
pub struct Blocks {
    next: u128,
    last: u128,
    step: u128,
    block_len: u8,
    version: IpVersion,
    done: bool,
}

/// Every block of prefix length `block_len` inside `cidr`, in order.
pub fn blocks_in(cidr: &IpNet, block_len: u8) -> Blocks {
    let version = IpVersion::of_net(cidr);
    let (start, last) = net_range(cidr);
    let host_bits = u32::from(version.bits().saturating_sub(block_len));
    Blocks {
        next: start,
        last,
        step: if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        },
        block_len,
        version,
        done: block_len < cidr.prefix_len() || block_len > version.bits(),
    }
}

impl Iterator for Blocks {
    type Item = IpNet;

    fn next(&mut self) -> Option<IpNet> {
        if self.done || self.next > self.last {
            return None;
        }
        let block = make_net(int_to_addr(self.next, self.version), self.block_len)?;
        match self.next.checked_add(self.step) {
            Some(n) => self.next = n,
            None => self.done = true,
        }
        Some(block)
    }
}

/// Walks every block of a pool exactly once, starting from a pseudo-random
/// block and wrapping around: what Calico calls the random block
/// generator. Hosts start from different places (the seed comes from the
/// host name, see [`host_seed`]), so nodes claiming blocks at the same time
/// rarely want the same one, and one host always walks in the same order.
#[derive(Debug, Clone)]
pub struct RandomBlocks {
    base: u128,
    step: u128,
    num_blocks: u128,
    start: u128,
    index: u128,
    returned: u128,
    block_len: u8,
    version: IpVersion,
}

/// The blocks of `pool` in the order a host with `seed` tries them.
pub fn random_blocks(pool: &IpNet, block_len: u8, seed: u64) -> RandomBlocks {
    let version = IpVersion::of_net(pool);
    let (base, _) = net_range(pool);
    let valid = block_len >= pool.prefix_len() && block_len <= version.bits();
    let count_bits = u32::from(block_len.saturating_sub(pool.prefix_len()));
    let num_blocks = if !valid {
        0
    } else if count_bits >= 128 {
        u128::MAX
    } else {
        1u128 << count_bits
    };
    let host_bits = u32::from(version.bits().saturating_sub(block_len));
    let mut rng = SplitMix64(seed);
    let start = if num_blocks == 0 {
        0
    } else {
        let wide = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        wide % num_blocks
    };
    RandomBlocks {
        base,
        step: if host_bits >= 128 {
            0
        } else {
            1u128 << host_bits
        },
        num_blocks,
        start,
        index: start,
        returned: 0,
        block_len,
        version,
    }
}

impl RandomBlocks {
    /// Where `block` comes in this walk (0 for the first block), or `None`
    /// when it is not one of the pool's blocks. Lets a caller visit only
    /// the blocks that exist, in the order the walk would reach them.
    pub fn position_of(&self, block: &IpNet) -> Option<u128> {
        if block.prefix_len() != self.block_len
            || IpVersion::of_net(block) != self.version
            || self.num_blocks == 0
            || self.step == 0
        {
            return None;
        }
        let offset = addr_to_int(block.network()).checked_sub(self.base)?;
        let index = offset / self.step;
        if index >= self.num_blocks {
            return None;
        }
        Some(if index >= self.start {
            index - self.start
        } else {
            index + (self.num_blocks - self.start)
        })
    }
}

impl Iterator for RandomBlocks {
    type Item = IpNet;

    fn next(&mut self) -> Option<IpNet> {
        if self.returned >= self.num_blocks {
            return None;
        }
        let addr = self.base.wrapping_add(self.index.wrapping_mul(self.step));
        self.index += 1;
        if self.index >= self.num_blocks {
            self.index = 0;
        }
        self.returned += 1;
        make_net(int_to_addr(addr, self.version), self.block_len)
    }
}

/// The seed a host walks pools with: the 32-bit FNV-1 hash of its name, as
/// Calico seeds its block generator, so retries by one host revisit the
/// same blocks in the same order.
pub fn host_seed(hostname: &str) -> u64 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in hostname.bytes() {
        hash = hash.wrapping_mul(0x0100_0193);
        hash ^= u32::from(byte);
    }
    u64::from(hash)
}

/// A small, fast, deterministic generator (Vigna's SplitMix64); enough to
/// pick a starting block, never used for anything secret.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn ordinals_round_trip_both_families() {
        for (block, addr, ord) in [
            ("10.0.0.64/26", "10.0.0.64", 0),
            ("10.0.0.64/26", "10.0.0.127", 63),
            ("fd00::40/122", "fd00::7f", 63),
            ("fd00::/122", "fd00::5", 5),
        ] {
            let b = net(block);
            let a: IpAddr = addr.parse().unwrap();
            assert_eq!(ordinal_of(&b, a), Some(ord), "{addr} in {block}");
            assert_eq!(address_at(&b, ord), a);
        }
        assert_eq!(
            ordinal_of(&net("10.0.0.64/26"), "10.0.0.128".parse().unwrap()),
            None
        );
        assert_eq!(
            ordinal_of(&net("10.0.0.64/26"), "fd00::1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn block_containing_truncates() {
        assert_eq!(
            block_containing("10.1.2.77".parse().unwrap(), 26),
            Some(net("10.1.2.64/26"))
        );
        assert_eq!(
            block_containing("fd00::1:ff".parse().unwrap(), 122),
            Some(net("fd00::1:c0/122"))
        );
        assert_eq!(block_containing("10.1.2.77".parse().unwrap(), 33), None);
    }

    #[test]
    fn sequential_blocks_cover_the_cidr() {
        let blocks: Vec<_> = blocks_in(&net("10.0.0.0/24"), 26).collect();
        assert_eq!(
            blocks,
            vec![
                net("10.0.0.0/26"),
                net("10.0.0.64/26"),
                net("10.0.0.128/26"),
                net("10.0.0.192/26")
            ]
        );
        assert_eq!(
            blocks_in(&net("10.0.0.0/26"), 24).count(),
            0,
            "cidr smaller than a block"
        );
        assert_eq!(
            blocks_in(&net("255.255.255.0/24"), 26).count(),
            4,
            "no overflow at the top"
        );
    }

    #[test]
    fn random_walk_visits_every_block_once() {
        let pool = net("10.0.0.0/22");
        for host in ["node-a", "node-b", ""] {
            let walked: Vec<_> = random_blocks(&pool, 26, host_seed(host)).collect();
            assert_eq!(walked.len(), 16);
            let unique: BTreeSet<_> = walked.iter().collect();
            assert_eq!(unique.len(), 16);
            assert!(walked.iter().all(|b| covers(&pool, b)));
        }
        let walk = random_blocks(&pool, 26, host_seed("node-b"));
        for (i, b) in walk.clone().enumerate() {
            assert_eq!(walk.position_of(&b), Some(i as u128));
        }
        assert_eq!(walk.position_of(&net("10.0.4.0/26")), None);
        assert_eq!(walk.position_of(&net("10.0.0.0/25")), None);
        let a: Vec<_> = random_blocks(&pool, 26, host_seed("node-a")).collect();
        let again: Vec<_> = random_blocks(&pool, 26, host_seed("node-a")).collect();
        assert_eq!(a, again, "one host always walks in the same order");
    }

    #[test]
    fn random_walk_of_a_huge_ipv6_pool_is_lazy() {
        let pool = net("fd00:1::/48");
        let first: Vec<_> = random_blocks(&pool, 122, 7).take(3).collect();
        assert_eq!(first.len(), 3);
        assert!(
            first
                .iter()
                .all(|b| b.prefix_len() == 122 && covers(&pool, b))
        );
    }

    #[test]
    fn fnv_matches_reference_values() {
        // FNV-1 32-bit of "" and "a" (reference values of the algorithm).
        assert_eq!(host_seed(""), 0x811c_9dc5);
        assert_eq!(host_seed("a"), 0x050c_5d7e);
    }

    #[test]
    fn overlap_and_cover() {
        assert!(covers(&net("10.0.0.0/16"), &net("10.0.3.0/26")));
        assert!(!covers(&net("10.0.3.0/26"), &net("10.0.0.0/16")));
        assert!(overlaps(&net("10.0.3.0/26"), &net("10.0.0.0/16")));
        assert!(!overlaps(&net("10.0.0.0/16"), &net("fd00::/8")));
        assert_eq!(net_size(&net("::/0")), u128::MAX);
        assert_eq!(net_size(&net("fd00::/48")), 1u128 << 80);
    }
}
