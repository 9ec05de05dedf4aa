//! The knowledge base: every topic tollgate can talk about, with the short fact `lookup_fact`
//! returns and the longer document `summarize` can summarize. Original text, written for tollgate.
//!
//! Each tool keeps its own aliases for a topic: the names each tool answers to were tuned
//! separately (a fact answers narrow questions, a document broad ones), and merging them would
//! change which topic a query finds.

use std::iter::FilterMap;
use std::ops::Index;
use std::slice;

/// One topic and what each tool knows about it. Table order breaks ties when matching.
pub(crate) struct Topic {
    /// The canonical topic name, reported by both tools.
    pub name: &'static str,
    /// What `lookup_fact` answers, if it knows the topic.
    pub fact: Option<Fact>,
    /// What `summarize` summarizes, if it has a document on the topic.
    pub doc: Option<Doc>,
}

pub(crate) struct Fact {
    pub aliases: &'static [&'static str],
    pub text: &'static str,
    /// Other topics with a fact, worth looking up next.
    pub related: &'static [&'static str],
}

pub(crate) struct Doc {
    pub aliases: &'static [&'static str],
    pub text: &'static str,
}

/// A topic's fact, with the topic's name.
#[derive(Clone, Copy)]
pub(crate) struct FactEntry {
    pub topic: &'static str,
    pub aliases: &'static [&'static str],
    pub text: &'static str,
    pub related: &'static [&'static str],
}

/// A topic's document, with the topic's name.
#[derive(Clone, Copy)]
pub(crate) struct DocEntry {
    pub topic: &'static str,
    pub aliases: &'static [&'static str],
    pub text: &'static str,
}

impl FactEntry {
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.topic).chain(self.aliases.iter().copied())
    }
}

impl DocEntry {
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.topic).chain(self.aliases.iter().copied())
    }
}

impl Topic {
    fn fact_entry(&'static self) -> Option<FactEntry> {
        self.fact.as_ref().map(|fact| FactEntry {
            topic: self.name,
            aliases: fact.aliases,
            text: fact.text,
            related: fact.related,
        })
    }

    fn doc_entry(&'static self) -> Option<DocEntry> {
        self.doc.as_ref().map(|doc| DocEntry {
            topic: self.name,
            aliases: doc.aliases,
            text: doc.text,
        })
    }
}

type Entries<T> = FilterMap<slice::Iter<'static, Topic>, fn(&'static Topic) -> Option<T>>;

/// The topics `lookup_fact` knows, in table order.
#[derive(Clone, Copy)]
pub(crate) struct Facts;
pub(crate) const FACTS: Facts = Facts;

impl Facts {
    pub fn iter(self) -> Entries<FactEntry> {
        TOPICS.iter().filter_map(Topic::fact_entry)
    }

    pub fn get(self, index: usize) -> Option<FactEntry> {
        self.iter().nth(index)
    }

    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the table's own tests count it")
    )]
    pub fn len(self) -> usize {
        self.iter().count()
    }
}

impl IntoIterator for Facts {
    type Item = FactEntry;
    type IntoIter = Entries<FactEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The topics `summarize` has a document on, in table order.
#[derive(Clone, Copy)]
pub(crate) struct Docs;
pub(crate) const DOCS: Docs = Docs;

impl Docs {
    pub fn iter(self) -> Entries<DocEntry> {
        TOPICS.iter().filter_map(Topic::doc_entry)
    }

