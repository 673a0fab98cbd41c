//! The boxed tables `calicoctl` prints, byte for byte: the default style of
//! the table library Calico's calicoctl uses (`+`/`-`/`|` borders, one space
//! of padding, upper-case headers, a separator under the header), and Go's
//! `%.5g` and `%.f` number formatting.

/// A table with a header row and left- or right-aligned columns.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    headers: Vec<String>,
    right_aligned: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_uppercase()).collect(),
            right_aligned: vec![false; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Right-aligns the data cells of the column named `header`.
    pub(crate) fn align_right(mut self, header: &str) -> Table {
        if let Some(i) = self.headers.iter().position(|h| h == header) {
            self.right_aligned[i] = true;
        }
        self
    }

    pub(crate) fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table's text, each line ending in a newline.
    pub(crate) fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(width(cell));
            }
        }
        let border: String = {
            let mut s = String::from("+");
            for w in &widths {
                s.push_str(&"-".repeat(w + 2));
                s.push('+');
            }
            s.push('\n');
            s
        };
        // With no data rows every column counts as numeric to the table
        // library, which then right-aligns the headers.
        let header_right = self.rows.is_empty();
        let mut out = String::new();
        out.push_str(&border);
        out.push_str(&line(&self.headers, &widths, &vec![header_right; columns]));
        out.push_str(&border);
        for row in &self.rows {
            out.push_str(&line(row, &widths, &self.right_aligned));
        }
        out.push_str(&border);
        out
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn line(cells: &[String], widths: &[usize], right: &[bool]) -> String {
    let mut s = String::from("|");
    for (i, w) in widths.iter().enumerate() {
        let cell = cells.get(i).map(String::as_str).unwrap_or("");
        let pad = w - width(cell);
        s.push(' ');
        if right[i] {
            s.push_str(&" ".repeat(pad));
            s.push_str(cell);
        } else {
            s.push_str(cell);
            s.push_str(&" ".repeat(pad));
        }
        s.push_str(" |");
    }
    s.push('\n');
    s
}

/// Go's `fmt.Sprintf("%.5g", float64(n))` for a count: five significant
/// digits, exponent form from 100000 up (`1.2089e+24`).
pub(crate) fn go_g5(n: u128) -> String {
    const PRECISION: usize = 5;
    let digits = n.to_string();
    if digits.len() <= PRECISION {
        return digits;
    }
    // Round the decimal digits to PRECISION significant digits, half to
    // even when exactly half (as Go rounds an exact decimal).
    let bytes = digits.as_bytes();
    let mut kept: Vec<u8> = bytes[..PRECISION].iter().map(|b| b - b'0').collect();
    let next = bytes[PRECISION] - b'0';
    let rest_nonzero = bytes[PRECISION + 1..].iter().any(|&b| b != b'0');
    let round_up = next > 5 || (next == 5 && (rest_nonzero || kept[PRECISION - 1] % 2 == 1));
    let mut exponent = digits.len() - 1;
    if round_up {
        let mut i = PRECISION;
        loop {
            if i == 0 {
                kept.insert(0, 1);
                kept.truncate(PRECISION);
                exponent += 1;
                break;
            }
            i -= 1;
            if kept[i] == 9 {
                kept[i] = 0;
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    while kept.len() > 1 && kept.last() == Some(&0) {
        kept.pop();
    }
    let mut s = String::new();
    s.push(char::from(b'0' + kept[0]));
    if kept.len() > 1 {
        s.push('.');
        for d in &kept[1..] {
            s.push(char::from(b'0' + d));
        }
    }
    s.push_str(&format!("e+{exponent:02}"));
    s
}

/// Go's `fmt.Sprintf("%.5g (%.f%%)", n, 100*n/total)`.
pub(crate) fn with_percentage(n: u128, total: u128) -> String {
    let pct = 100.0 * (n as f64) / (total as f64);
    format!("{} ({pct:.0}%)", go_g5(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_formatting() {
        for (n, want) in [
            (0u128, "0"),
            (64, "64"),
            (65536, "65536"),
            (99999, "99999"),
            (100000, "1e+05"),
            (131072, "1.3107e+05"),
            (1048576, "1.0486e+06"),
            (16777216, "1.6777e+07"),
            (1u128 << 80, "1.2089e+24"),
            (999995, "1e+06"),
            (123455, "1.2346e+05"),
            (123445, "1.2344e+05"),
        ] {
            assert_eq!(go_g5(n), want, "{n}");
        }
        assert_eq!(with_percentage(5, 64), "5 (8%)");
        assert_eq!(with_percentage(59, 64), "59 (92%)");
        assert_eq!(with_percentage(3, 8), "3 (38%)");
        assert_eq!(with_percentage(5, 8), "5 (62%)");
        assert_eq!(with_percentage(65531, 65536), "65531 (100%)");
    }

    #[test]
    fn renders_the_default_style() {
        let mut t = Table::new(&["GROUPING", "CIDR", "IPS TOTAL"]).align_right("IPS TOTAL");
        t.push(vec![
            "IP Pool".into(),
            "10.65.0.0/16".into(),
            "65536".into(),
        ]);
        t.push(vec!["Block".into(), "10.65.79.0/26".into(), "64".into()]);
        let want = "\
+----------+---------------+-----------+
| GROUPING | CIDR          | IPS TOTAL |
+----------+---------------+-----------+
| IP Pool  | 10.65.0.0/16  |     65536 |
| Block    | 10.65.79.0/26 |        64 |
+----------+---------------+-----------+
";
        assert_eq!(t.render(), want);
    }

    #[test]
    fn empty_table_right_aligns_headers() {
        let t = Table::new(&["IP", "BORROWING-NODE"]);
        let want = "\
+----+----------------+
| IP | BORROWING-NODE |
+----+----------------+
+----+----------------+
";
        assert_eq!(t.render(), want);
    }
}
