//! `calicoctl node status` output, as Calico prints it from BIRD's
//! `show protocols`: one table per address family, peers named the way
//! confd names BIRD protocols (`Mesh_…`, `Node_…`, `Global_…`), BIRD's
//! protocol state (`up`/`start`/`down`), the time of the last change, and
//! the BGP state with BIRD's error wording.
//!
//! [`format_peer_tables`] prints what follows calicoctl's own
//! "Calico process is running." line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::driver::StatusReport;
use crate::session::State;
use crate::speaker::PeerStatus;

/// One row as calicoctl shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRow {
    pub peer_address: String,
    pub peer_type: &'static str,
    pub state: &'static str,
    pub since: String,
    pub info: String,
}

/// BIRD shows times within the last 20 hours as a time of day, older ones
/// as a date.
const RECENT: Duration = Duration::from_secs(20 * 3600);

/// The row for a peer, or `None` for peers calicoctl does not list (names
/// not of the `Mesh_`/`Node_`/`Global_` form).
pub fn row(peer: &PeerStatus, since: Option<SystemTime>, now: SystemTime) -> Option<StatusRow> {
    let (kind, rest) = peer.name.split_once('_')?;
    let peer_type = match kind {
        "Global" => "global",
        "Mesh" => "node-to-node mesh",
        "Node" => "node specific",
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    // calicoctl takes the address from the protocol name.
    let separator = if peer.address.is_ipv6() { ":" } else { "." };
    let peer_address = rest.replace('_', separator);
    let state = match peer.state {
        State::Established => "up",
        State::Idle => "down",
        _ => "start",
    };
    let mut info = peer.state.to_string();
    if peer.state != State::Established
        && let Some(error) = &peer.info
    {
        info.push(' ');
        info.push_str(error);
    }
    Some(StatusRow {
        peer_address,
        peer_type,
        state,
        since: since.map(|t| bird_time(t, now)).unwrap_or_default(),
        info,
    })
}

/// A time as BIRD's protocol list shows it (UTC).
pub fn bird_time(at: SystemTime, now: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let recent = now.duration_since(at).map(|d| d < RECENT).unwrap_or(true);
    if recent {
        let day = secs % 86_400;
        format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
    } else {
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// Year, month, day of a day count since 1970-01-01 (the proleptic
/// Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Renders rows as calicoctl's table: upper-case centred headings, cells
/// left-aligned, `+---+` rules.
pub fn render_table(rows: &[StatusRow]) -> String {
    let headings = ["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"];
    let cells: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.peer_address.as_str(),
                r.peer_type,
                r.state,
                r.since.as_str(),
                r.info.as_str(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([headings[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = rule.clone();
    for (i, h) in headings.iter().enumerate() {
        let extra = widths[i] - h.len();
        let left = extra / 2;
        out.push_str(&format!(
            "| {}{}{} ",
            " ".repeat(left),
            h,
            " ".repeat(extra - left)
        ));
    }
    out.push_str("|\n");
    out.push_str(&rule);
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            out.push_str(&format!("| {}{} ", cell, " ".repeat(pad)));
        }
        out.push_str("|\n");
    }
    out.push_str(&rule);
    out
}

/// Everything calicoctl prints after "Calico process is running.": the
/// IPv4 and IPv6 sections and the closing blank line.
pub fn format_peer_tables(report: &StatusReport) -> String {
    let mut out = String::new();
    for (family, v6) in [("4", false), ("6", true)] {
        out.push_str(&format!("\nIPv{family} BGP status\n"));
        let mut peers: Vec<&PeerStatus> = report
            .peers
            .iter()
            .filter(|p| p.address.is_ipv6() == v6)
            .collect();
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        let rows: Vec<StatusRow> = peers
            .into_iter()
            .filter_map(|p| row(p, p.since.map(|s| report.wall_time(s)), report.wall))
            .collect();
        if rows.is_empty() {
            out.push_str(&format!("No IPv{family} peers found.\n"));
        } else {
            out.push_str(&render_table(&rows));
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Instant;

    use super::*;

    fn peer(name: &str, address: &str, state: State, info: Option<&str>) -> PeerStatus {
        PeerStatus {
            name: name.to_string(),
            address: address.parse::<IpAddr>().unwrap(),
            remote_as: 64512,
            state,
            since: None,
            info: info.map(str::to_string),
            routes_received: 0,
            routes_sent: 0,
        }
    }

    #[test]
    fn tables_look_like_calicoctls() {
        let now = Instant::now();
        // 2024-03-05 16:37:11 UTC.
        let wall = UNIX_EPOCH + Duration::from_secs(1_709_656_631);
        let mut up = peer(
            "Mesh_172_17_8_103",
            "172.17.8.103",
            State::Established,
            Some("Socket: old error"),
        );
        up.since = Some(now - Duration::from_secs(60));
        let mut down = peer(
            "Node_172_17_8_104",
            "172.17.8.104",
            State::Active,
            Some("Socket: Connection refused"),
        );
        down.since = Some(now - Duration::from_secs(3 * 86_400));
        let report = StatusReport {
            now,
            wall,
            peers: vec![
                down,
                up,
                peer(
                    "Global_10_1_1_1_port_1790",
                    "10.1.1.1",
                    State::Connect,
                    None,
                ),
                peer("peer_10_9_9_9", "10.9.9.9", State::Established, None),
            ],
        };
        let text = format_peer_tables(&report);
        assert_eq!(
            text,
            "
IPv4 BGP status
+--------------------+-------------------+-------+------------+-----------------------------------+
|    PEER ADDRESS    |     PEER TYPE     | STATE |   SINCE    |               INFO                |
+--------------------+-------------------+-------+------------+-----------------------------------+
| 10.1.1.1.port.1790 | global            | start |            | Connect                           |
| 172.17.8.103       | node-to-node mesh | up    | 16:36:11   | Established                       |
| 172.17.8.104       | node specific     | start | 2024-03-02 | Active Socket: Connection refused |
+--------------------+-------------------+-------+------------+-----------------------------------+

IPv6 BGP status
No IPv6 peers found.

"
        );
        // Peers not named like confd's protocols (10.9.9.9) are not listed;
        // a port suffix shows in the address, as calicoctl derives it from
        // the name.
    }

    #[test]
    fn the_classic_two_peer_table() {
        let rows = vec![
            StatusRow {
                peer_address: "172.17.8.103".into(),
                peer_type: "node-to-node mesh",
                state: "up",
                since: "16:37:11".into(),
                info: "Established".into(),
            },
            StatusRow {
                peer_address: "172.17.8.104".into(),
                peer_type: "node-to-node mesh",
                state: "up",
                since: "16:37:11".into(),
                info: "Established".into(),
            },
        ];
        assert_eq!(
            render_table(&rows),
            "\
+--------------+-------------------+-------+----------+-------------+
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |
+--------------+-------------------+-------+----------+-------------+
| 172.17.8.103 | node-to-node mesh | up    | 16:37:11 | Established |
| 172.17.8.104 | node-to-node mesh | up    | 16:37:11 | Established |
+--------------+-------------------+-------+----------+-------------+
"
        );
    }

    #[test]
    fn ipv6_names_turn_back_into_addresses() {
        let p = peer("Mesh_fd00__2", "fd00::2", State::Established, None);
        let r = row(&p, None, UNIX_EPOCH).unwrap();
        assert_eq!(r.peer_address, "fd00::2");
        assert_eq!(r.state, "up");
    }

    #[test]
    fn dates_follow_the_calendar() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (19_782, (2024, 2, 29)),
            (11_016, (2000, 2, 29)),
            (-1, (1969, 12, 31)),
        ] {
            assert_eq!(civil_from_days(days), date);
        }
        let now = UNIX_EPOCH + Duration::from_secs(1_709_656_631);
        assert_eq!(bird_time(now - Duration::from_secs(3600), now), "15:37:11");
        assert_eq!(
            bird_time(now - Duration::from_secs(21 * 3600), now),
            "2024-03-04"
        );
    }
}
