//! Durations and percentages as people write them in files and on the
//! command line: `250us`, `1.5ms`, `30s`, `2m`, `1%`.

use std::time::Duration;

/// Parses a duration: a non-negative decimal number followed by `ns`,
/// `us` (or `µs`), `ms`, `s` or `m`.
///
/// The error says what was wrong and what a duration looks like.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as `250us`, `30ms` or `2s`"))?;
    let nanos_per_unit = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "" => {
            return Err(format!(
                "`{text}` has no unit: write `{number}ms` or `{number}s`"
            ));
        }
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}`; use `ns`, `us`, `ms`, `s` or `m`"
            ));
        }
    };
    let nanos = value * nanos_per_unit;
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(format!("`{text}` is too long a duration"));
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// Parses a fraction written as a percentage (`1%`, `0.5%`) or as a
/// number in [0, 1] (`0.01`).
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let (number, scale) = match trimmed.strip_suffix('%') {
        Some(number) => (number.trim(), 100.0),
        None => (trimmed, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a rate such as `1%` or `0.01`"))?;
    let fraction = value / scale;
    match (0.0..=1.0).contains(&fraction) {
        true => Ok(fraction),
        false => Err(format!("`{text}` is not a rate between 0% and 100%")),
    }
}

/// Writes a duration in microseconds with a unit that keeps it short:
/// `850us`, `1.25ms`, `2.50s`.
pub fn format_micros(micros: f64) -> String {
    match micros {
        m if m < 1.0 => format!("{:.0}ns", m * 1e3),
        m if m < 1e3 => format!("{m:.0}us"),
        m if m < 1e6 => format!("{:.2}ms", m / 1e3),
        m => format!("{:.2}s", m / 1e6),
    }
}

/// Writes nanoseconds with a unit that keeps them short.
pub fn format_nanos(nanos: f64) -> String {
    match nanos {
        n if n < 1e3 => format!("{n:.1}ns"),
        n if n < 1e6 => format!("{:.2}us", n / 1e3),
        n if n < 1e9 => format!("{:.2}ms", n / 1e6),
        n => format!("{:.2}s", n / 1e9),
    }
}
