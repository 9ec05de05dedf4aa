//! The model-judged cache mode (`CACHE_JUDGE=model`, off by default): a similar cached answer
//! that verification refused only for words it could not match ("remove"/"delete") is offered
//! to the chat model, which answers one token, yes or no.
//!
//! Every other refusal (numbers, names, negation, referents, opposites…) stays final: the
//! judge only widens recall where the verifier lacked vocabulary. A judgement is a model call
//! like any other for the caller: reserved in the budget, charged to the ledger, counted in
//! metrics (`gateway_cache_judgements_total`, `gateway_cache_judge_tokens_total`). When it
//! cannot be had (budget, upstream error), the lookup is a miss.

use serde_json::Value;

use super::{Gateway, admission::Admitted, answer::parse_answer, call};
use crate::{
    cache::{JUDGE_MAX_TOKENS, Unconfirmed},
    context::{CallContext, Operation},
    metrics,
    usage::Usage,
};

impl Gateway {
    /// Whether the chat model confirms that `candidate`'s cached answer answers its query.
    pub(super) async fn confirm(&self, context: &CallContext, candidate: &Unconfirmed) -> bool {
        let model = self.chat_model.clone();
        let request = candidate.judge_request(&model);
        let estimate = candidate.judge_tokens(&model);
        let Ok(reservation) = self.budget.reserve(context, estimate).await else {
            metrics::cache_judgement("unaffordable", 0);
            return false;
        };
        let mut held = Admitted::new(reservation);
        let answer = match call::serialize(&request) {
            Ok(body) => {
                let sent = self
                    .model_api
                    .whole(Operation::Chat, &model, body, self.deadline());
                held.sending(sent).await
            }
            Err(error) => Err(error),
        };
        let Ok(body) = answer.and_then(|answer| parse_answer(&answer)) else {
            held.release().await;
            metrics::cache_judgement("error", 0);
            return false;
        };
        let usage = Usage::from_body(&body)
            .unwrap_or_else(|| Usage::new(estimate - JUDGE_MAX_TOKENS, JUDGE_MAX_TOKENS));
        held.settle(usage.total_tokens).await;
        self.accounting(self.model_api.provider_name())
            .record(context, Operation::Chat, &model, usage)
            .await;
        let same = says_yes(&body);
        metrics::cache_judgement(if same { "same" } else { "different" }, usage.total_tokens);
        same
    }
}

/// Whether the answer's first choice begins with "yes" (any case, after spaces).
fn says_yes(body: &Value) -> bool {
    let Some(Value::Array(choices)) = body.get("choices") else {
        return false;
    };
    choices
        .first()
        .and_then(|choice| choice.pointer("/message/content"))
        .and_then(Value::as_str)
        .is_some_and(|text| {
            text.trim_start()
                .get(..3)
                .is_some_and(|word| word.eq_ignore_ascii_case("yes"))
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::says_yes;

    fn answer(text: &str) -> serde_json::Value {
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})
    }

    #[test]
    fn only_a_yes_confirms() {
        assert!(says_yes(&answer("yes")));
        assert!(says_yes(&answer(" Yes.")));
        for text in ["no", "No", "", "y", "maybe yes"] {
            assert!(!says_yes(&answer(text)), "{text:?}");
        }
        assert!(!says_yes(&json!({"choices": []})));
        assert!(!says_yes(&json!({"error": {"message": "x"}})));
    }
}
