//! `lookup_fact`: short, curated facts about tollgate and the platform it runs on.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::corpus::{self, FACTS, FactEntry};
use crate::topic_match::{self, MAX_QUERY_BYTES};
use crate::{Instance, ToolError};

pub const NAME: &str = "lookup_fact";
pub const TITLE: &str = "Look up a fact";
pub const DESCRIPTION: &str = "Look up a short, reliable fact about tollgate and the platform it \
runs on (App Service scaling and slots, MCP, token budgets, semantic caching, rate limits, \
failover, keys and similar). Use it before answering questions on these topics; spelling is \
forgiven, and a miss lists the available topics.";

/// Arguments for `lookup_fact`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct LookupFactArgs {
    /// The topic to look up, e.g. "deployment slots" or "semantic caching". Case, punctuation,
    /// plurals and small typos are forgiven.
    pub topic: String,
}

/// The fact found, or the list of topics to choose from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LookupFactResult {
    /// Whether a topic matched.
    pub found: bool,
    /// The canonical topic name when found; otherwise the query as given.
    pub topic: String,
    /// The fact, when found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fact: Option<String>,
    /// Related topics worth looking up next, when found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<Vec<String>>,
    /// Every topic that can be looked up, sorted; only when nothing matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_topics: Option<Vec<String>>,
    /// Identity of the instance that answered.
    pub instance_id: String,
}

/// Look up `args.topic`. A miss is a normal result (`found: false`); only a blank or oversized
/// topic is an error.
pub fn lookup_fact(
    instance: &Instance,
    args: LookupFactArgs,
) -> Result<LookupFactResult, ToolError> {
    let query = args.topic.trim();
    if query.is_empty() {
        return Err(ToolError::Failed(format!(
            "topic is empty; give one of: {}",
            topics().join(", ")
        )));
    }
    if query.len() > MAX_QUERY_BYTES {
        return Err(ToolError::Failed(format!(
            "topic is too long: {} bytes given, the limit is {MAX_QUERY_BYTES} bytes; give a short topic name",
            query.len()
        )));
    }
    let found = topic_match::best_match(query, FACTS.iter().map(FactEntry::names))
        .and_then(|i| FACTS.get(i));
    let instance_id = instance.id.clone();
    Ok(match found {
        Some(fact) => LookupFactResult {
            found: true,
            topic: fact.topic.to_owned(),
            fact: Some(fact.text.to_owned()),
            related: Some(fact.related.iter().map(|r| (*r).to_owned()).collect()),
            available_topics: None,
            instance_id,
        },
        None => LookupFactResult {
            found: false,
            topic: args.topic,
            fact: None,
            related: None,
            available_topics: Some(topics()),
            instance_id,
        },
    })
}

/// Every canonical topic name, sorted.
pub fn topics() -> Vec<String> {
    corpus::fact_topics()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn instance() -> Instance {
        Instance::new(Some("i-facts".into()), None, None, None)
    }

    fn look(topic: &str) -> LookupFactResult {
        lookup_fact(
            &instance(),
            LookupFactArgs {
                topic: topic.into(),
            },
        )
        .unwrap()
    }

    #[test]
    fn finds_exact_topics() {
        let result = look("deployment slots");
        assert!(result.found);
        assert_eq!(result.topic, "deployment slots");
        assert!(result.fact.unwrap().contains("swap"));
        assert!(result.available_topics.is_none());
        assert_eq!(result.instance_id, "i-facts");
    }

    #[test]
    fn forgives_case_spacing_punctuation_plurals_and_typos() {
        for query in [
            "DEPLOYMENT SLOTS",
            "Deployment-Slots",
            "deployment   slots",
            "deployment_slots",
            "deploymnet slots",
            "deployment slot",
            "  deployment slots?  ",
            "how do deployment slots work",
        ] {
            let result = look(query);
            assert!(result.found, "{query}");
            assert_eq!(result.topic, "deployment slots", "{query}");
        }
        assert_eq!(look("Model Context Protocol").topic, "mcp");
        assert_eq!(look("Retry After").topic, "retry-after");
        assert_eq!(look("health probe").topic, "health probes");
        assert_eq!(look("circiut breaker").topic, "circuit breaker");
        assert_eq!(look("semantic cache").topic, "semantic caching");
        assert_eq!(look("max_tokens").topic, "max tokens governance");
        assert_eq!(look("DNS-rebinding").topic, "dns rebinding");
        assert_eq!(look("token limits").topic, "token budget");
        assert_eq!(look("stateless HTTP transport").topic, "streamable http");
        assert_eq!(look("how do I scale my app").topic, "app service scaling");
        assert!(
            !look("host").found,
            "a short word needs its first letter right"
        );
    }

    #[test]
    fn a_miss_lists_sorted_topics() {
        let result = look("weather in paris");
        assert!(!result.found);
        assert_eq!(result.topic, "weather in paris");
        assert!(result.fact.is_none());
        let topics = result.available_topics.unwrap();
        assert_eq!(topics.len(), FACTS.len());
        assert!(topics.is_sorted());
        assert!(topics.contains(&"deployment slots".to_owned()));
    }

    #[test]
    fn blank_topic_is_an_error() {
        for topic in ["", "   ", "\n"] {
            let err = lookup_fact(
                &instance(),
                LookupFactArgs {
                    topic: topic.into(),
                },
            )
            .unwrap_err();
            assert!(matches!(err, ToolError::Failed(_)), "{err:?}");
        }
    }

    #[test]
    fn oversized_topic_is_an_error() {
        let topic = "slots ".repeat(100);
        let err = lookup_fact(&instance(), LookupFactArgs { topic }).unwrap_err();
        assert!(err.to_string().contains("256"), "{err}");
    }

    #[test]
    fn the_table_is_well_formed() {
        assert!(FACTS.len() >= 16);
        let topics = topics();
        for fact in FACTS {
            for related in fact.related {
                assert!(topics.iter().any(|t| t == related), "{related}");
                assert_ne!(*related, fact.topic);
            }
            // Every name of every topic must find its own topic, or an alias is shadowed.
            for name in fact.names() {
                assert_eq!(look(name).topic, fact.topic, "name `{name}`");
            }
        }
        let mut unique = topics.clone();
        unique.dedup();
        assert_eq!(unique.len(), topics.len());
    }
}
