//! What policy says about each pair of pods: the resources read from the
//! datastore into `calico-policy`'s reference evaluator (what `calicoctl
//! policy explain` answers from), asked about the same TCP flow the probe
//! makes. The lab compares it with what the kernel did.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use calico_model::{
    GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint, NetworkPolicy, NetworkSet, Profile, Tier,
    WorkloadEndpoint,
};
use calico_policy::eval::{Flow, Packet, Verdict};
use calico_policy::explain::{ResourceSet, explain};
use calico_policy::program::Failsafe;
use calico_policy::{EndpointKey, Update};

use crate::datastore::Store;
use crate::probe::{self, Matrix, PROBE_PORT};
use crate::state::PodState;

/// The source port of the explained flow (any ephemeral port).
const SOURCE_PORT: u16 = 49152;

/// Every resource policy depends on, read from the datastore. Resources
/// the evaluator refuses are left out and named in the second value.
pub fn load(store: &Store) -> anyhow::Result<(ResourceSet, Vec<String>)> {
    let client = &store.client;
    let read = "reading the policy resources";
    let mut updates: Vec<Update> = Vec::new();
    macro_rules! all {
        ($kind:ty) => {
            updates.extend(
                store
                    .run(client.list_typed::<$kind>(None, None))
                    .context(read)?
                    .into_iter()
                    .map(Update::from),
            )
        };
    }
    all!(Tier);
    all!(Profile);
    all!(NetworkPolicy);
    all!(GlobalNetworkPolicy);
    all!(NetworkSet);
    all!(GlobalNetworkSet);
    all!(HostEndpoint);
    all!(WorkloadEndpoint);
    let mut resources = ResourceSet::new();
    let mut skipped = Vec::new();
    for update in updates {
        let what = update.describe();
        if let Err(e) = resources.apply(update) {
            skipped.push(format!("{what}: {e}"));
        }
    }
    Ok((resources, skipped))
}

/// Whether policy allows a TCP connection from `from` to `to` on the
/// probe port.
pub fn allowed(resources: &ResourceSet, from: &PodState, to: &PodState) -> bool {
    let (Ok(src), Ok(dst)) = (from.ip.parse::<IpAddr>(), to.ip.parse::<IpAddr>()) else {
        return false;
    };
    let flow = Flow {
        src_endpoint: Some(EndpointKey::workload(&from.namespace, &from.endpoint)),
        dst_endpoint: Some(EndpointKey::workload(&to.namespace, &to.endpoint)),
        packet: Packet::tcp(src, SOURCE_PORT, dst, PROBE_PORT),
    };
    explain(resources, &Failsafe::default(), &flow).verdict == Verdict::Allow
}

/// The expected matrix.
pub fn expected(store: &Store, pods: &[PodState]) -> anyhow::Result<(Matrix, Vec<String>)> {
    let (resources, skipped) = load(store)?;
    let mut matrix = Matrix::new();
    for (i, from) in pods.iter().enumerate() {
        for (j, to) in pods.iter().enumerate() {
            if i != j {
                matrix.insert((i, j), allowed(&resources, from, to));
            }
        }
    }
    Ok((matrix, skipped))
}

/// The cells where the kernel and policy disagree.
pub fn mismatches(observed: &Matrix, expected: &Matrix) -> Vec<(usize, usize)> {
    expected
        .iter()
        .filter(|(pair, want)| observed.get(pair) != Some(want))
        .map(|(pair, _)| *pair)
        .collect()
}

/// Measures until the kernel agrees with policy or `timeout` passes (the
/// agents program changes within moments, not at once). Returns the last
/// measurement, the expectation and the resources left out.
pub fn converge(
    store: &Store,
    pods: &[PodState],
    timeout: Duration,
) -> anyhow::Result<(Matrix, Matrix, Vec<String>)> {
    let deadline = Instant::now() + timeout;
    loop {
        let (expected, skipped) = expected(store, pods)?;
        let observed = probe::measure(pods)?;
        if mismatches(&observed, &expected).is_empty() || Instant::now() >= deadline {
            return Ok((observed, expected, skipped));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatches_are_the_cells_that_differ() {
        let expected = Matrix::from([((0, 1), true), ((1, 0), false), ((0, 2), true)]);
        let observed = Matrix::from([((0, 1), true), ((1, 0), true), ((0, 2), false)]);
        assert_eq!(mismatches(&observed, &expected), vec![(0, 2), (1, 0)]);
        assert!(mismatches(&expected, &expected).is_empty());
    }
}
