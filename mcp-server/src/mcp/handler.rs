//! The MCP server handler: lists the tool catalog and dispatches calls to the `tools` crate, and
//! serves the built-in documents and prompts ([`super::content`]).
//!
//! Schemas, names and descriptions all come from `tools::catalog()`, the same source the agent
//! uses, so the MCP surface and the agent can never disagree about a tool. A token caller sees
//! and may call only the tools its scopes allow (MCP_TOOL_SCOPES).

use std::sync::{Arc, LazyLock};

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
        ErrorCode, GetPromptRequestParams, GetPromptResponse, Implementation, JsonObject,
        ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
        PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
        ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
    },
    service::RequestContext,
};
use serde_json::json;
use tools::{Instance, ToolError};

use super::content::{self, CACHE_TTL_MS};
use crate::{auth::Caller, oauth::scopes::ToolScopes};

/// The JSON-RPC error code of a call refused for a missing scope (a server-defined code; over
/// HTTP the same refusal is a 403 with an `insufficient_scope` challenge).
pub const INSUFFICIENT_SCOPE: ErrorCode = ErrorCode(-32003);
/// Builds the catalog and its MCP view now, rather than on the first listing.
pub fn warm() {
    LazyLock::force(&MCP_TOOLS);
}

/// The MCP view of the catalog, built once.
static MCP_TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(|| {
    tools::catalog()
        .iter()
        .map(|spec| {
            Tool::new_with_raw(
                spec.name,
                Some(spec.description.into()),
                spec.input_schema.clone(),
            )
            .with_title(spec.title)
            .with_raw_output_schema(spec.output_schema.clone())
            .with_annotations(
                ToolAnnotations::with_title(spec.title)
                    .read_only(true)
                    .destructive(false)
                    .idempotent(true)
                    .open_world(false),
            )
        })
        .collect()
});

/// Serves the four tools, the documents and the prompts. Cheap to clone: one per stateless
/// request.
#[derive(Clone)]
pub struct TollgateMcp {
    instance: Arc<Instance>,
    scopes: Arc<ToolScopes>,
    /// Who may cache lists and reads: anyone on an open server, else only the caller.
    cache_scope: CacheScope,
}

impl TollgateMcp {
    /// `open`: the server takes no credentials, so every caller sees the same answers.
    pub fn new(instance: Arc<Instance>, scopes: Arc<ToolScopes>, open: bool) -> Self {
        Self {
            instance,
            scopes,
            cache_scope: if open {
                CacheScope::Public
            } else {
                CacheScope::Private
            },
        }
    }
}

/// The caller of the request being handled, as the auth layer stored it.
fn caller_of(context: &RequestContext<RoleServer>) -> Option<&Caller> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>())
}

/// The refusal of a call to a tool the caller's token has no scope for.
pub(super) fn insufficient_scope(tool: &str, scope: &str) -> ErrorData {
    ErrorData::new(
        INSUFFICIENT_SCOPE,
        format!("insufficient scope: calling `{tool}` needs the scope `{scope}`"),
        Some(json!({"error": "insufficient_scope", "scope": scope})),
    )
}

impl ServerHandler for TollgateMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(
            Implementation::new("tollgate", env!("CARGO_PKG_VERSION")).with_title("tollgate"),
        )
        .with_instructions(
            "tollgate's tools: whoami (which instance serves you), echo, lookup_fact (curated \
                 facts about App Service, MCP and the gateway) and summarize (extractive summaries \
                 of text or built-in docs). The built-in docs are also resources \
                 (tollgate://docs/{name}), and the prompts explain_scaling and review_budget \
                 build on them.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller_of(&context);
        let tools = MCP_TOOLS
            .iter()
            .filter(|tool| {
                caller.is_none_or(|caller| caller.missing_scope(&tool.name, &self.scopes).is_none())
            })
            .cloned()
            .collect();
        // With per-tool scopes, the list depends on who asks.
        let scope = if self.scopes.is_empty() {
            self.cache_scope
        } else {
            CacheScope::Private
        };
        Ok(ListToolsResult::with_all_items(tools)
            .with_ttl_ms(CACHE_TTL_MS)
            .with_cache_scope(scope))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        MCP_TOOLS.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // The /mcp endpoint refuses these with a 403 before they get here; this is the same
        // rule for anything that reaches the handler another way.
        if let Some(scope) =
            caller_of(&context).and_then(|caller| caller.missing_scope(&request.name, &self.scopes))
        {
            return Err(insufficient_scope(&request.name, scope));
        }
        call_tool(&self.instance, &request.name, request.arguments)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(content::list_resources(self.cache_scope))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(content::list_resource_templates(self.cache_scope))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        content::read_resource(&request.uri, self.cache_scope).map(Into::into)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(content::list_prompts(self.cache_scope))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        content::get_prompt(&request).map(Into::into)
    }
}

/// One tool call, as both rmcp's handler and the fast path answer it.
pub(super) fn call_tool(
    instance: &Instance,
    name: &str,
    arguments: Option<JsonObject>,
) -> Result<CallToolResponse, ErrorData> {
    let outcome = tools::call(instance, name, arguments);
    let tool_label = tools::spec(name).map_or("unknown", |spec| spec.name);
    match outcome {
        Ok(structured) => Ok(CallToolResult::structured(structured).into()),
        // The model should see these and can recover: a tool error result.
        Err(ToolError::Failed(message)) => {
            metrics::counter!("mcp_tool_errors_total", "tool" => tool_label, "kind" => "tool_error")
                .increment(1);
            Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into())
        }
        // The call itself is malformed: a JSON-RPC error.
        Err(error @ ToolError::InvalidArguments { .. }) => {
            metrics::counter!("mcp_tool_errors_total", "tool" => tool_label, "kind" => "invalid_params")
                .increment(1);
            Err(ErrorData::invalid_params(error.to_string(), None))
        }
        Err(error @ ToolError::UnknownTool(_)) => {
            metrics::counter!("mcp_tool_errors_total", "tool" => tool_label, "kind" => "unknown_tool")
                .increment(1);
            Err(ErrorData::invalid_params(error.to_string(), None))
        }
    }
}
