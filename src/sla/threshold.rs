//! Thresholds in the style of k6: `p99 < 100ms`, `max < 250ms`,
//! `rate < 1%`, `== 0`, `rate > 200/s`.
//!
//! A threshold is a statistic of a metric, a comparison and a limit. What
//! statistics and limits make sense depends on the metric's kind, so a
//! threshold is always parsed for a kind: `p99 < 2ms` is fine for a
//! latency, an error for a counter.

use std::fmt;

use crate::sla::units::{format_micros, parse_duration, parse_fraction};

/// What a metric records, which decides the thresholds it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Latencies in a histogram: `avg`, `min`, `max`, `med`, `p(N)`
    /// against a duration.
    Trend,
    /// Things counted over the run: `count` against a number, `rate`
    /// against a number per second (`200/s`).
    Counter,
    /// A fraction of events that went wrong: `rate` against a percentage.
    Rate,
}

/// The number a threshold looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// The mean of a trend.
    Avg,
    /// The smallest value of a trend.
    Min,
    /// The largest value of a trend.
    Max,
    /// A percentile of a trend, in (0, 100]; `med` is the 50th.
    Percentile(f64),
    /// How many a counter counted.
    Count,
    /// A counter per second of the run, or a rate metric's fraction.
    Rate,
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statistic::Avg => f.write_str("avg"),
            Statistic::Min => f.write_str("min"),
            Statistic::Max => f.write_str("max"),
            Statistic::Percentile(p) => write!(f, "p({p})"),
            Statistic::Count => f.write_str("count"),
            Statistic::Rate => f.write_str("rate"),
        }
    }
}

/// How the statistic compares with the limit for the threshold to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
}

impl Comparison {
    const ALL: [(&'static str, Comparison); 6] = [
        ("<=", Comparison::LessOrEqual),
        (">=", Comparison::GreaterOrEqual),
        ("==", Comparison::Equal),
        ("!=", Comparison::NotEqual),
        ("<", Comparison::Less),
        (">", Comparison::Greater),
    ];

    fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Comparison::Less => measured < limit,
            Comparison::LessOrEqual => measured <= limit,
            Comparison::Greater => measured > limit,
            Comparison::GreaterOrEqual => measured >= limit,
            Comparison::Equal => measured == limit,
            Comparison::NotEqual => measured != limit,
        }
    }
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The text it was parsed from.
    pub source: String,
    /// What it looks at.
    pub statistic: Statistic,
    /// How it compares.
    pub comparison: Comparison,
    /// The limit, in the statistic's unit: microseconds for a trend,
    /// events for a count, events per second for a counter's rate, a
    /// fraction in [0, 1] for a rate metric.
    pub limit: f64,
}

/// Why a threshold could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ThresholdError {
    /// Where in the threshold's text the problem starts, in characters
    /// from 0.
    pub column: usize,
    /// What was wrong and what was expected.
    pub message: String,
}

impl Threshold {
    /// Parses `text` as a threshold on a metric of `kind`.
    pub fn parse(text: &str, kind: MetricKind) -> Result<Threshold, ThresholdError> {
        let error = |byte: usize, message: String| ThresholdError {
            column: text[..byte.min(text.len())].chars().count(),
            message,
        };
        let Some(op_at) = text.find(['<', '>', '=', '!']) else {
            return Err(error(
                text.len(),
                "expected a comparison (`<`, `<=`, `>`, `>=`, `==` or `!=`) and a limit, \
                 as in `p99 < 100ms`"
                    .to_owned(),
            ));
        };
        let (comparison, op_len) = Comparison::ALL
            .iter()
            .find(|(op, _)| text[op_at..].starts_with(op))
            .map(|(op, comparison)| (*comparison, op.len()))
            .ok_or_else(|| {
                error(
                    op_at,
                    "expected `<`, `<=`, `>`, `>=`, `==` or `!=`".to_owned(),
                )
            })?;

        let name = text[..op_at].trim();
        let name_at = text.len() - text.trim_start().len();
        let statistic = parse_statistic(name, kind).map_err(|message| error(name_at, message))?;

        let limit_at = op_at + op_len;
        let limit_text = text[limit_at..].trim();
        let limit_at = limit_at + (text[limit_at..].len() - text[limit_at..].trim_start().len());
        if limit_text.is_empty() {
            return Err(error(
                limit_at,
                "expected a limit after the comparison".to_owned(),
            ));
        }
        let limit =
            parse_limit(limit_text, statistic, kind).map_err(|message| error(limit_at, message))?;
        Ok(Threshold {
            source: text.trim().to_owned(),
            statistic,
            comparison,
            limit,
        })
    }

