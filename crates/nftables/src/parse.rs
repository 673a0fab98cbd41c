//! Reads the kernel's state back into the model: the JSON that
//! `nft -n -j list table FAMILY NAME` prints.
//!
//! `-n` makes nft print protocols, ICMP types and connection states as
//! numbers, so no name tables (which depend on `/etc/protocols`) are needed.
//! Whatever the model cannot represent is not an error: it is reported as
//! [`Unreadable`] so the diff can overwrite it (someone may have edited the
//! agent's table by hand, and repair must still be able to put it back).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde_json::Value as Json;

use crate::model::{
    BaseChain, Chain, ChainType, CtState, DataType, Hook, IpFamily, Key, Log, Map, Match, Policy,
    PortProto, Rhs, Rule, Ruleset, Set, Statement, Table, TableId, Value, Verdict,
};

/// Something in a table the model has no form for, and what the diff does
/// about it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unreadable {
    /// An object kind, a table flag, or a chain, set or map definition the
    /// model cannot express: the table is replaced as a whole.
    Table(TableId),
    /// A rule could not be read: the chain is flushed and refilled.
    ChainRules(TableId, String),
    /// An element could not be read: the set is flushed and refilled.
    SetElements(TableId, String),
    /// An entry could not be read: the map is flushed and refilled.
    MapEntries(TableId, String),
}

/// The kernel's state of the agent's tables as far as the model can
/// express it, and what it could not read (with the reason).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    pub ruleset: Ruleset,
    pub unreadable: BTreeMap<Unreadable, String>,
}

impl Observed {
    /// Whether everything in the kernel was read, so that `ruleset` is the
    /// whole truth.
    pub fn is_complete(&self) -> bool {
        self.unreadable.is_empty()
    }

    /// Adds one table's listing (`None`: the table does not exist).
    pub fn add_table(&mut self, id: &TableId, json: Option<&str>) -> Result<(), ParseError> {
        if let Some(json) = json {
            let (table, unreadable) = parse_table(id, json)?;
            self.ruleset.tables.insert(id.clone(), table);
            self.unreadable.extend(unreadable);
        }
        Ok(())
    }
}

/// The listing was not the JSON nft prints.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the listing of table {table} is not JSON")]
    Json {
        table: TableId,
        #[source]
        source: serde_json::Error,
    },
    #[error("the listing of table {table} has no top-level `nftables` array")]
    Shape { table: TableId },
}

type Reason = String;

