//! Model and deployment names: what callers may send, and how they appear in metrics.
//!
//! A model name travels far: into the upstream request, an Azure URL path, the usage ledger's
//! keys and metrics labels. So it is checked once, where the call is admitted:
//! - any model name: 1..=[`MAX_MODEL_NAME_CHARS`] characters, not blank, no control characters
//!   (a control character could split a ledger key into a phantom row);
//! - a name that becomes an Azure deployment path segment: [`check_deployment_name`], so `.`,
//!   `..` or a `/` never reach the upstream with its key;
//! - in metrics, a name the operator did not configure is [`OTHER_MODEL`]: callers cannot grow
//!   the label set.

use std::{collections::HashSet, sync::Arc};

/// The longest model name accepted, in characters.
pub const MAX_MODEL_NAME_CHARS: usize = 256;
/// The longest Azure deployment name accepted, in characters (Azure's own limit).
pub const MAX_DEPLOYMENT_NAME_CHARS: usize = 64;
/// The metrics label of every model that is not configured.
pub const OTHER_MODEL: &str = "other";

/// Checks a model name any upstream could take; the error says what is wrong, without echoing
/// the name.
pub fn check_model_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the model name must not be empty".to_owned());
    }
    let chars = name.chars().count();
    if chars > MAX_MODEL_NAME_CHARS {
        return Err(format!(
            "the model name has {chars} characters; the limit is {MAX_MODEL_NAME_CHARS}"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("the model name must not contain control characters".to_owned());
    }
    Ok(())
}

/// Checks an Azure deployment name: letters, digits, `-`, `_` and `.`, starting with a letter or
/// digit, 1..=[`MAX_DEPLOYMENT_NAME_CHARS`] characters. `.` and `..` never pass.
pub fn check_deployment_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_well = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !starts_well || !rest_well || name.len() > MAX_DEPLOYMENT_NAME_CHARS {
        return Err(format!(
            "an Azure deployment name has 1 to {MAX_DEPLOYMENT_NAME_CHARS} letters, digits, `-`, \
             `_` or `.`, and starts with a letter or digit"
        ));
    }
    Ok(())
}

/// The configured models (chat, embeddings, priced): the only names that label metrics.
#[derive(Debug, Clone, Default)]
pub struct ModelLabels {
    configured: HashSet<Arc<str>>,
    other: Arc<str>,
}

impl ModelLabels {
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            configured: names
                .into_iter()
                .map(|name| Arc::from(name.into()))
                .collect(),
            other: Arc::from(OTHER_MODEL),
        }
    }

    /// `model` if it is configured, else [`OTHER_MODEL`].
    pub fn label<'a>(&'a self, model: &'a str) -> &'a str {
        if self.configured.contains(model) {
            model
        } else {
            OTHER_MODEL
        }
    }

    /// [`Self::label`] as a shared string, for a metric series' key: no allocation.
    pub fn shared_label(&self, model: &str) -> Arc<str> {
        self.configured.get(model).unwrap_or(&self.other).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_are_bounded_and_free_of_control_characters() {
        for good in [
            "gpt-4o-mini",
            "llama3.1:8b",
            "meta-llama/Llama-3-8B",
            "modèle",
        ] {
            assert_eq!(check_model_name(good), Ok(()), "{good}");
        }
        let long = "m".repeat(MAX_MODEL_NAME_CHARS + 1);
        for bad in [
            "",
            "  ",
            "gpt-4o-mini\u{1f}x",
            "a\nb",
            "tab\there",
            "del\u{7f}",
            &long,
        ] {
            assert!(check_model_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deployment_names_follow_azures_pattern() {
        for good in ["gpt-4o-mini", "gpt4o", "my_deploy.v2", "a"] {
            assert_eq!(check_deployment_name(good), Ok(()), "{good}");
        }
        let long = "d".repeat(MAX_DEPLOYMENT_NAME_CHARS + 1);
        for bad in [
            "", ".", "..", ".hidden", "-x", "a/b", "a b", "a%2F", "x\u{1f}", "é", &long,
        ] {
            assert!(check_deployment_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unconfigured_models_share_one_label() {
        let labels = ModelLabels::new(["gpt-4o-mini", "text-embedding-3-small"]);
        assert_eq!(labels.label("gpt-4o-mini"), "gpt-4o-mini");
        assert_eq!(labels.label("gpt-4o-mini-2024-07-18"), OTHER_MODEL);
        assert_eq!(labels.label("x".repeat(200).as_str()), OTHER_MODEL);
    }
}