    /// Whether the threshold holds for `measured`, given in the same unit
    /// as [`limit`](Threshold::limit).
    pub fn holds(&self, measured: f64) -> bool {
        self.comparison.holds(measured, self.limit)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn parse_statistic(name: &str, kind: MetricKind) -> Result<Statistic, String> {
    let statistic = match name {
        "" => match kind {
            MetricKind::Trend => {
                return Err("a latency threshold starts with a statistic: \
                            `avg`, `min`, `max`, `med` or a percentile such as `p99`"
                    .to_owned());
            }
            MetricKind::Counter => Statistic::Count,
            MetricKind::Rate => Statistic::Rate,
        },
        "avg" => Statistic::Avg,
        "min" => Statistic::Min,
        "max" => Statistic::Max,
        "med" => Statistic::Percentile(50.0),
        "count" => Statistic::Count,
        "rate" => Statistic::Rate,
        percentile if percentile.starts_with('p') => {
            let number = percentile[1..]
                .strip_prefix('(')
                .and_then(|rest| rest.strip_suffix(')'))
                .unwrap_or(&percentile[1..]);
            match number.parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Statistic::Percentile(p),
                _ => {
                    return Err(format!(
                        "`{name}` is not a percentile: write `p99`, `p(95)` or `p99.9`"
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "unknown statistic `{other}`; expected one of `avg`, `min`, `max`, `med`, \
                 `p(N)`, `count`, `rate`"
            ));
        }
    };
    let fits = match kind {
        MetricKind::Trend => !matches!(statistic, Statistic::Count | Statistic::Rate),
        MetricKind::Counter => matches!(statistic, Statistic::Count | Statistic::Rate),
        MetricKind::Rate => matches!(statistic, Statistic::Rate),
    };
    match fits {
        true => Ok(statistic),
        false => Err(format!(
            "`{name}` does not apply to this metric; it takes {}",
            match kind {
                MetricKind::Trend => "`avg`, `min`, `max`, `med` or `p(N)`",
                MetricKind::Counter => "`count` or `rate`",
                MetricKind::Rate => "`rate`",
            }
        )),
    }
}

fn parse_limit(text: &str, statistic: Statistic, kind: MetricKind) -> Result<f64, String> {
    match (kind, statistic) {
        (MetricKind::Trend, _) => {
            parse_duration(text).map(|duration| duration.as_nanos() as f64 / 1e3)
        }
        (MetricKind::Rate, _) => parse_fraction(text),
        (MetricKind::Counter, Statistic::Rate) => {
            let (number, per) = text.split_once('/').ok_or_else(|| {
                format!("`{text}` is not a rate per unit of time such as `200/s`")
            })?;
            let seconds = match per.trim() {
                "s" => 1.0,
                "m" => 60.0,
                other => {
                    return Err(format!(
                        "`/{other}`: write a rate per second (`/s`) or per minute (`/m`)"
                    ));
                }
            };
            let value: f64 = number
                .trim()
                .parse()
                .map_err(|_| format!("`{number}` is not a number"))?;
            Ok(value / seconds)
        }
        (MetricKind::Counter, _) => text
            .parse::<f64>()
            .ok()
            .filter(|value| value.is_finite())
            .ok_or_else(|| format!("`{text}` is not a number")),
    }
}

/// Writes a measured value in its statistic's unit.
pub fn format_value(kind: MetricKind, statistic: Statistic, value: f64) -> String {
    match (kind, statistic) {
        (MetricKind::Trend, _) => format_micros(value),
        (MetricKind::Rate, _) => format!("{:.2}%", value * 100.0),
        (MetricKind::Counter, Statistic::Rate) => format!("{value:.1}/s"),
        (MetricKind::Counter, _) => format!("{value}"),
    }
}