/// Parses one table's listing.
pub fn parse_table(
    id: &TableId,
    json: &str,
) -> Result<(Table, BTreeMap<Unreadable, Reason>), ParseError> {
    let doc: Json = serde_json::from_str(json).map_err(|source| ParseError::Json {
        table: id.clone(),
        source,
    })?;
    let objects = doc
        .get("nftables")
        .and_then(Json::as_array)
        .ok_or_else(|| ParseError::Shape { table: id.clone() })?;

    let mut table = Table::default();
    let mut unreadable = BTreeMap::new();
    let alien = |reason: String, unreadable: &mut BTreeMap<Unreadable, Reason>| {
        unreadable
            .entry(Unreadable::Table(id.clone()))
            .or_insert(reason);
    };
    let ours = |obj: &Json| {
        obj.get("family").and_then(Json::as_str) == Some(id.family.nft_name())
            && (obj.get("table").and_then(Json::as_str) == Some(id.name.as_str())
                || obj.get("name").and_then(Json::as_str) == Some(id.name.as_str()))
    };

    for object in objects {
        let Some((kind, body)) = object.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        match kind.as_str() {
            "metainfo" => {}
            "table" => {
                if !ours(body) {
                    continue;
                }
                if let Some(reason) = unknown_keys(body, &["family", "name", "handle"]) {
                    alien(format!("table: {reason}"), &mut unreadable);
                }
            }
            "chain" => {
                let name = str_field(body, "name");
                match parse_chain(body) {
                    Ok(chain) => {
                        table.chains.insert(name, Arc::new(chain));
                    }
                    Err(reason) => alien(format!("chain {name}: {reason}"), &mut unreadable),
                }
            }
            "rule" => {
                let chain_name = str_field(body, "chain");
                let Some(chain) = table.chains.get_mut(&chain_name) else {
                    alien(
                        format!("a rule of unknown chain {chain_name}"),
                        &mut unreadable,
                    );
                    continue;
                };
                match parse_rule(body) {
                    Ok(rule) => Arc::make_mut(chain).rules.push(rule),
                    Err(reason) => {
                        unreadable
                            .entry(Unreadable::ChainRules(id.clone(), chain_name.clone()))
                            .or_insert(reason);
                    }
                }
            }
            "set" => {
                let name = str_field(body, "name");
                match parse_set_definition(body, false) {
                    Ok((key, interval)) => {
                        let mut set = Set::new(key, interval);
                        let elements = body
                            .get("elem")
                            .and_then(Json::as_array)
                            .map(Vec::as_slice)
                            .unwrap_or(&[]);
                        for element in elements {
                            match parse_value(element, &set.key) {
                                Ok(value) => {
                                    set.elements.insert(value);
                                }
                                Err(reason) => {
                                    unreadable
                                        .entry(Unreadable::SetElements(id.clone(), name.clone()))
                                        .or_insert(reason);
                                }
                            }
                        }
                        table.sets.insert(name, Arc::new(set));
                    }
                    Err(reason) => alien(format!("set {name}: {reason}"), &mut unreadable),
                }
            }
            "map" => {
                let name = str_field(body, "name");
                match parse_set_definition(body, true) {
                    Ok((key, interval)) => {
                        let mut map = Map::new(key, interval);
                        let entries = body
                            .get("elem")
                            .and_then(Json::as_array)
                            .map(Vec::as_slice)
                            .unwrap_or(&[]);
                        for entry in entries {
                            match parse_map_entry(entry, &map.key) {
                                Ok((k, v)) => {
                                    map.entries.insert(k, v);
                                }
                                Err(reason) => {
                                    unreadable
                                        .entry(Unreadable::MapEntries(id.clone(), name.clone()))
                                        .or_insert(reason);
                                }
                            }
                        }
                        table.maps.insert(name, Arc::new(map));
                    }
                    Err(reason) => alien(format!("map {name}: {reason}"), &mut unreadable),
                }
            }
            other => alien(
                format!("holds a {other}, which the model has no form for"),
                &mut unreadable,
            ),
        }
    }
    Ok((table, unreadable))
}

