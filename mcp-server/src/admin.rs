//! `/admin/usage`: the chargeback report.
//!
//! `ADMIN_KEY` sees every subscription; a subscription key sees only its own row. On a server
//! with no keys at all the report is as open as everything else.

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::{ConnectInfo, State},
    response::{IntoResponse, Response},
};
use http::HeaderMap;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::{auth::presented_key, error::ApiError, http::AppState};

pub async fn usage(
    State(state): State<Arc<AppState>>,
    connect: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let presented = presented_key(&headers);
    let is_admin = match (&state.settings.admin_key, presented) {
        (Some(admin), Some(presented)) => {
            bool::from(admin.expose_secret().as_bytes().ct_eq(presented.as_bytes()))
        }
        _ => false,
    };
    let only = if is_admin {
        None
    } else {
        let caller = state.authenticator.authenticate(
            &headers,
            connect.map(|Extension(ConnectInfo(addr))| addr.ip()),
        )?;
        match caller.subscription {
            Some(name) => Some(name),
            None if state.settings.admin_key.is_some() => {
                return Err(if presented.is_some() {
                    ApiError::InvalidKey
                } else {
                    ApiError::MissingKey
                });
            }
            None => None,
        }
    };
    let report = state
        .gateway
        .usage_report(only.as_deref())
        .await
        .map_err(|e| ApiError::Gateway(e, state.settings.retry_after_format))?;
    Ok(Json(report).into_response())
}
