//! k6-style thresholds: what parses, what each kind of metric accepts, and
//! where an error points.

use anyhow::ensure;
use gymfleet::sla::threshold::{Comparison, Statistic};
use gymfleet::sla::{Metric, MetricKind, Metrics, Threshold};

#[gymfleet_harness::test]
fn latency_thresholds_parse_to_microseconds() -> anyhow::Result<()> {
    for (text, statistic, comparison, limit) in [
        ("p99 < 100ms", Statistic::Percentile(99.0), Comparison::Less, 100_000.0),
        ("p(95)<=80ms", Statistic::Percentile(95.0), Comparison::LessOrEqual, 80_000.0),
        ("p99.9 < 1.5ms", Statistic::Percentile(99.9), Comparison::Less, 1_500.0),
        ("max < 250us", Statistic::Max, Comparison::Less, 250.0),
        ("med > 2s", Statistic::Percentile(50.0), Comparison::Greater, 2_000_000.0),
        ("  avg >= 500ns ", Statistic::Avg, Comparison::GreaterOrEqual, 0.5),
        ("min != 1m", Statistic::Min, Comparison::NotEqual, 60_000_000.0),
    ] {
        let threshold = Threshold::parse(text, MetricKind::Trend)?;
        ensure!(threshold.statistic == statistic, "{text}: {threshold:?}");
        ensure!(threshold.comparison == comparison, "{text}: {threshold:?}");
        ensure!((threshold.limit - limit).abs() < 1e-9, "{text}: {threshold:?}");
        ensure!(threshold.source == text.trim(), "{text}: {threshold:?}");
    }
    Ok(())
}

#[gymfleet_harness::test]
fn counters_and_rates_take_their_own_limits() -> anyhow::Result<()> {
    let zero = Threshold::parse("== 0", MetricKind::Counter)?;
    ensure!(zero.statistic == Statistic::Count && zero.limit == 0.0, "{zero:?}");
    let per_second = Threshold::parse("rate > 200/s", MetricKind::Counter)?;
    ensure!(per_second.statistic == Statistic::Rate && per_second.limit == 200.0, "{per_second:?}");
    let per_minute = Threshold::parse("rate > 120/m", MetricKind::Counter)?;
    ensure!(per_minute.limit == 2.0, "{per_minute:?}");
    let errors = Threshold::parse("rate < 1%", MetricKind::Rate)?;
    ensure!(errors.statistic == Statistic::Rate && (errors.limit - 0.01).abs() < 1e-12, "{errors:?}");
    let bare = Threshold::parse("< 0.05", MetricKind::Rate)?;
    ensure!(bare.statistic == Statistic::Rate && bare.limit == 0.05, "{bare:?}");
    Ok(())
}

#[gymfleet_harness::test]
fn a_threshold_holds_only_as_its_comparison_says() -> anyhow::Result<()> {
    let below = Threshold::parse("p99 < 100us", MetricKind::Trend)?;
    ensure!(below.holds(99.0) && !below.holds(100.0) && !below.holds(101.0));
    let at_most = Threshold::parse("p99 <= 100us", MetricKind::Trend)?;
    ensure!(at_most.holds(100.0) && !at_most.holds(100.5));
    let exactly = Threshold::parse("== 0", MetricKind::Counter)?;
    ensure!(exactly.holds(0.0) && !exactly.holds(1.0));
    let above = Threshold::parse("rate > 200/s", MetricKind::Counter)?;
    ensure!(above.holds(200.5) && !above.holds(200.0));
    Ok(())
}

#[gymfleet_harness::test]
fn errors_say_what_was_expected_and_where() -> anyhow::Result<()> {
    for (text, kind, column, needle) in [
        ("p99 100ms", MetricKind::Trend, 9, "expected a comparison"),
        ("p99 < ", MetricKind::Trend, 6, "expected a limit"),
        ("p99 < 100", MetricKind::Trend, 6, "has no unit"),
        ("p99 < 100 parsecs", MetricKind::Trend, 6, "unknown unit"),
        ("< 100ms", MetricKind::Trend, 0, "starts with a statistic"),
        ("p101 < 1ms", MetricKind::Trend, 0, "not a percentile"),
        ("median < 1ms", MetricKind::Trend, 0, "unknown statistic `median`"),
        ("count < 1ms", MetricKind::Trend, 0, "does not apply"),
        ("p99 < 5", MetricKind::Counter, 0, "does not apply"),
        ("rate > 200", MetricKind::Counter, 7, "per unit of time"),
        ("rate < 150%", MetricKind::Rate, 7, "between 0% and 100%"),
        ("count < lots", MetricKind::Counter, 8, "not a number"),
        ("p99 => 1ms", MetricKind::Trend, 4, "expected `<`"),
    ] {
        let error = match Threshold::parse(text, kind) {
            Ok(threshold) => anyhow::bail!("{text:?} parsed as {threshold:?}"),
            Err(error) => error,
        };
        ensure!(error.message.contains(needle), "{text:?}: {error}");
        ensure!(error.column == column, "{text:?}: column {} not {column}: {error}", error.column);
    }
    Ok(())
}

/// Speed (latencies, counts per second) is enforced only on an optimized
/// build; counts and failure fractions are enforced on every build. Each
/// threshold here fails, so that only `enforced` tells them apart.
#[gymfleet_harness::test]
fn only_speed_thresholds_go_unenforced_in_a_debug_build() -> anyhow::Result<()> {
    let mut latency = Metric::trend();
    latency.record(5_000)?;
    let mut metrics = Metrics::default();
    metrics.insert("propagation", Metric::Trend(latency));
    let counted = Metric::Counter { count: 10, elapsed: std::time::Duration::from_secs(1) };
    metrics.insert("experiments", counted);
    metrics.insert("errors", Metric::Rate { hits: 1, total: 2 });

    let optimized = !cfg!(debug_assertions);
    for (metric, text, kind, enforced) in [
        ("propagation", "p99 < 1ms", MetricKind::Trend, optimized),
        ("experiments", "rate > 20/s", MetricKind::Counter, optimized),
        ("experiments", "count > 20", MetricKind::Counter, true),
        ("errors", "rate < 1%", MetricKind::Rate, true),
    ] {
        let check = metrics.check(metric, &Threshold::parse(text, kind)?);
        ensure!(!check.passed, "{metric} {text} should fail: {check:?}");
        ensure!(check.enforced == enforced, "{metric} {text}: enforced is {}", check.enforced);
    }
    Ok(())
}
