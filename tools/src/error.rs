/// Why a tool call did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// No tool of that name (a protocol error for MCP; a tool error for the agent).
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// Arguments don't match the schema (wrong types, missing required fields, not an object).
    /// `reason` names the field and says why, in plain words.
    #[error("invalid arguments for `{tool}`: {reason}")]
    InvalidArguments { tool: String, reason: String },
    /// The call was well-formed but the tool refuses it (e.g. echo message too long). The model
    /// should see this as an error result and can recover.
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    /// A stable snake_case code, suitable for error bodies and bounded metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            ToolError::UnknownTool(_) => "unknown_tool",
            ToolError::InvalidArguments { .. } => "invalid_arguments",
            ToolError::Failed(_) => "tool_failed",
        }
    }
}
