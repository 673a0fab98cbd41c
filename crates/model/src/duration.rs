//! Go duration strings (`"90s"`, `"1h30m"`, `"250ms"`), which Calico uses
//! for every interval and timeout field.

/// Parses a Go duration into signed nanoseconds. Accepts what Go's
/// `time.ParseDuration` accepts: an optional sign, then one or more
/// `<decimal><unit>` terms with units `ns`, `us`, `µs`, `μs`, `ms`, `s`,
/// `m`, `h`; `"0"` alone is zero.
pub fn parse_go_duration(s: &str) -> Option<i128> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let nanos = total.round() as i128;
    Some(if negative { -nanos } else { nanos })
}

/// A non-negative Go duration as a `std::time::Duration`.
pub fn go_duration(s: &str) -> Option<std::time::Duration> {
    let nanos = parse_go_duration(s)?;
    u64::try_from(nanos)
        .ok()
        .map(std::time::Duration::from_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_forms() {
        let cases: &[(&str, Option<i128>)] = &[
            ("0", Some(0)),
            ("90s", Some(90_000_000_000)),
            ("1h30m", Some(5_400_000_000_000)),
            ("250ms", Some(250_000_000)),
            ("1.5s", Some(1_500_000_000)),
            ("-2m", Some(-120_000_000_000)),
            ("10m0s", Some(600_000_000_000)),
            ("3us", Some(3_000)),
            ("", None),
            ("5", None),
            ("5x", None),
            ("s", None),
            ("1..5s", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration(input), *want, "{input}");
        }
        assert_eq!(go_duration("-1s"), None);
        assert_eq!(go_duration("2s"), Some(std::time::Duration::from_secs(2)));
    }
}
