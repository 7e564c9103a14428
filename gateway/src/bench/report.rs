//! Figures by metric and endpoint, and each target's ratio to the best baseline.

use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Debug, Default)]
struct Row {
    better: Option<Better>,
    values: BTreeMap<String, f64>,
}

/// Every figure of one run.
#[derive(Debug)]
pub struct Figures {
    /// Endpoint names in the order given, and whether each is a baseline.
    endpoints: Vec<(String, bool)>,
    /// Metric rows in the order they were first set.
    rows: Vec<(String, Row)>,
}

impl Figures {
    pub fn new(endpoints: Vec<(String, bool)>) -> Self {
        Self {
            endpoints,
            rows: Vec::new(),
        }
    }

    pub fn set(&mut self, metric: &str, endpoint: &str, value: f64, better: Better) {
        let idx = match self.rows.iter().position(|(m, _)| m == metric) {
            Some(i) => i,
            None => {
                self.rows.push((metric.to_owned(), Row::default()));
                self.rows.len() - 1
            }
        };
        let row = &mut self.rows[idx].1;
        row.better = Some(better);
        row.values.insert(endpoint.to_owned(), value);
    }

    pub fn get(&self, metric: &str, endpoint: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|(m, _)| m == metric)
            .and_then(|(_, r)| r.values.get(endpoint).copied())
    }

    /// The best baseline value of a metric, if any baseline has one.
    fn best_baseline(&self, row: &Row) -> Option<f64> {
        let vals = self
            .endpoints
            .iter()
            .filter(|(_, base)| *base)
            .filter_map(|(n, _)| row.values.get(n).copied());
        match row.better {
            Some(Better::Higher) => vals.reduce(f64::max),
            Some(Better::Lower) => vals.reduce(f64::min),
            None => None,
        }
    }

    /// target ÷ best baseline for metric; > 1 is better for "higher" metrics,
    /// < 1 for "lower" ones.
    pub fn ratio(&self, metric: &str, target: &str) -> Option<f64> {
        let (_, row) = self.rows.iter().find(|(m, _)| m == metric)?;
        let best = self.best_baseline(row)?;
        let v = row.values.get(target)?;
        (best > 0.0).then(|| v / best)
    }

    fn targets(&self) -> impl Iterator<Item = &str> {
        self.endpoints
            .iter()
            .filter(|(_, b)| !*b)
            .map(|(n, _)| n.as_str())
    }

    /// A Markdown table: one row per metric, one column per endpoint, then
    /// one ratio column per target.
    pub fn table(&self) -> String {
        let mut out = String::from("| figure |");
        for (n, base) in &self.endpoints {
            let _ = write!(out, " {n}{} |", if *base { " (baseline)" } else { "" });
        }
        for t in self.targets() {
            let _ = write!(out, " {t} ÷ best baseline |");
        }
        out.push_str("\n|---|");
        for _ in 0..self.endpoints.len() + self.targets().count() {
            out.push_str("---:|");
        }
        for (metric, row) in &self.rows {
            let _ = write!(out, "\n| {metric} |");
            for (n, _) in &self.endpoints {
                match row.values.get(n) {
                    Some(v) => {
                        let _ = write!(out, " {} |", fmt(*v));
                    }
                    None => out.push_str(" – |"),
                }
            }
            for t in self.targets() {
                match self.ratio(metric, t) {
                    Some(r) => {
                        let _ = write!(out, " {r:.2} |");
                    }
                    None => out.push_str(" – |"),
                }
            }
        }
        out
    }

    pub fn json(&self) -> String {
        let mut rows = serde_json::Map::new();
        for (metric, row) in &self.rows {
            let mut vals = serde_json::Map::new();
            for (n, v) in &row.values {
                vals.insert(n.clone(), serde_json::json!(v));
            }
            let ratios: serde_json::Map<String, serde_json::Value> = self
                .targets()
                .filter_map(|t| Some((t.to_owned(), serde_json::json!(self.ratio(metric, t)?))))
                .collect();
            rows.insert(
                metric.clone(),
                serde_json::json!({ "values": vals, "ratio_to_best_baseline": ratios }),
            );
        }
        serde_json::to_string_pretty(&rows).unwrap_or_default()
    }
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_use_the_best_baseline_in_the_right_direction() {
        let mut f = Figures::new(vec![
            ("dooz".into(), false),
            ("sw".into(), true),
            ("rclone".into(), true),
        ]);
        f.set("put (MB/s)", "dooz", 150.0, Better::Higher);
        f.set("put (MB/s)", "sw", 100.0, Better::Higher);
        f.set("put (MB/s)", "rclone", 200.0, Better::Higher);
        f.set("p99 (ms)", "dooz", 10.0, Better::Lower);
        f.set("p99 (ms)", "sw", 20.0, Better::Lower);
        f.set("p99 (ms)", "rclone", 5.0, Better::Lower);
        assert_eq!(f.ratio("put (MB/s)", "dooz"), Some(0.75));
        assert_eq!(f.ratio("p99 (ms)", "dooz"), Some(2.0));
        let t = f.table();
        assert!(t.contains("| put (MB/s) | 150 | 100 | 200 | 0.75 |"), "{t}");
        assert!(f.json().contains("ratio_to_best_baseline"));
    }
}