    pub fn get(self, index: usize) -> Option<DocEntry> {
        self.iter().nth(index)
    }
}

impl IntoIterator for Docs {
    type Item = DocEntry;
    type IntoIter = Entries<DocEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The `index`-th document, like indexing a slice (and, like it, panicking when out of range).
impl Index<usize> for Docs {
    type Output = Doc;
    fn index(&self, index: usize) -> &Doc {
        match TOPICS.iter().filter_map(|t| t.doc.as_ref()).nth(index) {
            Some(doc) => doc,
            None => panic!("document {index} is out of range"),
        }
    }
}

/// Every topic with a fact, sorted.
pub(crate) fn fact_topics() -> Vec<String> {
    sorted(FACTS.iter().map(|f| f.topic))
}

/// Every topic with a document, sorted.
pub(crate) fn document_topics() -> Vec<String> {
    sorted(DOCS.iter().map(|d| d.topic))
}

fn sorted(names: impl Iterator<Item = &'static str>) -> Vec<String> {
    let mut names: Vec<String> = names.map(str::to_owned).collect();
    names.sort();
    names
}

const TOPICS: &[Topic] = &[
    Topic {
        name: "app service scaling",
        fact: Some(Fact {
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
        }),
        doc: Some(Doc {
            aliases: &[
                "scaling",
                "scale out",
                "scale in",
                "autoscale",
                "autoscaling",
                "instances",
                "app service",
            ],
            text: "Azure App Service runs a web app on one or more instances of a plan.
Scaling up moves the plan to a bigger tier with more memory and CPU per instance.
Scaling out adds instances, and the platform's load balancer spreads requests across them.
Scale out can be manual, or automatic through rules on CPU, memory or queue length.
Scaling in removes instances again when the load drops, which saves money.
Every instance runs the same code with the same settings, but each has its own memory.
Anything kept in process memory is therefore private to one instance.
For tollgate that covers token budgets, semantic cache entries and usage counters.
With several instances and no shared store, each instance would enforce its own budget and keep its own cache.
Pointing REDIS_URL at a Redis server makes every instance share one budget, one cache and one usage report.
Each instance also has its own WEBSITE_INSTANCE_ID, which tollgate reports from whoami and /health.
Calling whoami a few times through the load balancer shows the requests landing on different instances.
Because MCP is served statelessly, any instance can answer any call, and no sticky sessions are needed.",
        }),
    },
    Topic {
        name: "deployment slots",
        fact: Some(Fact {
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
        }),
        doc: Some(Doc {
            aliases: &[
                "deployment slot",
                "slots",
                "staging slot",
                "slot swap",
                "swap",
                "staging",
            ],
            text: "A deployment slot is a separate live copy of an App Service app with its own host name.
Production is itself a slot, and a plan tier that supports slots lets you add others such as staging.
You deploy a new build to the staging slot instead of straight to production.
There you can warm it up, run smoke tests against it and check its /health endpoint.
When it looks right, you swap the staging and production slots.
A swap exchanges the routing of the two slots, so the already warm build starts taking production traffic without a cold start.
If something goes wrong after the swap, swapping back restores the previous build just as quickly.
App settings can be marked as slot settings, which keeps them with their slot during a swap.
That is how a staging slot keeps its own keys, endpoints and model deployments out of production.
Each slot runs its own instances, so whoami reports the slot name as well as the instance id.
A swap can also be previewed, applying production settings to staging before the routing changes.
Slots share the plan's capacity, so a busy staging slot takes resources from production.",
        }),
    },
    Topic {
        name: "gateway policies",
        fact: None,
        doc: Some(Doc {
            aliases: &[
                "gateway",
                "ai gateway",
                "policies",
                "policy",
                "token budget",
                "semantic cache",
                "semantic caching",
                "max tokens",
                "max tokens governance",
                "retries",
                "failover",
                "chargeback",
            ],
            text: "Every model call that tollgate makes or forwards passes through the same chain of gateway policies.
Governance runs first: a max_tokens value above MAX_TOKENS_CAP is lowered to the cap for non-streamed calls.
The token budget comes next and estimates how many tokens the request will use.
If the subscription's budget for the current minute cannot cover the estimate, the call is refused with 429 and a Retry-After header.
The semantic cache is then consulted with an embedding of the prompt.
When a cached prompt is similar enough, its answer is returned without calling the model, and the response is marked as a cache hit.
On a miss the request goes upstream to the first healthy backend in the pool.
Retryable failures such as 429, 5xx responses and timeouts are retried, then failed over to the next backend.
A circuit breaker per backend skips an endpoint that keeps failing until a cool-down has passed.
When the model answers, the budget's estimate is reconciled with the real token usage it reports.
The same usage feeds chargeback: prompt and completion tokens are counted per subscription and priced per model.
Metrics record each call by subscription, model and cache outcome, with bounded labels only.
Finally the fresh answer is stored in the semantic cache for the next similar prompt.",
        }),
    },
    Topic {
        name: "mcp",
        fact: Some(Fact {
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
        }),
        doc: Some(Doc {
            aliases: &[
                "model context protocol",
                "mcp server",
                "streamable http",
                "stateless http",
                "structured output",
                "tools",
            ],
            text: "The Model Context Protocol, MCP, is a JSON-RPC protocol that lets AI applications use tools provided by a server.
A client starts with an initialize request that agrees on a protocol version and capabilities.
It then calls tools/list to learn each tool's name, description and JSON schema for its arguments.
To run a tool, the client sends tools/call with the tool name and a JSON object of arguments.
A result can hold text content for the model and structured content that matches the tool's output schema.
When a tool fails in a way the model can fix, the result is marked with isError instead of being a protocol error.
Protocol errors, such as calling a tool that does not exist, are returned as JSON-RPC errors.
Tollgate serves MCP over streamable HTTP at POST /mcp.
It runs the transport statelessly with plain JSON responses, so no session state ties a client to one instance.
That makes the endpoint easy to scale out behind a load balancer.
The server offers four tools: whoami, echo, lookup_fact and summarize.
Each tool returns structured content that includes the instance id of the server that answered.
Host and Origin headers are checked on every request to protect local servers from DNS rebinding.",
        }),
    },
    Topic {
        name: "streamable http",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "token budget",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "semantic caching",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "circuit breaker",
        fact: Some(Fact {
            aliases: &["breaker", "circuit", "open circuit", "half open"],
            text: "A circuit breaker stops sending traffic to a backend that keeps failing. After \
repeated failures it opens and the backend is skipped for a cool-down period; then a trial request \
is let through (half-open), and a success closes it again. In tollgate each backend in the pool \
has its own breaker, so one unhealthy endpoint does not slow every request with doomed retries.",
            related: &["failover", "retry-after"],
        }),
        doc: None,
    },
    Topic {
        name: "health probes",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "retry-after",
        fact: Some(Fact {
            aliases: &["retry after header", "backoff", "too many requests", "429"],
            text: "Retry-After is the response header that tells a client how long to wait before \
trying again, typically sent with 429 and 503. Tollgate sends it with every budget or rate-limit \
refusal, in the format set by RETRY_AFTER_FORMAT: seconds (the default), an HTTP date, or an ISO \
8601 timestamp. Well-behaved clients wait that long instead of retrying at once, which keeps a \
busy gateway from being hammered.",
            related: &["rate limiting", "token budget"],
        }),
        doc: None,
    },
    Topic {
        name: "rate limiting",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "max tokens governance",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "chargeback",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "redis shared state",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "failover",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "content safety",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "dns rebinding",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "subscription keys",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "tool routing",
        fact: Some(Fact {
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
        }),
        doc: None,
    },
    Topic {
        name: "tollgate overview",
        fact: None,
        doc: Some(Doc {
            aliases: &["tollgate", "overview", "architecture", "about", "agent"],
            text: "Tollgate is an MCP server, an agent and an AI gateway in a single binary.
The MCP server exposes four small tools over stateless streamable HTTP.
The agent answers chat messages by calling a language model and letting it use those tools.
Its tools are reached either in-process or through the MCP endpoint, depending on TOOL_ROUTING.
Both paths run the same tool code, so a tool gives the same answer whichever way it is called.
The AI gateway offers an OpenAI-compatible chat completions API that other applications can use.
Every model call, from the agent or through the gateway, passes the same policies.
Those policies enforce token budgets, cache similar prompts, cap max_tokens, retry and fail over between backends, and record usage for chargeback.
Callers are identified by subscription keys, and budgets and usage are kept per subscription.
State lives in memory for a single instance, or in Redis when the app is scaled out.
A /health endpoint, an HTML status page and Prometheus metrics show how each instance is doing.
The upstream can be OpenAI, Azure OpenAI or any OpenAI-compatible server such as a local model.",
        }),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_a_fact_or_a_document_and_a_unique_name() {
        let mut names: Vec<&str> = TOPICS.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TOPICS.len());
        assert!(TOPICS.iter().all(|t| t.fact.is_some() || t.doc.is_some()));
        assert_eq!(
            DOCS[1].text,
            DOCS.get(1).map(|d| d.text).unwrap_or_default()
        );
    }
}
