//! Charts drawn on the server as SVG: the geometry is computed here and
//! the template writes the elements (askama escapes every label), so no
//! script draws anything and the page works as it arrives.
//!
//! A forest plot shows one row per key: its lift over the other sends
//! (1 = no difference) as a mark, and the 95% interval of that lift as a
//! line through it; a significant row's mark is filled. The axis is
//! logarithmic, so that halving and doubling sit at the same distance
//! from 1, and clipped to [1/8, 8]: an interval beyond it ends in an arrow.

/// Where the plot area starts (labels sit to its left) and its width.
const LEFT: f64 = 180.0;
const WIDTH: f64 = 300.0;
const RIGHT_PAD: f64 = 20.0;
const ROW: f64 = 22.0;
const TOP: f64 = 10.0;
const AXIS: f64 = 32.0;
/// The axis runs from 2^-MAX_LOG2 to 2^MAX_LOG2 at most.
const MAX_LOG2: f64 = 3.0;

/// One row's numbers: the lift and the interval of the lift.
#[derive(Debug, Clone)]
pub struct ForestInput {
    pub label: String,
    pub lift: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub significant: bool,
}

/// One row as drawn.
#[derive(Debug, Clone)]
pub struct ForestRow {
    /// The whole key, for `data-key`.
    pub key: String,
    pub label: String,
    /// The label's baseline.
    pub y: String,
    /// The middle of the row, for the line and the mark.
    pub mid: String,
    pub x_low: String,
    pub x_high: String,
    pub x_mark: String,
    /// Whether there is a lift to draw at all (no sends, no lift).
    pub drawn: bool,
    pub clipped_low: bool,
    pub clipped_high: bool,
    pub significant: bool,
    /// What a screen reader says for the row.
    pub description: String,
}

/// A tick of the axis.
#[derive(Debug, Clone)]
pub struct Tick {
    pub x: String,
    pub label: String,
}

/// A whole plot, ready for `templates/forest.html`.
#[derive(Debug, Clone)]
pub struct Forest {
    pub width: String,
    pub height: String,
    pub plot_top: String,
    pub plot_bottom: String,
    pub axis_y: String,
    pub label_x: String,
    /// Where lift 1 (no difference) is.
    pub x_one: String,
    pub rows: Vec<ForestRow>,
    pub ticks: Vec<Tick>,
}

/// Labels longer than fit left of the plot are cut with an ellipsis; the
/// row's title (and the table above) keeps the whole key.
const LABEL_CHARS: usize = 28;

fn short(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        label.to_owned()
    } else {
        let mut cut: String = label.chars().take(LABEL_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

impl Forest {
    pub fn of(inputs: &[ForestInput]) -> Self {
        // The axis spans every drawn value, at least [1/2, 2].
        let mut extent: f64 = 1.0;
        for row in inputs {
            for v in [row.lift, row.low, row.high].into_iter().flatten() {
                if v > 0.0 && v.is_finite() {
                    extent = extent.max(v.log2().abs());
                }
            }
        }
        let extent = extent.ceil().clamp(1.0, MAX_LOG2);
        let x_of = |lift: f64| -> (f64, bool, bool) {
            let l = if lift > 0.0 && lift.is_finite() {
                lift.log2()
            } else {
                -extent - 1.0
            };
            let clipped_low = l < -extent;
            let clipped_high = l > extent;
            let l = l.clamp(-extent, extent);
            (
                LEFT + (l + extent) / (2.0 * extent) * WIDTH,
                clipped_low,
                clipped_high,
            )
        };
        let rows: Vec<ForestRow> = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let mid = TOP + ROW * i as f64 + ROW / 2.0;
                let drawn = input.lift.is_some_and(|l| l > 0.0 && l.is_finite());
                let lift = input.lift.unwrap_or(1.0);
                let (x_mark, _, _) = x_of(lift);
                let (x_low, clipped_low, _) = x_of(input.low.unwrap_or(lift));
                let (x_high, _, clipped_high) = x_of(input.high.unwrap_or(lift));
                let description = match (input.lift, input.low, input.high) {
                    (Some(l), Some(lo), Some(hi)) => format!(
                        "{}: lift {l:.2}, 95% interval {lo:.2} to {hi:.2}{}",
                        input.label,
                        if input.significant {
                            ", significant"
                        } else {
                            ""
                        }
                    ),
                    (Some(l), _, _) => format!("{}: lift {l:.2}", input.label),
                    _ => format!("{}: no lift yet", input.label),
                };
                ForestRow {
                    key: input.label.clone(),
                    label: short(&input.label),
                    y: fmt(mid + 4.0),
                    mid: fmt(mid),
                    x_low: fmt(x_low),
                    x_high: fmt(x_high),
                    x_mark: fmt(x_mark),
                    drawn,
                    clipped_low,
                    clipped_high,
                    significant: input.significant,
                    description,
                }
            })
            .collect();
        let plot_bottom = TOP + ROW * inputs.len().max(1) as f64;
        let mut ticks = Vec::new();
        let mut e = -extent;
        while e <= extent + 1e-9 {
            let lift = 2f64.powf(e);
            let label = if lift >= 1.0 {
                format!("{lift:.0}×")
            } else {
                format!("1/{:.0}", 1.0 / lift)
            };
            ticks.push(Tick {
                x: fmt(x_of(lift).0),
                label,
            });
            e += 1.0;
        }
        Self {
            width: fmt(LEFT + WIDTH + RIGHT_PAD),
            height: fmt(plot_bottom + AXIS),
            plot_top: fmt(TOP),
            plot_bottom: fmt(plot_bottom),
            axis_y: fmt(plot_bottom + 16.0),
            label_x: fmt(LEFT - 8.0),
            x_one: fmt(x_of(1.0).0),
            rows,
            ticks,
        }
    }
}

