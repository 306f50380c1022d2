//! How the binaries print durations and tables for people.

use std::time::Duration;

/// A duration rounded to three significant figures at most, in the largest
/// unit that keeps it at 1 or more: `240ns`, `12.3µs`, `21.7ms`, `3.0s`,
/// `2m05s`.
pub fn human(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    let (value, unit) = match nanos {
        1_000..1_000_000 => (nanos as f64 / 1e3, "µs"),
        1_000_000..1_000_000_000 => (nanos as f64 / 1e6, "ms"),
        1_000_000_000..60_000_000_000 => (nanos as f64 / 1e9, "s"),
        _ => {
            let secs = d.as_secs();
            return format!("{}m{:02}s", secs / 60, secs % 60);
        }
    };
    if value >= 100.0 {
        format!("{value:.0}{unit}")
    } else {
        format!("{value:.1}{unit}")
    }
}

/// A table whose columns are as wide as their widest cell; cells longer
/// than `max` characters are cut with `…`. The last column is not padded.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    max: usize,
    right: Vec<bool>,
}

impl Table {
    /// A table with these column names; `right` marks the columns aligned
    /// to the right (numbers).
    pub fn new(header: &[&str], right: &[bool], max: usize) -> Self {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            max: max.max(1),
            right: right.to_vec(),
        }
    }

    /// Adds a row (missing cells are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines, each indented by two spaces.
    pub fn render(&self) -> String {
        let cut = |cell: &str| -> String {
            if cell.chars().count() <= self.max {
                cell.to_owned()
            } else {
                let kept: String = cell.chars().take(self.max - 1).collect();
                format!("{kept}…")
            }
        };
        let rows: Vec<Vec<String>> = std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|row| row.iter().map(|c| cut(c)).collect())
            .collect();
        let columns = self.header.len();
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                rows.iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &rows {
            let mut line = String::from(" ");
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                let pad = width - cell.chars().count();
                line.push(' ');
                if i + 1 == columns {
                    line.push_str(cell);
                } else if self.right.get(i).copied().unwrap_or(false) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        let cases = [
            (Duration::from_nanos(240), "240ns"),
            (Duration::from_nanos(12_345), "12.3µs"),
            (Duration::from_micros(21_700), "21.7ms"),
            (Duration::from_nanos(3_000_745_975), "3.0s"),
            (Duration::from_millis(457), "457ms"),
            (Duration::from_secs(125), "2m05s"),
            (Duration::ZERO, "0ns"),
        ];
        for (d, text) in cases {
            assert_eq!(human(d), text, "{d:?}");
        }
    }

    #[test]
    fn columns_fit_their_content_and_long_cells_are_cut() {
        let mut table = Table::new(&["POD", "GEN", "CAUSE"], &[false, true, false], 12);
        table.row(vec!["a".into(), "1".into(), "short".into()]);
        table.row(vec![
            "encoder/rep-10".into(),
            "12".into(),
            "a very long cause".into(),
        ]);
        assert_eq!(
            table.render(),
            "  POD          GEN CAUSE\n  a              1 short\n  encoder/rep…  12 a very long…\n"
        );
    }
}
