//! SVG plots of scenario results and of the gate's comparison with a
//! baseline.

use std::path::Path;

use plotters::prelude::*;

use crate::sla::metrics::Summary;
use crate::sla::scenario::Results;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 520;

/// The percentiles a latency curve is drawn through.
const QUANTILES: [f64; 7] = [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0];

/// Draws every latency metric of a scenario as a percentile curve: latency
/// against percentile on a scale of nines, so that the tail gets as much
/// room as the median.
pub fn scenario(results: &Results, path: &Path) -> std::io::Result<()> {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = results
        .metrics
        .iter()
        .filter(|(name, _)| !name.ends_with(".overhead"))
        .filter_map(|(name, summary)| match summary {
            Summary::Trend {
                count, histogram, ..
            } if *count > 0 => Some((name.as_str(), percentile_curve(histogram, *count))),
            _ => None,
        })
        .collect();
    let y_max = curves
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, y)| *y))
        .fold(1.0, f64::max);
    let x_max = nines(0.999) * 1.05;

    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("scenario {}", results.scenario), ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, (0.5..y_max * 1.5).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (us)")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_labels(4)
            .x_label_formatter(&|x| percentile_label(*x))
            .draw()?;
        for (idx, (name, points)) in curves.iter().enumerate() {
            let color = Palette99::pick(idx).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        }
        if !curves.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
        }
        root.present()?;
        Ok(())
    })();
    drawn.map_err(|error| std::io::Error::other(error.to_string()))
}

/// Bars of each budgeted measurement's current value relative to its
/// baseline (1.0 is unchanged), with the allowed regression marked.
pub fn trend(rows: &[(String, f64, Option<f64>)], path: &Path) -> std::io::Result<()> {
    let n_rows = rows.len().max(1);
    let x_max = rows
        .iter()
        .flat_map(|(_, ratio, allowed)| [*ratio, allowed.map_or(1.0, |allowed| 1.0 + allowed)])
        .fold(1.2, f64::max)
        * 1.1;
    let height = (80 + 28 * n_rows as u32).max(200);
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("current / baseline", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(320)
            .build_cartesian_2d(0.0..x_max, (0..n_rows).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n_rows)
            .y_label_formatter(&|segment| match segment {
                SegmentValue::CenterOf(idx) | SegmentValue::Exact(idx) => {
                    rows.get(*idx).map(|row| row.0.clone()).unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .draw()?;
        chart.draw_series(rows.iter().enumerate().map(|(idx, (_, ratio, allowed))| {
            let over = allowed.is_some_and(|allowed| *ratio > 1.0 + allowed);
            let color = match over {
                true => RED.mix(0.7),
                false => BLUE.mix(0.5),
            };
            Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(idx)),
                    (*ratio, SegmentValue::Exact(idx + 1)),
                ],
                color.filled(),
            )
        }))?;
        chart.draw_series(
            rows.iter()
                .enumerate()
                .filter_map(|(idx, (_, _, allowed))| {
                    allowed.map(|allowed| {
                        PathElement::new(
                            [
                                (1.0 + allowed, SegmentValue::Exact(idx)),
                                (1.0 + allowed, SegmentValue::Exact(idx + 1)),
                            ],
                            BLACK.stroke_width(2),
                        )
                    })
                }),
        )?;
        root.present()?;
        Ok(())
    })();
    drawn.map_err(|error| std::io::Error::other(error.to_string()))
}

/// `-log10(1 - q)`: 0 at the minimum, 1 at p90, 2 at p99, 3 at p99.9.
fn nines(quantile: f64) -> f64 {
    -(1.0 - quantile.min(0.9999)).log10()
}

fn percentile_label(x: f64) -> String {
    let quantile = 1.0 - 10f64.powf(-x);
    format!("p{:.1}", quantile * 100.0).replace(".0", "")
}

/// Points `(nines, value)` of a histogram given as `[value, count]`
/// buckets in increasing order.
fn percentile_curve(histogram: &[[u64; 2]], count: u64) -> Vec<(f64, f64)> {
    QUANTILES
        .iter()
        .map(|&quantile| {
            let rank = ((quantile * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            let value = histogram
                .iter()
                .find(|[_, n]| {
                    seen += n;
                    seen >= rank
                })
                .map_or(0, |[value, _]| *value);
            (nines(quantile.min(0.999)), (value as f64).max(1.0))
        })
        .collect()
}
