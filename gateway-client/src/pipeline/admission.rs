//! Admission, once for whole and streamed calls alike: validate → governance → content safety
//! on the prompt → reserve. What passes holds its tokens in an [`Admitted`] guard.

use std::future::Future;

use serde_json::{Map, Value};

use super::Gateway;
use crate::{
    context::{Api, CallContext},
    error::GatewayError,
    model_api::ModelApi,
    policy::{
        budget::Reservation,
        content_safety::{self, Direction},
        governance::{self, CompletionLimit},
    },
    tokens,
};

/// The tokens held for one admitted call, until it is settled.
///
/// It cannot be forgotten: dropped unsettled, it releases its reservation, except while the
/// model API has the call (see [`Admitted::sending`]): a caller that goes away then is charged
/// the call's worst case (its whole completion allowance), since the upstream may have done the
/// work and its real usage will never be known.
#[must_use = "settle the admitted call with the real usage"]
pub(super) struct Admitted {
    reservation: Option<Reservation>,
    sending: bool,
}

impl Admitted {
    pub(super) fn new(reservation: Reservation) -> Self {
        Self {
            reservation: Some(reservation),
            sending: false,
        }
    }

    /// Tokens left this minute if the call uses all it reserved.
    pub(super) fn remaining_if_all_used(&self) -> u64 {
        self.reservation
            .as_ref()
            .map_or(0, |r| r.remaining_after(r.reserved()))
    }

    /// Replaces the reservation with the tokens really used; returns the tokens left. Settling
    /// twice changes nothing the second time.
    pub(super) async fn settle(&mut self, actual: u64) -> u64 {
        match self.reservation.take() {
            Some(reservation) => reservation.settle(actual).await,
            None => 0,
        }
    }

    /// Settles with a real answer's usage (the budget learns its completion length); returns
    /// the tokens left.
    pub(super) async fn settle_usage(&mut self, usage: crate::usage::Usage) -> u64 {
        match self.reservation.take() {
            Some(reservation) => reservation.settle_usage(usage).await,
            None => 0,
        }
    }

    /// Gives back every token held; the call cost nothing.
    pub(super) async fn release(&mut self) -> u64 {
        self.settle(0).await
    }

    /// Releases the reservation if the call failed before it was settled.
    pub(super) async fn release_on_error<T>(
        &mut self,
        result: Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        if result.is_err() {
            self.release().await;
        }
        result
    }

    /// Runs `call`, the part the model API does; abandoned midway, the tokens stay charged.
    pub(super) async fn sending<F: Future>(&mut self, call: F) -> F::Output {
        self.sending = true;
        let output = call.await;
        self.sending = false;
        output
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        // Abandoned while the model API had it: the worst case; before: nothing.
        let charge = if self.sending {
            reservation.worst_case()
        } else {
            0
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    reservation.settle(charge).await;
                });
            }
            Err(_) => tracing::warn!("an unsettled reservation was dropped outside the runtime"),
        }
    }
}

/// A chat call that passed admission.
pub(super) struct ChatAdmission {
    pub model: String,
    /// The request as governed: limits capped, `stream` set or removed.
    pub request: Map<String, Value>,
    pub limit: CompletionLimit,
    /// The prompt's tokens as counted before sending.
    pub prompt_estimate: u64,
    pub held: Admitted,
}

impl ChatAdmission {
    /// One answer asked for: a cached answer can stand for it.
    pub fn cacheable(&self) -> bool {
        self.limit.choices == 1
    }
}

/// An embeddings call that passed admission.
pub(super) struct EmbeddingsAdmission {
    pub model: String,
    pub request: Map<String, Value>,
    pub estimate: u64,
    pub held: Admitted,
}

impl Gateway {
    /// Admits a chat call that passed [`Gateway::validate_chat`], whole or streamed, or
    /// refuses it before anything is spent.
    pub(super) async fn admit_chat(
        &self,
        context: &CallContext,
        model: String,
        mut request: Map<String, Value>,
        streaming: bool,
    ) -> Result<ChatAdmission, GatewayError> {
        let limit = governance::govern(&mut request, self.caps, streaming)?;
        self.screen(
            context,
            || content_safety::prompt_text(&request),
            Some(&request),
        )
        .await
        .inspect_err(|error| self.stats.refused_by(error))?;
        let prompt_estimate =
            tokens::count_off_thread(&mut request, &model, tokens::estimate_chat_prompt).await;
        let reservation = self
            .budget
            .reserve_chat(context, &model, prompt_estimate, limit)
            .await
            .inspect_err(|error| self.stats.refused_by(error))?;
        Ok(ChatAdmission {
            model,
            request,
            limit,
            prompt_estimate,
            held: Admitted::new(reservation),
        })
    }

