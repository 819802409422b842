//! Read-your-writes: a query may ask for `min_position=N` and then waits
//! (up to the configured bound) until the read model it reads has reached N;
//! past the bound it answers 503 with the position it did reach. Every
//! answer carries the read model's position in `Sextant-Position`.

use std::time::Instant;

use sextant_adapters::http::Problem;
use sextant_adapters::retry::Backoff;
use sextant_projections::runtime::position_of;
use sextant_projections::ProjectionName;

use crate::AppState;
use sextant_application::ApiError;

/// Waits until `projection` reaches `min` (if given); answers its position.
/// A `min` no committed event has is refused at once (422), not waited for.
pub async fn reach(
    state: &AppState,
    projection: ProjectionName,
    min: Option<i64>,
) -> Result<i64, ApiError> {
    let position = position_of(&state.pool, projection.as_str()).await?;
    let Some(min) = min.filter(|m| *m > position) else {
        return Ok(position);
    };
    if min > sextant_adapters::db::head_position(&state.pool).await? {
        return Err(Problem::invalid_field(
            "min_position",
            format!("no committed event has position {min}"),
        )
        .into());
    }
    let started = Instant::now();
    let mut pause = Backoff::position_wait();
    loop {
        let position = position_of(&state.pool, projection.as_str()).await?;
        if position >= min {
            return Ok(position);
        }
        if started.elapsed() >= state.min_position_wait {
            let mut problem = Problem::unavailable(format!(
                "the {projection} read model has reached position {position}, not yet {min}; retry"
            ));
            problem.position = Some(position);
            return Err(problem.into());
        }
        tokio::time::sleep(pause.next_delay()).await;
    }
}
