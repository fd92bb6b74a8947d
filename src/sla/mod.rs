//! Latency SLAs as data: metrics, k6-style thresholds, scenario files and
//! the gate that fails a change when a budget or a baseline is broken.
//!
//! A scenario ([`scenario`]) runs a fleet and a workload and checks its
//! thresholds ([`threshold`]) against the metrics it recorded
//! ([`metrics`]); the gate ([`gate`]) checks benchmark estimates,
//! instruction counts and scenario results against `.config/budgets.toml`.

pub mod gate;
pub mod metrics;
pub mod plot;
pub mod propagation;
pub mod scenario;
pub mod threshold;
pub mod units;

pub use metrics::{Check, Metric, Metrics};
pub use scenario::{Outcome, Scenario, ScenarioError};
pub use threshold::{MetricKind, Threshold, ThresholdError};

/// Lays rows out under a header in aligned, space-separated columns.
pub fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|title| title.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(widths) {
            text.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Where the project's build output goes: `$CARGO_TARGET_DIR`, or
/// `target` under `root`.
pub fn target_dir(root: &std::path::Path) -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}