fn str_field(body: &Json, field: &str) -> String {
    body.get(field)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

fn unknown_keys(body: &Json, known: &[&str]) -> Option<Reason> {
    let extra: Vec<&str> = body
        .as_object()?
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    (!extra.is_empty()).then(|| format!("has {}", extra.join(", ")))
}

fn parse_chain(body: &Json) -> Result<Chain, Reason> {
    if let Some(reason) = unknown_keys(
        body,
        &[
            "family", "table", "name", "handle", "type", "hook", "prio", "policy",
        ],
    ) {
        return Err(reason);
    }
    if body.get("hook").is_none() {
        return Ok(Chain::default());
    }
    let kind = body
        .get("type")
        .and_then(Json::as_str)
        .and_then(ChainType::from_nft_name)
        .ok_or("unknown chain type")?;
    let hook = body
        .get("hook")
        .and_then(Json::as_str)
        .and_then(Hook::from_nft_name)
        .ok_or("unknown hook")?;
    let priority = body
        .get("prio")
        .and_then(Json::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .ok_or("priority is not a number")?;
    let policy = match body.get("policy").and_then(Json::as_str) {
        Some("accept") | None => Policy::Accept,
        Some("drop") => Policy::Drop,
        Some(other) => return Err(format!("unknown policy {other}")),
    };
    Ok(Chain {
        base: Some(BaseChain {
            kind,
            hook,
            priority,
            policy,
        }),
        rules: Vec::new(),
    })
}

fn parse_set_definition(body: &Json, is_map: bool) -> Result<(DataType, bool), Reason> {
    let known: &[&str] = if is_map {
        &[
            "family", "table", "name", "handle", "type", "flags", "elem", "map",
        ]
    } else {
        &["family", "table", "name", "handle", "type", "flags", "elem"]
    };
    if let Some(reason) = unknown_keys(body, known) {
        return Err(reason);
    }
    if is_map && body.get("map").and_then(Json::as_str) != Some("verdict") {
        return Err("is not a verdict map".into());
    }
    let key = match body.get("type") {
        Some(Json::String(name)) => {
            DataType::from_nft_name(name).ok_or_else(|| format!("type {name}"))?
        }
        Some(Json::Array(parts)) => DataType::Concat(
            parts
                .iter()
                .map(|p| {
                    p.as_str()
                        .and_then(DataType::from_nft_name)
                        .ok_or_else(|| format!("type {p}"))
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err("no type".into()),
    };
    let mut interval = false;
    for flag in body
        .get("flags")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        match flag.as_str() {
            Some("interval") => interval = true,
            _ => return Err(format!("flag {flag}")),
        }
    }
    Ok((key, interval))
}

fn parse_map_entry(entry: &Json, key: &DataType) -> Result<(Value, Verdict), Reason> {
    match entry.as_array().map(Vec::as_slice) {
        Some([k, v]) => Ok((parse_value(k, key)?, parse_verdict(v)?)),
        _ => Err(format!("map entry {entry}")),
    }
}

fn parse_verdict(json: &Json) -> Result<Verdict, Reason> {
    let obj = json.as_object().ok_or_else(|| format!("verdict {json}"))?;
    let (kind, body) = obj.iter().next().ok_or_else(|| format!("verdict {json}"))?;
    let target = || {
        body.get("target")
            .and_then(Json::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("verdict {json}"))
    };
    Ok(match kind.as_str() {
        "accept" => Verdict::Accept,
        "drop" => Verdict::Drop,
        "return" => Verdict::Return,
        "jump" => Verdict::Jump(target()?),
        "goto" => Verdict::Goto(target()?),
        _ => return Err(format!("verdict {json}")),
    })
}

fn parse_rule(body: &Json) -> Result<Rule, Reason> {
    if let Some(reason) = unknown_keys(
        body,
        &["family", "table", "chain", "handle", "expr", "comment"],
    ) {
        return Err(reason);
    }
    let comment = body
        .get("comment")
        .and_then(Json::as_str)
        .map(str::to_string);
    let exprs = body
        .get("expr")
        .and_then(Json::as_array)
        .ok_or("rule without expressions")?;
    let statements = exprs
        .iter()
        .map(parse_statement)
        .collect::<Result<_, _>>()?;
    Ok(Rule {
        statements,
        comment,
    })
}

fn parse_statement(json: &Json) -> Result<Statement, Reason> {
    let obj = json
        .as_object()
        .ok_or_else(|| format!("statement {json}"))?;
    let (kind, body) = obj
        .iter()
        .next()
        .ok_or_else(|| format!("statement {json}"))?;
    Ok(match kind.as_str() {
        "match" => Statement::Match(parse_match(body)?),
        "counter" if body.is_object() => Statement::Counter,
        "log" => {
            if let Some(reason) = unknown_keys(body, &["prefix", "group"]) {
                return Err(format!("log {reason}"));
            }
            Statement::Log(Log {
                prefix: body
                    .get("prefix")
                    .and_then(Json::as_str)
                    .map(str::to_string),
                group: body
                    .get("group")
                    .and_then(Json::as_u64)
                    .and_then(|g| u16::try_from(g).ok()),
            })
        }
        "mangle" => parse_set_mark(body)?,
        "vmap" => {
            let key = parse_key(body.get("key").ok_or("vmap without key")?)?;
            let map = body
                .get("data")
                .and_then(Json::as_str)
                .and_then(|d| d.strip_prefix('@'))
                .ok_or("vmap without a named map")?;
            Statement::Vmap {
                key,
                map: map.to_string(),
            }
        }
        "accept" | "drop" | "return" | "jump" | "goto" => Statement::Verdict(parse_verdict(json)?),
        _ => return Err(format!("statement {json}")),
    })
}

fn is_meta_mark(json: &Json) -> bool {
    json.pointer("/meta/key").and_then(Json::as_str) == Some("mark")
}

fn u32_of(json: &Json) -> Result<u32, Reason> {
    json.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("{json} is not a 32-bit number"))
}

/// `meta mark set ...` in the four forms the renderer writes.
fn parse_set_mark(body: &Json) -> Result<Statement, Reason> {
    if !body.get("key").is_some_and(is_meta_mark) {
        return Err(format!("mangle {body}"));
    }
    let value = body.get("value").ok_or("mangle without value")?;
    // `{"op": [meta mark, N]}` and `{"op": [X, N]}`: the left operand and N.
    let binop = |json: &'_ Json, op: &str| -> Option<(Json, Json)> {
        match json.get(op)?.as_array()?.as_slice() {
            [a, b] => Some((a.clone(), b.clone())),
            _ => None,
        }
    };
    let masked = |json: &Json| {
        binop(json, "&")
            .filter(|(m, _)| is_meta_mark(m))
            .map(|(_, and)| and)
    };
    let (mask, value) = if value.is_number() {
        (u32::MAX, u32_of(value)?)
    } else if let Some((lhs, or)) = binop(value, "|") {
        let or = u32_of(&or)?;
        if is_meta_mark(&lhs) {
            (or, or)
        } else if let Some(and) = masked(&lhs) {
            (!u32_of(&and)? | or, or)
        } else {
            return Err(format!("mangle {body}"));
        }
    } else if let Some(and) = masked(value) {
        (!u32_of(&and)?, 0)
    } else {
        return Err(format!("mangle {body}"));
    };
    Ok(Statement::SetMark { mask, value })
}

fn parse_key(json: &Json) -> Result<Key, Reason> {
    if let Some(meta) = json.pointer("/meta/key").and_then(Json::as_str) {
        return match meta {
            "iifname" => Ok(Key::Iifname),
            "oifname" => Ok(Key::Oifname),
            "l4proto" => Ok(Key::L4Proto),
            "mark" => Ok(Key::MARK),
            _ => Err(format!("key {json}")),
        };
    }
    if let Some(payload) = json.get("payload") {
        let protocol = payload
            .get("protocol")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let field = payload
            .get("field")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let port_proto = match protocol {
            "tcp" => Some(PortProto::Tcp),
            "udp" => Some(PortProto::Udp),
            "sctp" => Some(PortProto::Sctp),
            "th" => Some(PortProto::Th),
            _ => None,
        };
        return match (protocol, field, port_proto) {
            ("ip", "saddr", _) => Ok(Key::Saddr(IpFamily::V4)),
            ("ip", "daddr", _) => Ok(Key::Daddr(IpFamily::V4)),
            ("ip6", "saddr", _) => Ok(Key::Saddr(IpFamily::V6)),
            ("ip6", "daddr", _) => Ok(Key::Daddr(IpFamily::V6)),
            ("icmp", "type", _) => Ok(Key::IcmpType(IpFamily::V4)),
            ("icmp", "code", _) => Ok(Key::IcmpCode(IpFamily::V4)),
            ("icmpv6", "type", _) => Ok(Key::IcmpType(IpFamily::V6)),
            ("icmpv6", "code", _) => Ok(Key::IcmpCode(IpFamily::V6)),
            (_, "sport", Some(p)) => Ok(Key::Sport(p)),
            (_, "dport", Some(p)) => Ok(Key::Dport(p)),
            _ => Err(format!("key {json}")),
        };
    }
    if json.pointer("/ct/key").and_then(Json::as_str) == Some("state") {
        return Ok(Key::CtState);
    }
    if let Some([lhs, mask]) = json.get("&").and_then(Json::as_array).map(Vec::as_slice) {
        if is_meta_mark(lhs) {
            return Ok(Key::Mark {
                mask: u32_of(mask)?,
            });
        }
    }
    if let Some(parts) = json.get("concat").and_then(Json::as_array) {
        return Ok(Key::Concat(
            parts.iter().map(parse_key).collect::<Result<_, _>>()?,
        ));
    }
    Err(format!("key {json}"))
}

fn parse_match(body: &Json) -> Result<Match, Reason> {
    let key = parse_key(body.get("left").ok_or("match without left side")?)?;
    let op = body.get("op").and_then(Json::as_str).unwrap_or_default();
    let negate = match (op, &key) {
        ("==", _) => false,
        ("!=", _) => true,
        ("in", Key::CtState) => false,
        _ => return Err(format!("operator {op}")),
    };
    let right = body.get("right").ok_or("match without right side")?;
    let ty = key.data_type();
    let rhs = if let Some(name) = right.as_str().and_then(|s| s.strip_prefix('@')) {
        Rhs::Set(name.to_string())
    } else if let Some(elements) = right.get("set").and_then(Json::as_array) {
        Rhs::AnyOf(
            elements
                .iter()
                .map(|e| parse_value(e, &ty))
                .collect::<Result<BTreeSet<_>, _>>()?,
        )
    } else {
        Rhs::One(parse_value(right, &ty)?)
    };
    Ok(Match { key, negate, rhs })
}

fn parse_addr(json: &Json, v6: bool) -> Result<IpAddr, Reason> {
    let addr: IpAddr = json
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{json} is not an address"))?;
    if addr.is_ipv6() != v6 {
        return Err(format!("{json} is of the wrong family"));
    }
    Ok(addr)
}

/// Connection states as nft prints them: a number, a list of numbers
/// (implicit "any of"), or, after `!=`, numbers joined by `|`.
fn ct_state_bits(json: &Json) -> Result<u8, Reason> {
    match json {
        Json::Array(list) => list
            .iter()
            .try_fold(0u8, |acc, j| Ok(acc | ct_state_bits(j)?)),
        Json::Object(obj) => match obj.get("|").and_then(Json::as_array) {
            Some(list) if obj.len() == 1 => list
                .iter()
                .try_fold(0u8, |acc, j| Ok(acc | ct_state_bits(j)?)),
            _ => Err(format!("ct state {json}")),
        },
        n => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| format!("ct state {json}")),
    }
}

/// A value of type `ty` as nft prints it with `-n`.
fn parse_value(json: &Json, ty: &DataType) -> Result<Value, Reason> {
    match ty {
        DataType::IfName => json
            .as_str()
            .map(Value::name)
            .ok_or_else(|| format!("{json} is not an interface name")),
        DataType::Ipv4Addr | DataType::Ipv6Addr => {
            let v6 = *ty == DataType::Ipv6Addr;
            if let Some(prefix) = json.get("prefix") {
                let addr = parse_addr(prefix.get("addr").unwrap_or(&Json::Null), v6)?;
                let len = prefix
                    .get("len")
                    .and_then(Json::as_u64)
                    .and_then(|l| u8::try_from(l).ok())
                    .ok_or_else(|| format!("prefix {json}"))?;
                IpNet::new(addr, len)
                    .map(Value::Net)
                    .map_err(|_| format!("prefix {json}"))
            } else if let Some([lo, hi]) = json
                .get("range")
                .and_then(Json::as_array)
                .map(Vec::as_slice)
            {
                Ok(Value::AddrRange(parse_addr(lo, v6)?, parse_addr(hi, v6)?))
            } else {
                Ok(Value::addr(parse_addr(json, v6)?))
            }
        }
        DataType::CtState => ct_state_bits(json).map(|b| Value::CtState(CtState(b))),
        DataType::Concat(types) => {
            let parts = json
                .get("concat")
                .and_then(Json::as_array)
                .ok_or_else(|| format!("{json} is not a concatenation"))?;
            if parts.len() != types.len() {
                return Err(format!("{json} does not have {} parts", types.len()));
            }
            Ok(Value::Concat(
                parts
                    .iter()
                    .zip(types)
                    .map(|(p, t)| parse_value(p, t))
                    .collect::<Result<_, _>>()?,
            ))
        }
        int_type => {
            let max = int_type.int_max().unwrap_or(0);
            let int = |j: &Json| {
                j.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n <= max)
                    .ok_or_else(|| format!("{json} is not a {int_type}"))
            };
            if let Some([lo, hi]) = json
                .get("range")
                .and_then(Json::as_array)
                .map(Vec::as_slice)
            {
                Ok(Value::Range(int(lo)?, int(hi)?))
            } else {
                Ok(Value::Int(int(json)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(objects: &str) -> String {
        format!(
            r#"{{"nftables": [{{"metainfo": {{"version": "1.0.6", "json_schema_version": 1}}}},
            {{"table": {{"family": "inet", "name": "calico", "handle": 3}}}}, {objects}]}}"#
        )
    }

    #[test]
    fn reads_sets_maps_chains_and_rules() {
        let json = listing(
            r#"{"set": {"family": "inet", "name": "s4", "table": "calico", "type": "ipv4_addr", "handle": 4, "flags": ["interval"],
                 "elem": ["10.0.0.1", {"prefix": {"addr": "10.1.0.0", "len": 16}}]}},
               {"set": {"family": "inet", "name": "np", "table": "calico", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 7,
                 "elem": [{"concat": ["10.0.0.2", 17, 53]}]}},
               {"map": {"family": "inet", "name": "ifaces", "table": "calico", "type": "ifname", "handle": 9, "map": "verdict",
                 "elem": [["cali1", {"goto": {"target": "tw"}}]]}},
               {"chain": {"family": "inet", "table": "calico", "name": "tw", "handle": 1}},
               {"chain": {"family": "inet", "table": "calico", "name": "fwd", "handle": 2, "type": "filter", "hook": "forward", "prio": -5, "policy": "drop"}},
               {"rule": {"family": "inet", "table": "calico", "chain": "fwd", "handle": 10, "comment": "c", "expr": [
                 {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": [2, 4]}},
                 {"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [80, {"range": [90, 95]}]}}},
                 {"counter": {"packets": 3, "bytes": 4}},
                 {"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"|": [{"&": [{"meta": {"key": "mark"}}, 4294902271]}, 256]}}},
                 {"vmap": {"key": {"meta": {"key": "iifname"}}, "data": "@ifaces"}}]}}"#,
        );
        let id = TableId::inet("calico");
        let (table, unreadable) = parse_table(&id, &json).unwrap();
        assert!(unreadable.is_empty(), "{unreadable:?}");
        assert_eq!(
            table.sets["s4"].elements,
            [
                Value::addr([10, 0, 0, 1]),
                Value::net("10.1.0.0/16".parse::<IpNet>().unwrap())
            ]
            .into()
        );
        assert_eq!(
            table.sets["np"].elements,
            [Value::Concat(vec![
                Value::addr([10, 0, 0, 2]),
                Value::Int(17),
                Value::Int(53)
            ])]
            .into()
        );
        assert_eq!(
            table.maps["ifaces"].entries[&Value::name("cali1")],
            Verdict::goto("tw")
        );
        assert_eq!(*table.chains["tw"], Chain::default());
        let fwd = &table.chains["fwd"];
        assert_eq!(
            fwd.base,
            Some(BaseChain::filter(Hook::Forward, -5, Policy::Drop))
        );
        assert_eq!(
            fwd.rules,
            vec![
                Rule::new()
                    .matching(
                        Key::CtState,
                        Value::CtState(CtState::ESTABLISHED | CtState::RELATED)
                    )
                    .not_matching(
                        Key::Dport(PortProto::Tcp),
                        Rhs::AnyOf([Value::Int(80), Value::Range(90, 95)].into())
                    )
                    .counter()
                    .set_mark(0xff00, 0x100)
                    .vmap(Key::Iifname, "ifaces")
                    .comment("c")
            ]
        );
    }

    #[test]
    fn mark_forms_read_back_to_mask_and_value() {
        let mangle = |value: &str| {
            let body: Json = serde_json::from_str(&format!(
                r#"{{"key": {{"meta": {{"key": "mark"}}}}, "value": {value}}}"#
            ))
            .unwrap();
            parse_set_mark(&body).unwrap()
        };
        assert_eq!(
            mangle("16"),
            Statement::SetMark {
                mask: u32::MAX,
                value: 16
            }
        );
        assert_eq!(
            mangle(r#"{"|": [{"meta": {"key": "mark"}}, 256]}"#),
            Statement::SetMark {
                mask: 256,
                value: 256
            }
        );
        assert_eq!(
            mangle(r#"{"&": [{"meta": {"key": "mark"}}, 4294902015]}"#),
            Statement::SetMark {
                mask: 0xff00,
                value: 0
            }
        );
    }

    #[test]
    fn ct_state_in_every_listed_form() {
        let parse = |right: &str| {
            let body: Json = serde_json::from_str(&format!(
                r#"{{"op": "!=", "left": {{"ct": {{"key": "state"}}}}, "right": {right}}}"#
            ))
            .unwrap();
            parse_match(&body).unwrap().rhs
        };
        let state = |bits| Rhs::One(Value::CtState(CtState(bits)));
        assert_eq!(parse("1"), state(1));
        assert_eq!(parse("[2, 4]"), state(6));
        assert_eq!(parse(r#"{"|": [{"|": [1, 2]}, 8]}"#), state(11));
    }

    #[test]
    fn what_the_model_cannot_express_is_reported_not_fatal() {
        let json = listing(
            r#"{"chain": {"family": "inet", "table": "calico", "name": "c", "handle": 1}},
               {"rule": {"family": "inet", "table": "calico", "chain": "c", "handle": 2, "expr": [{"masquerade": null}]}},
               {"set": {"family": "inet", "name": "s", "table": "calico", "type": "ipv4_addr", "handle": 4,
                 "elem": [{"elem": {"val": "10.0.0.1", "comment": "x"}}, "10.0.0.2"]}},
               {"flowtable": {"family": "inet", "name": "ft", "table": "calico", "handle": 5, "hook": "ingress", "prio": 0}}"#,
        );
        let id = TableId::inet("calico");
        let (table, unreadable) = parse_table(&id, &json).unwrap();
        let kinds: Vec<Unreadable> = unreadable.keys().cloned().collect();
        assert_eq!(
            kinds,
            vec![
                Unreadable::Table(id.clone()),
                Unreadable::ChainRules(id.clone(), "c".into()),
                Unreadable::SetElements(id.clone(), "s".into()),
            ]
        );
        assert_eq!(
            table.sets["s"].elements,
            [Value::addr([10, 0, 0, 2])].into()
        );
    }

    #[test]
    fn malformed_listing_is_an_error_naming_the_table() {
        let err = parse_table(&TableId::inet("calico"), "{").unwrap_err();
        assert!(err.to_string().contains("inet calico"), "{err}");
        let err = parse_table(&TableId::inet("calico"), "{}").unwrap_err();
        assert!(matches!(err, ParseError::Shape { .. }));
    }
}
