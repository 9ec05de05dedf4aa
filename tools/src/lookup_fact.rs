//! `lookup_fact`: short, curated facts about tollgate and the platform it runs on.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    let found =
        topic_match::best_match(query, FACTS.iter().map(Fact::names)).and_then(|i| FACTS.get(i));
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
    let mut names: Vec<String> = FACTS.iter().map(|f| f.topic.to_owned()).collect();
    names.sort();
    names
}

struct Fact {
    topic: &'static str,
    aliases: &'static [&'static str],
    text: &'static str,
    related: &'static [&'static str],
}

impl Fact {
    fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.topic).chain(self.aliases.iter().copied())
    }
}

const FACTS: &[Fact] = &[
    Fact {
        topic: "app service scaling",
        aliases: &[
            "scaling",
            "scale",
            "scale out",
            "scale in",
            "scale up",
            "autoscale",
            "autoscaling",
            "instances",
            "instance count",
            "horizontal scaling",
        ],
        text: "Azure App Service scales out by running more instances of the same app behind its \
built-in load balancer, and scales in by removing them; scaling up means moving to a larger \
pricing tier instead. Every instance runs the same code and settings, so anything that must agree \
across instances, such as token budgets, cached answers and usage counts, belongs in shared state. \
Each instance has its own WEBSITE_INSTANCE_ID, which tollgate reports from whoami and /health so \
you can watch requests spread out.",
        related: &["redis shared state", "health probes", "deployment slots"],
    },
    Fact {
        topic: "deployment slots",
        aliases: &[
            "deployment slot",
            "slots",
            "staging slot",
            "slot swap",
            "swap",
            "staging",
        ],
        text: "A deployment slot is a second live copy of an App Service app, with its own host \
name, that sits next to production (a staging slot, for example). You deploy to the slot, warm it \
up and check it, then swap: App Service exchanges the routing so the new build takes production \
traffic without a cold start, and swapping back is the rollback. Settings marked as slot settings \
stay with their slot during a swap, which keeps staging keys and endpoints out of production.",
        related: &["app service scaling", "health probes"],
    },
    Fact {
        topic: "mcp",
        aliases: &[
            "model context protocol",
            "mcp server",
            "mcp protocol",
            "mcp tools",
        ],
        text: "The Model Context Protocol (MCP) is an open JSON-RPC protocol through which AI \
clients discover and call tools on a server. A client sends initialize, then tools/list to learn \
each tool's name, description and input schema, then tools/call with arguments; results can carry \
structured content that matches the tool's output schema. Tollgate serves whoami, echo, \
lookup_fact and summarize over MCP at POST /mcp.",
        related: &["streamable http", "tool routing", "dns rebinding"],
    },
    Fact {
        topic: "streamable http",
        aliases: &[
            "stateless http",
            "stateless http transport",
            "streamable http transport",
            "http transport",
            "mcp transport",
            "transport",
            "stateless",
        ],
        text: "Streamable HTTP is MCP's HTTP transport: each client message is a POST to a single \
endpoint, and the server answers with a JSON body or a stream of server-sent events. Tollgate runs \
it stateless with JSON responses, so no session survives between requests and any instance behind \
a load balancer can answer any call. That is what lets the MCP endpoint scale out without sticky \
sessions; GET and DELETE on /mcp answer 405.",
        related: &["mcp", "app service scaling"],
    },
    Fact {
        topic: "token budget",
        aliases: &[
            "token limits",
            "token limit",
            "tokens per minute",
            "tpm",
            "token quota",
            "quota",
            "budget",
        ],
        text: "Every subscription has a budget of tokens per minute (TOKENS_PER_MINUTE, 50,000 by \
default) and, optionally, a longer quota per hour, day, week, month or year (TOKEN_QUOTA). The \
gateway estimates a request's tokens before calling the model, refuses it with 429 and a \
Retry-After once the minute's budget is spent, and settles the estimate against the usage the \
model reports. An exhausted long-term quota answers 403 instead, because waiting a minute will \
not help.",
        related: &[
            "max tokens governance",
            "retry-after",
            "chargeback",
            "rate limiting",
        ],
    },
    Fact {
        topic: "semantic caching",
        aliases: &[
            "semantic cache",
            "cache",
            "caching",
            "llm cache",
            "response cache",
            "cache hit",
            "cache similarity threshold",
            "embedding",
        ],
        text: "The semantic cache keeps model answers keyed by an embedding of the prompt, so a new \
prompt that means nearly the same as an earlier one is answered from the cache without a model \
call. A hit needs a similarity at or above CACHE_SIMILARITY_THRESHOLD, and entries expire after \
CACHE_TTL_SECONDS (an hour by default). Gateway responses carry x-llm-cache-status (hit, miss or \
bypass), and each agent reply counts its cache hits and misses.",
        related: &["token budget", "redis shared state"],
    },
    Fact {
        topic: "circuit breaker",
        aliases: &["breaker", "circuit", "open circuit", "half open"],
        text: "A circuit breaker stops sending traffic to a backend that keeps failing. After \
repeated failures it opens and the backend is skipped for a cool-down period; then a trial request \
is let through (half-open), and a success closes it again. In tollgate each backend in the pool \
has its own breaker, so one unhealthy endpoint does not slow every request with doomed retries.",
        related: &["failover", "retry-after"],
    },
    Fact {
        topic: "health probes",
        aliases: &[
            "health probe",
            "health check",
            "healthcheck",
            "health",
            "liveness",
            "readiness",
        ],
        text: "A health probe is a request the platform sends on a schedule to decide whether an \
instance should get traffic; App Service's health check takes instances that keep failing out of \
the load balancer. Tollgate answers GET /health without a key, with its status, instance id, \
version, tool routing, whether a model is configured and which state store it uses. It reports \
degraded rather than failing when, for example, no model is configured, because its tools still \
work.",
        related: &["app service scaling", "deployment slots"],
    },
    Fact {
        topic: "retry-after",
        aliases: &["retry after header", "backoff", "too many requests", "429"],
        text: "Retry-After is the response header that tells a client how long to wait before \
trying again, typically sent with 429 and 503. Tollgate sends it with every budget or rate-limit \
refusal, in the format set by RETRY_AFTER_FORMAT: seconds (the default), an HTTP date, or an ISO \
8601 timestamp. Well-behaved clients wait that long instead of retrying at once, which keeps a \
busy gateway from being hammered.",
        related: &["rate limiting", "token budget"],
    },
    Fact {
        topic: "rate limiting",
        aliases: &[
            "rate limit",
            "throttling",
            "mcp rate limit",
            "per tool rate limit",
            "tool rate limit",
            "calls per minute",
        ],
        text: "Rate limiting caps how many calls a key may make in a time window, whatever the \
calls cost in tokens. Tollgate limits MCP calls per key with MCP_RATE_LIMIT (120 calls per 60 \
seconds by default) and can set tighter limits per tool with MCP_TOOL_RATE_LIMITS, for example \
summarize=10/60. A caller over the limit gets 429 with a Retry-After.",
        related: &["retry-after", "token budget", "subscription keys"],
    },
    Fact {
        topic: "max tokens governance",
        aliases: &[
            "max tokens",
            "max tokens cap",
            "completion limit",
            "output limit",
            "governance",
        ],
        text: "Max-tokens governance puts a ceiling on how long a model's answer may be. The \
gateway applies MAX_TOKENS_CAP (2,000 by default) as the max_tokens ceiling for non-streamed \
model calls, so a single request cannot spend a large share of a budget on one answer. A known \
ceiling also makes the up-front token estimate tighter, which keeps budget decisions accurate.",
        related: &["token budget", "chargeback"],
    },
    Fact {
        topic: "chargeback",
        aliases: &[
            "usage",
            "usage report",
            "token usage",
            "cost",
            "billing",
            "showback",
            "admin usage",
        ],
        text: "Chargeback means billing each team for the model usage it caused. Tollgate counts \
prompt and completion tokens per subscription, prices them with configurable per-model rates, and \
serves the report for the current period at GET /admin/usage. The admin key sees every \
subscription, while a subscription key sees only its own row.",
        related: &["subscription keys", "token budget", "redis shared state"],
    },
    Fact {
        topic: "redis shared state",
        aliases: &[
            "redis",
            "shared state",
            "state store",
            "distributed state",
            "redis url",
        ],
        text: "By default tollgate keeps budgets, cached answers and usage counts in process \
memory, which suits a single instance. Set REDIS_URL and that state moves to Redis, so every \
instance of a scaled-out app enforces one budget, shares one semantic cache and adds to one usage \
report. /health shows which store is active as state_store: memory or redis.",
        related: &["app service scaling", "semantic caching", "token budget"],
    },
    Fact {
        topic: "failover",
        aliases: &[
            "backend pool",
            "backends",
            "upstream pool",
            "multiple backends",
            "fallback",
            "retries",
        ],
        text: "OPENAI_BASE_URL may list several OpenAI-compatible endpoints separated by commas; \
tollgate treats them as a backend pool in priority order. A request goes to the first healthy \
backend, and a retryable failure such as a 429, a 5xx or a timeout is retried and then sent on to \
the next backend. When every backend has failed, the caller gets a 502 instead of a hang.",
        related: &["circuit breaker", "retry-after"],
    },
    Fact {
        topic: "content safety",
        aliases: &[
            "content filter",
            "content filtering",
            "moderation",
            "safety",
            "blocked content",
        ],
        text: "Content safety screens prompts and answers for harmful material; Azure OpenAI, for \
example, runs content filters and refuses requests they flag. Tollgate reports such a refusal as a \
403 saying the content was blocked, not as an upstream failure, so the caller knows that retrying \
the same prompt will not help.",
        related: &["subscription keys"],
    },
    Fact {
        topic: "dns rebinding",
        aliases: &[
            "dns rebinding protection",
            "rebinding",
            "allowed hosts",
            "allowed origins",
            "host header",
            "origin header",
        ],
        text: "DNS rebinding is an attack in which a web page gets a browser to send requests to a \
server on localhost or a private network, by making the attacker's own domain name resolve to that \
address. The MCP specification asks servers to validate the Origin header for this reason. \
Tollgate checks Host and Origin on /mcp against ALLOWED_HOSTS (loopback names by default) and \
ALLOWED_ORIGINS, and refuses anything else with 403.",
        related: &["mcp", "streamable http"],
    },
    Fact {
        topic: "subscription keys",
        aliases: &[
            "subscription key",
            "api key",
            "keys",
            "authentication",
            "auth",
            "ocp apim subscription key",
            "bearer token",
        ],
        text: "Subscription keys identify callers, in the style of Azure API Management: set \
SUBSCRIPTION_KEYS to name=key pairs separated by commas. A key may arrive as \
Ocp-Apim-Subscription-Key, api-key or Authorization: Bearer. When keys are set, every route except \
/, /health and /metrics needs one, budgets and usage are kept per subscription name, and the key \
is never forwarded to the model upstream.",
        related: &["token budget", "chargeback", "rate limiting"],
    },
    Fact {
        topic: "tool routing",
        aliases: &[
            "routing",
            "in process",
            "mcp routing",
            "routed via",
            "agent tools",
        ],
        text: "TOOL_ROUTING decides how tollgate's agent reaches its tools. With in-process, the \
default, it calls the tool functions directly, which is fastest; with mcp it calls them through \
an MCP endpoint (MCP_URL, by default this server's own /mcp), taking the same path as external \
clients, keys and rate limits included. Each tool call in an /agent/chat reply records the route \
it took in routed_via.",
        related: &["mcp", "rate limiting"],
    },
];

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
