//! `GET /v1/models` and `GET /v1/models/{id}` (also under `/openai/v1/`): the models tollgate
//! serves, the configured chat and embedding models and every priced one.
//!
//! Discovery clients (Open WebUI, LibreChat, Continue, LangChain) call these first. The answer is
//! OpenAI's list shape, or Anthropic's when the request carries `anthropic-version`; an unknown
//! id is a 404 in that same API's error shape.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::{responses_routes::openai_error_type, state::AppState};

/// When a model's creation is unknown (it is the upstream's), it is told as the epoch.
const UNKNOWN_CREATED_AT: &str = "1970-01-01T00:00:00Z";

/// Which API's shapes the caller expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    OpenAi,
    Anthropic,
}

impl Shape {
    fn of(headers: &HeaderMap) -> Self {
        if headers.contains_key("anthropic-version") {
            Self::Anthropic
        } else {
            Self::OpenAi
        }
    }

    fn model(self, id: &str) -> Value {
        match self {
            Self::OpenAi => {
                json!({"id": id, "object": "model", "created": 0, "owned_by": "tollgate"})
            }
            Self::Anthropic => json!({
                "type": "model",
                "id": id,
                "display_name": id,
                "created_at": UNKNOWN_CREATED_AT,
            }),
        }
    }

    fn list(self, ids: &[&str]) -> Value {
        let data: Vec<Value> = ids.iter().map(|id| self.model(id)).collect();
        match self {
            Self::OpenAi => json!({"object": "list", "data": data}),
            Self::Anthropic => json!({
                "data": data,
                "has_more": false,
                "first_id": ids.first(),
                "last_id": ids.last(),
            }),
        }
    }

    fn not_found(self, id: &str) -> Response {
        let message =
            format!("the model `{id}` is not served here; GET /v1/models lists those that are");
        let body = match self {
            Self::OpenAi => json!({"error": {
                "message": message,
                "type": openai_error_type(StatusCode::NOT_FOUND),
                "param": "model",
                "code": "model_not_found",
            }}),
            Self::Anthropic => json!({
                "type": "error",
                "error": {"type": "not_found_error", "message": message},
            }),
        };
        (StatusCode::NOT_FOUND, Json(body)).into_response()
    }
}

/// `GET /v1/models`.
pub async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Json<Value> {
    Json(Shape::of(&headers).list(&state.gateway.served_models()))
}

/// `GET /v1/models/{id}`. Ids may hold slashes (`meta-llama/Llama-3.1-8B`), so the route takes
/// the rest of the path.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let shape = Shape::of(&headers);
    if state.gateway.served_models().contains(&id.as_str()) {
        Json(shape.model(&id)).into_response()
    } else {
        shape.not_found(&id)
    }
}