/// The 95% interval of a key's lift over the other sends of its scope:
/// its rate's Wilson interval divided by the others' rate. `None` when the
/// others have no events (there is no ratio to draw).
pub fn lift_interval(
    ci_low: f64,
    ci_high: f64,
    row_sends: i64,
    row_events: i64,
    baseline_sends: i64,
    baseline_events: i64,
) -> Option<(f64, f64)> {
    let other_sends = baseline_sends - row_sends;
    let other_events = baseline_events - row_events;
    if other_sends <= 0 || other_events <= 0 {
        return None;
    }
    let other = other_events as f64 / other_sends as f64;
    Some((ci_low / other, ci_high / other))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(label: &str, lift: f64, low: f64, high: f64, significant: bool) -> ForestInput {
        ForestInput {
            label: label.into(),
            lift: Some(lift),
            low: Some(low),
            high: Some(high),
            significant,
        }
    }

    #[test]
    fn no_difference_sits_in_the_middle_and_doubling_and_halving_are_equally_far() {
        let forest = Forest::of(&[
            input("a", 2.0, 1.5, 2.5, true),
            input("b", 0.5, 0.4, 0.6, false),
        ]);
        let x = |s: &str| s.parse::<f64>().expect("a number");
        let one = x(&forest.x_one);
        assert!((one - (LEFT + WIDTH / 2.0)).abs() < 0.1);
        let up = x(&forest.rows[0].x_mark) - one;
        let down = one - x(&forest.rows[1].x_mark);
        assert!((up - down).abs() < 0.1, "{up} {down}");
        assert!(forest.rows[0].significant && !forest.rows[1].significant);
        assert!(forest.rows[0].description.contains("significant"));
    }

    #[test]
    fn a_long_key_is_cut_on_the_plot_and_whole_in_its_title() {
        let key = "sequence=linkedin>email>email>linkedin";
        let forest = Forest::of(&[input(key, 1.0, 0.5, 2.0, false)]);
        assert_eq!(forest.rows[0].label.chars().count(), LABEL_CHARS);
        assert!(forest.rows[0].label.ends_with('…'));
        assert!(forest.rows[0].description.starts_with(key));
    }

    #[test]
    fn an_interval_beyond_the_axis_is_clipped_and_says_so() {
        let forest = Forest::of(&[input("wide", 1.0, 0.001, 1000.0, false)]);
        assert!(forest.rows[0].clipped_low && forest.rows[0].clipped_high);
        assert_eq!(forest.ticks.len(), 7, "1/8 to 8");
    }

    #[test]
    fn the_lift_interval_is_the_rate_interval_over_the_others_rate() {
        let (lo, hi) = lift_interval(0.05, 0.15, 100, 10, 1100, 60).expect("others have events");
        assert!((lo - 1.0).abs() < 1e-9 && (hi - 3.0).abs() < 1e-9);
        assert!(lift_interval(0.05, 0.15, 100, 10, 100, 10).is_none());
    }
}
