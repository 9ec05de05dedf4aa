//! `/admin/usage`: the chargeback report; `/admin/stats`: the dashboard's figures.
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

use gateway_client::stats::StatsReport;
use http::{HeaderValue, header};
use serde::Serialize;

use crate::{
    auth::{AdminOnly, UsageViewer},
    error::ApiError,
    state::AppState,
};

pub async fn usage(
    State(state): State<Arc<AppState>>,
    viewer: UsageViewer,
) -> Result<Response, ApiError> {
    let report = state.gateway.usage_report(viewer.only().as_deref()).await?;
    Ok(Json(report).into_response())
}

/// Per-minute figures for the last hour (every live instance's, merged, with Redis), the
/// breakers, budgets and the quota period. The admin key only.
pub async fn stats(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
) -> Result<Response, ApiError> {
    let report = state.gateway.stats_report(&state.instance.id).await?;
    // Live agent sessions, across instances when they share Redis; `null` if the store can't
    // say right now (the rest of the report still stands).
    let sessions_live = state.agent.sessions().live_count().await.ok();
    let mut response = Json(StatsWithSessions {
        report,
        agent_sessions_live: sessions_live,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `/admin/stats`: the gateway's figures and the agent's live sessions.
#[derive(Serialize)]
struct StatsWithSessions {
    #[serde(flatten)]
    report: StatsReport,
    agent_sessions_live: Option<u64>,
}
