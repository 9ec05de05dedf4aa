//! `/admin/usage`: the chargeback report.
//!
//! Who sees what is decided by the [`UsageViewer`] extractor: `ADMIN_KEY` sees every
//! subscription; a subscription key sees only its own row. On a server with no keys at all the
//! report is as open as everything else.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};

use crate::{auth::UsageViewer, error::ApiError, state::AppState};

pub async fn usage(
    State(state): State<Arc<AppState>>,
    viewer: UsageViewer,
) -> Result<Response, ApiError> {
    let report = state.gateway.usage_report(viewer.only().as_deref()).await?;
    Ok(Json(report).into_response())
}
