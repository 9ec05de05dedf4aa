//! The built-in documents `summarize` can summarize by topic. Original text, written for tollgate.

pub(crate) struct Doc {
    pub topic: &'static str,
    pub aliases: &'static [&'static str],
    pub text: &'static str,
}

impl Doc {
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.topic).chain(self.aliases.iter().copied())
    }
}

pub(crate) const DOCS: &[Doc] = &[
    Doc {
        topic: "app service scaling",
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
    },
    Doc {
        topic: "deployment slots",
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
    },
    Doc {
        topic: "gateway policies",
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
    },
    Doc {
        topic: "mcp",
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
    },
    Doc {
        topic: "tollgate overview",
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
    },
];

/// Every document topic, sorted.
pub(crate) fn topics() -> Vec<String> {
    let mut names: Vec<String> = DOCS.iter().map(|d| d.topic.to_owned()).collect();
    names.sort();
    names
}