    /// Admits an embeddings call: its input, its model, content safety and the budget.
    pub(super) async fn admit_embeddings(
        &self,
        context: &CallContext,
        mut request: Map<String, Value>,
    ) -> Result<EmbeddingsAdmission, GatewayError> {
        if !self.is_configured() {
            return Err(GatewayError::NotConfigured);
        }
        match request.get("input") {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::Array(items)) if !items.is_empty() => {}
            _ => {
                return Err(GatewayError::InvalidRequest(
                    "`input` must be a non-empty string or array".to_owned(),
                ));
            }
        }
        let model =
            self.resolve_model(self.model_api.as_ref(), &mut request, &self.embedding_model)?;
        self.screen(
            context,
            || content_safety::embedding_input_text(&request),
            None,
        )
        .await
        .inspect_err(|error| self.stats.refused_by(error))?;
        let estimate =
            tokens::count_off_thread(&mut request, &model, tokens::estimate_embedding_input).await;
        let reservation = self
            .budget
            .reserve(context, estimate)
            .await
            .inspect_err(|error| self.stats.refused_by(error))?;
        Ok(EmbeddingsAdmission {
            model,
            request,
            estimate,
            held: Admitted::new(reservation),
        })
    }

    /// The first step of admission: validation and model resolution for chat calls.
    pub(super) fn validate_chat(
        &self,
        api: Api,
        request: &mut Map<String, Value>,
        streaming: bool,
    ) -> Result<String, GatewayError> {
        let model_api = self.model_api_for(api);
        if !model_api.is_configured() {
            return Err(GatewayError::NotConfigured);
        }
        validate_messages(request)?;
        if streaming {
            request.insert("stream".to_owned(), Value::Bool(true));
        } else {
            request.remove("stream");
            request.remove("stream_options");
        }
        self.resolve_model(model_api.as_ref(), request, &self.chat_model)
    }

    /// The call's model (`default` when the request names none), checked before it goes
    /// anywhere.
    fn resolve_model(
        &self,
        model_api: &dyn ModelApi,
        request: &mut Map<String, Value>,
        default: &str,
    ) -> Result<String, GatewayError> {
        let model = match request.get("model") {
            None | Some(Value::Null) => {
                request.insert("model".to_owned(), Value::from(default));
                default.to_owned()
            }
            Some(Value::String(model)) => model.clone(),
            Some(_) => {
                return Err(GatewayError::InvalidModel(
                    "`model` must be a string".to_owned(),
                ));
            }
        };
        model_api.check_model(&model)?;
        Ok(model)
    }

    /// Content safety on a prompt, before anything is reserved or sent; a chat `request`'s
    /// user messages and tool results also go to Prompt Shields when they are on.
    async fn screen(
        &self,
        context: &CallContext,
        text: impl FnOnce() -> String,
        request: Option<&Map<String, Value>>,
    ) -> Result<(), GatewayError> {
        let Some(safety) = &self.content_safety else {
            return Ok(());
        };
        let shield = request
            .filter(|_| safety.shields_prompts())
            .map(content_safety::shield_input);
        safety
            .check_with(context, Direction::Prompt, &text(), shield.as_ref())
            .await
    }
}

fn validate_messages(request: &Map<String, Value>) -> Result<(), GatewayError> {
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| GatewayError::InvalidRequest("`messages` must be an array".to_owned()))?;
    if messages.is_empty() {
        return Err(GatewayError::InvalidRequest(
            "`messages` must not be empty".to_owned(),
        ));
    }
    for (index, message) in messages.iter().enumerate() {
        if message.get("role").and_then(Value::as_str).is_none() {
            return Err(GatewayError::InvalidRequest(format!(
                "messages[{index}] needs a string `role`"
            )));
        }
    }
    Ok(())
}
