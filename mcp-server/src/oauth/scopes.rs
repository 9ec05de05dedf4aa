//! MCP_TOOL_SCOPES: the scope each tool needs. A token caller sees a tool in `tools/list`, and
//! may call it, only when its token grants that scope; tools without one are open to every
//! caller. Subscription keys are issued by the operator per team and carry every scope.

/// Which scope each tool needs, and how clients spell scopes when they ask for them.
#[derive(Debug, Clone, Default)]
pub struct ToolScopes {
    by_tool: Vec<(String, String)>,
    /// OAUTH_SCOPE_PREFIX: Entra ID clients request `api://<app>/mcp.tools` and receive a token
    /// whose `scp` says `mcp.tools`.
    prefix: String,
}

impl ToolScopes {
    pub fn new(by_tool: Vec<(String, String)>, prefix: String) -> Self {
        Self { by_tool, prefix }
    }

    pub fn is_empty(&self) -> bool {
        self.by_tool.is_empty()
    }

    /// The scope `tool` needs, if any, as tokens carry it.
    pub fn required_for(&self, tool: &str) -> Option<&str> {
        self.by_tool
            .iter()
            .find(|(name, _)| name == tool)
            .map(|(_, scope)| scope.as_str())
    }

    /// Whether `granted` (a token's scopes) includes `required`, bare or as requested.
    pub fn grants(&self, granted: &[String], required: &str) -> bool {
        granted.iter().any(|scope| {
            scope == required
                || scope
                    .strip_prefix(self.prefix.as_str())
                    .is_some_and(|bare| !self.prefix.is_empty() && bare == required)
        })
    }

    /// A scope as clients request it (with OAUTH_SCOPE_PREFIX).
    pub fn requested_form(&self, scope: &str) -> String {
        format!("{}{scope}", self.prefix)
    }

    /// Every distinct scope, as clients request them, in the order first named.
    pub fn supported(&self) -> Vec<String> {
        let mut scopes: Vec<String> = Vec::new();
        for (_, scope) in &self.by_tool {
            let requested = self.requested_form(scope);
            if !scopes.contains(&requested) {
                scopes.push(requested);
            }
        }
        scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_match_bare_or_prefixed() {
        let scopes = ToolScopes::new(
            vec![
                ("summarize".into(), "mcp.docs".into()),
                ("echo".into(), "mcp.tools".into()),
                ("lookup_fact".into(), "mcp.docs".into()),
            ],
            "api://app/".into(),
        );
        assert_eq!(scopes.required_for("summarize"), Some("mcp.docs"));
        assert_eq!(scopes.required_for("whoami"), None);
        assert!(scopes.grants(&["mcp.docs".into()], "mcp.docs"));
        assert!(scopes.grants(&["api://app/mcp.docs".into()], "mcp.docs"));
        assert!(!scopes.grants(&["api://other/mcp.docs".into()], "mcp.docs"));
        assert!(!scopes.grants(&["mcp.tools".into()], "mcp.docs"));
        assert!(!scopes.grants(&[], "mcp.docs"));
        assert_eq!(
            scopes.supported(),
            ["api://app/mcp.docs", "api://app/mcp.tools"]
        );
        let bare = ToolScopes::new(vec![("echo".into(), "e".into())], String::new());
        assert!(!bare.grants(&["xe".into()], "e"));
        assert!(bare.grants(&["e".into()], "e"));
    }
}
