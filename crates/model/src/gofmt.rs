//! Number formatting as Go prints it, so tables and YAML match calicoctl's
//! byte for byte.

/// `strconv.FormatFloat(f, 'g', -1, 64)`, which is also what `fmt` prints
/// for `%v`: the shortest digits that round-trip, in exponent form when the
/// exponent is below -4 or at least 6 (`1e+06`, `100000`, `1.5e-05`).
pub fn format_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` prints the shortest round-trip digits: `1.0000005e6`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let mut out = format!("{sign}{}", &digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exp_sign = if exp < 0 { '-' } else { '+' };
        out.push_str(&format!("e{exp_sign}{:02}", exp.abs()));
        return out;
    }
    // Fixed notation: the decimal point sits `exp + 1` digits in.
    let point = exp + 1;
    let mut out = sign.to_owned();
    if point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-point) as usize));
        out.push_str(&digits);
    } else if point as usize >= digits.len() {
        out.push_str(&digits);
        out.push_str(&"0".repeat(point as usize - digits.len()));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    out
}

/// A number in YAML as calicoctl prints it: JSON numbers are read back as
/// integers when they have no fraction, else as floats printed with
/// [`format_g`].
pub(crate) fn format_yaml_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 && f.abs() <= i64::MAX as f64 {
        return format!("{}", f as i64);
    }
    match format_g(f).as_str() {
        "+Inf" => ".inf".to_owned(),
        "-Inf" => "-.inf".to_owned(),
        "NaN" => ".nan".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_format_matches_go() {
        let cases: &[(f64, &str)] = &[
            (100.0, "100"),
            (1000.0, "1000"),
            (100000.0, "100000"),
            (1_000_000.0, "1e+06"),
            (10_000_000.0, "1e+07"),
            (1234567.5, "1.2345675e+06"),
            (100.5, "100.5"),
            (0.5, "0.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.25, "-2.25"),
            (0.0, "0"),
            (123456.0, "123456"),
            (1e100, "1e+100"),
        ];
        for (f, want) in cases {
            assert_eq!(format_g(*f), *want, "{f}");
        }
    }

    #[test]
    fn yaml_numbers() {
        let n = |v: serde_json::Value| format_yaml_number(v.as_number().unwrap());
        assert_eq!(n(serde_json::json!(26)), "26");
        assert_eq!(n(serde_json::json!(1000.0)), "1000");
        assert_eq!(n(serde_json::json!(2.5)), "2.5");
        assert_eq!(n(serde_json::json!(-3)), "-3");
    }
}
