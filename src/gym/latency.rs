//! Latency of every gym call, per endpoint, in histograms the rest of the
//! system can read while calls go on.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::gym::wire::Endpoint;

/// The highest latency a histogram tracks exactly, in microseconds (one
/// hour); longer calls are recorded as this.
const MAX_TRACKED_MICROS: u64 = 3_600_000_000;

/// Per-endpoint latency histograms (microseconds) and error counts.
#[derive(Debug)]
pub struct Latencies {
    histograms: [Mutex<Histogram<u64>>; Endpoint::ALL.len()],
    errors: [AtomicU64; Endpoint::ALL.len()],
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies {
            histograms: std::array::from_fn(|_| Mutex::new(new_histogram())),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Latencies {
    /// Records the latency of one answered call.
    pub fn record(&self, endpoint: Endpoint, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut histogram = lock(&self.histograms[endpoint.index()]);
        histogram.saturating_record(micros.clamp(1, MAX_TRACKED_MICROS));
    }

    /// Counts one failed call.
    pub fn record_error(&self, endpoint: Endpoint) {
        self.errors[endpoint.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of one endpoint's histogram, in microseconds.
    pub fn snapshot(&self, endpoint: Endpoint) -> Histogram<u64> {
        lock(&self.histograms[endpoint.index()]).clone()
    }

    /// How many calls to `endpoint` failed.
    pub fn errors(&self, endpoint: Endpoint) -> u64 {
        self.errors[endpoint.index()].load(Ordering::Relaxed)
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 3)
        .expect("the bounds are constants that hdrhistogram accepts")
}

fn lock(histogram: &Mutex<Histogram<u64>>) -> std::sync::MutexGuard<'_, Histogram<u64>> {
    // A panic while recording cannot leave a histogram inconsistent in a
    // way that matters for reading it.
    histogram
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
