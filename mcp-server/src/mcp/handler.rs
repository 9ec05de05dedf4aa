//! The MCP server handler: lists the tool catalog and dispatches calls to the `tools` crate.
//!
//! Schemas, names and descriptions all come from `tools::catalog()`, the same source the agent
//! uses, so the MCP surface and the agent can never disagree about a tool.

use std::sync::{Arc, LazyLock};

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
        Tool, ToolAnnotations,
    },
    service::RequestContext,
};
use tools::{Instance, ToolError};

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

/// Serves the four tools. Cheap to clone: one per stateless request.
#[derive(Clone)]
pub struct TollgateMcp {
    instance: Arc<Instance>,
}

impl TollgateMcp {
    pub fn new(instance: Arc<Instance>) -> Self {
        Self { instance }
    }
}

impl ServerHandler for TollgateMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("tollgate", env!("CARGO_PKG_VERSION")).with_title("tollgate"),
            )
            .with_instructions(
                "tollgate's tools: whoami (which instance serves you), echo, lookup_fact (curated \
                 facts about App Service, MCP and the gateway) and summarize (extractive summaries \
                 of text or built-in docs).",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(MCP_TOOLS.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        MCP_TOOLS.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        call_tool(&self.instance, &request.name, request.arguments)
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
