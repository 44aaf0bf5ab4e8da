//! The convergence curve as CSV and as an SVG plot (rendered to a string;
//! the caller writes the files): the simulated fraction of nodes that know
//! the fact, beside Serf's model and the epidemic lower bound.

use std::fmt::Write as _;
use std::time::Duration;

use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;

use gossamer_sidecar::sim::scenario::{Report, Scenario};

/// Time points of the curve: fine steps up to a little past the last node
/// informed (or the end of the run).
fn grid(r: &Report) -> Vec<Duration> {
    let step = r.gossip_interval / 10;
    let last = r
        .learned
        .iter()
        .flatten()
        .max()
        .copied()
        .unwrap_or(Duration::ZERO);
    let model_done = (0..)
        .map(|k| step * k)
        .take(100_000)
        .find(|t| r.serf_model(*t) >= 0.9999)
        .unwrap_or(last);
    let end = (last.max(model_done).max(r.bound()) + r.gossip_interval * 5).min(r.duration);
    let mut v = Vec::new();
    let mut t = Duration::ZERO;
    while t <= end {
        v.push(t);
        t += step;
    }
    v
}

/// The curve as CSV: `seconds,simulated,serf_model,epidemic_bound`, time
/// counted from the fact.
pub fn csv(r: &Report) -> String {
    let mut out = String::from("seconds,simulated,serf_model,epidemic_bound\n");
    let bound = r.bound();
    for t in grid(r) {
        let _ = writeln!(
            out,
            "{:.3},{:.5},{:.5},{}",
            t.as_secs_f64(),
            r.fraction_at(t),
            r.serf_model(t),
            u8::from(t >= bound)
        );
    }
    out
}

/// The plotting library could not draw the convergence plot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// One drawing step failed.
    #[error("cannot draw the convergence plot ({step}): {source}")]
    Draw {
        /// What was being drawn.
        step: &'static str,
        /// The library's error.
        source: DrawingAreaErrorKind<std::io::Error>,
    },
}

/// Names the step a plotting error happened in.
fn at(step: &'static str) -> impl FnOnce(DrawingAreaErrorKind<std::io::Error>) -> PlotError {
    move |source| PlotError::Draw { step, source }
}

/// The curve as an SVG document.
///
/// # Errors
/// The plotting library failed (it reports why).
pub fn svg(r: &Report) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (900, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(at("background"))?;
        let pts = grid(r);
        let end = pts.last().map(|d| d.as_secs_f64()).unwrap_or(1.0).max(0.1);
        let what = match r.scenario {
            Scenario::Propagate => "fraction of nodes that learned the new metadata",
            Scenario::Fail => "fraction of nodes that declared the crashed node dead",
            Scenario::Partition => "fraction of nodes seeing every member alive",
            Scenario::Rotate => "fraction of nodes using the new key",
        };
        let since = if r.scenario == Scenario::Partition {
            "s since the heal"
        } else {
            "s since the fact"
        };
        let title = format!(
            "{}: N = {}, loss {:.0}%, LAN gossip {} ms x {}",
            r.scenario.as_str(),
            r.nodes,
            r.loss * 100.0,
            r.gossip_interval.as_millis(),
            r.fanout
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..end, 0f64..1.02f64)
            .map_err(at("axes"))?;
        chart
            .configure_mesh()
            .x_desc(since)
            .y_desc(what)
            .draw()
            .map_err(at("mesh"))?;
        let sim: Vec<(f64, f64)> = pts
            .iter()
            .map(|t| (t.as_secs_f64(), r.fraction_at(*t)))
            .collect();
        chart
            .draw_series(LineSeries::new(sim, BLUE.stroke_width(2)))
            .map_err(at("simulated curve"))?
            .label("simulated (Gossamer core)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        if matches!(r.scenario, Scenario::Propagate | Scenario::Partition) {
            let serf: Vec<(f64, f64)> = pts
                .iter()
                .map(|t| (t.as_secs_f64(), r.serf_model(*t)))
                .collect();
            chart
                .draw_series(LineSeries::new(serf, RED.stroke_width(2)))
                .map_err(at("Serf model"))?
                .label("Serf convergence model")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        }
        let b = r.bound().as_secs_f64();
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, 0.0), (b, 0.0), (b, 1.0), (end, 1.0)],
                BLACK.stroke_width(1),
            ))
            .map_err(at("epidemic bound"))?
            .label(format!(
                "epidemic lower bound: ceil(log_{} N) = {} rounds",
                r.fanout + 1,
                r.bound_rounds()
            ))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(at("legend"))?;
        root.present().map_err(at("document"))?;
    }
    Ok(out)
}
