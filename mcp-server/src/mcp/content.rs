//! MCP resources and prompts: the built-in documents (`tools::documents`, the knowledge base
//! `summarize` and `lookup_fact` read) as `tollgate://docs/{name}` Markdown resources, and
//! prompts built on them. The texts live in `tools`; the MCP shapes live here.

use rmcp::{
    ErrorData,
    model::{
        CacheScope, GetPromptRequestParams, GetPromptResult, JsonObject, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, Prompt, PromptArgument, PromptMessage,
        ReadResourceResult, Resource, ResourceContents, ResourceTemplate, Role,
    },
};
use serde_json::{Value, json};
use tools::Document;

/// How long lists and documents may be treated as fresh (SEP-2549 `ttlMs`). They change only
/// with a new release, but a deployment should reach clients within minutes.
pub const CACHE_TTL_MS: u64 = 5 * 60 * 1000;

const DOCS_SCHEME: &str = "tollgate://docs/";
const MARKDOWN: &str = "text/markdown";

/// Longest prompt argument accepted, in characters.
const MAX_ARGUMENT_CHARS: usize = 4000;

pub fn document_uri(document: &Document) -> String {
    format!("{DOCS_SCHEME}{}", document.name)
}

pub fn list_resources(scope: CacheScope) -> ListResourcesResult {
    let resources = tools::documents()
        .iter()
        .map(|document| {
            Resource::new(document_uri(document), document.name.clone())
                .with_title(document.title.clone())
                .with_description(document.description)
                .with_mime_type(MARKDOWN)
                .with_size(u64::try_from(document.markdown.len()).unwrap_or(u64::MAX))
        })
        .collect();
    ListResourcesResult::with_all_items(resources)
        .with_ttl_ms(CACHE_TTL_MS)
        .with_cache_scope(scope)
}

pub fn list_resource_templates(scope: CacheScope) -> ListResourceTemplatesResult {
    let names: Vec<&str> = tools::documents()
        .iter()
        .map(|document| document.name.as_str())
        .collect();
    let template = ResourceTemplate::new(format!("{DOCS_SCHEME}{{name}}"), "docs")
        .with_title("tollgate documents")
        .with_description(format!(
            "A built-in document by name, as Markdown: {}.",
            names.join(", ")
        ))
        .with_mime_type(MARKDOWN);
    ListResourceTemplatesResult::with_all_items(vec![template])
        .with_ttl_ms(CACHE_TTL_MS)
        .with_cache_scope(scope)
}

/// A document by URI; an unknown one is `-32602` (SEP-2164), naming the URI.
pub fn read_resource(uri: &str, scope: CacheScope) -> Result<ReadResourceResult, ErrorData> {
    let document = uri
        .strip_prefix(DOCS_SCHEME)
        .and_then(tools::document)
        .ok_or_else(|| {
            let shown: String = uri.chars().take(200).collect();
            ErrorData::invalid_params(
                format!("no resource at `{shown}`; the documents are {DOCS_SCHEME}{{name}}"),
                Some(json!({ "uri": shown })),
            )
        })?;
    let contents = ResourceContents::TextResourceContents {
        uri: document_uri(document),
        mime_type: Some(MARKDOWN.to_owned()),
        text: document.markdown.clone(),
        meta: None,
    };
    Ok(ReadResourceResult::new(vec![contents])
        .with_ttl_ms(CACHE_TTL_MS)
        .with_cache_scope(scope))
}

/// One prompt: its arguments, the document it embeds, and how its request is written.
struct PromptSpec {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    /// `(name, description, required)`.
    arguments: &'static [(&'static str, &'static str, bool)],
    document: &'static str,
    write: fn(&Arguments<'_>) -> String,
}

const PROMPTS: &[PromptSpec] = &[
    PromptSpec {
        name: "explain_scaling",
        title: "Explain how tollgate scales",
        description: "Explain how tollgate scales out on Azure App Service and what must be \
                      shared between instances, from the built-in scaling document.",
        arguments: &[(
            "audience",
            "Who the explanation is for, e.g. an operator, a developer or a manager (default: \
             an operator).",
            false,
        )],
        document: "app-service-scaling",
        write: explain_scaling,
    },
    PromptSpec {
        name: "review_budget",
        title: "Review a token budget",
        description: "Review a subscription's token budget and quota against its usage, and \
                      suggest settings, from the built-in gateway policies document.",
        arguments: &[
            ("subscription", "The subscription to review.", true),
            (
                "tokens_per_minute",
                "Its per-minute token budget (TOKENS_PER_MINUTE), if known.",
                false,
            ),
            (
                "quota",
                "Its longer quota and period (TOKEN_QUOTA, TOKEN_QUOTA_PERIOD), if any.",
                false,
            ),
            (
                "usage",
                "Its recent usage, e.g. its row of /admin/usage.",
                false,
            ),
        ],
        document: "gateway-policies",
        write: review_budget,
    },
];

pub fn list_prompts(scope: CacheScope) -> ListPromptsResult {
    let prompts = PROMPTS
        .iter()
        .map(|spec| {
            let arguments = spec
                .arguments
                .iter()
                .map(|(name, description, required)| {
                    PromptArgument::new(*name)
                        .with_description(*description)
                        .with_required(*required)
                })
                .collect();
            Prompt::new(spec.name, Some(spec.description), Some(arguments)).with_title(spec.title)
        })
        .collect();
    ListPromptsResult::with_all_items(prompts)
        .with_ttl_ms(CACHE_TTL_MS)
        .with_cache_scope(scope)
}

/// A prompt's messages: its document, embedded, then the request written from the arguments.
pub fn get_prompt(request: &GetPromptRequestParams) -> Result<GetPromptResult, ErrorData> {
    let spec = PROMPTS
        .iter()
        .find(|spec| spec.name == request.name)
        .ok_or_else(|| {
            let known: Vec<&str> = PROMPTS.iter().map(|spec| spec.name).collect();
            ErrorData::invalid_params(
                format!("unknown prompt; the prompts are {}", known.join(", ")),
                None,
            )
        })?;
    let arguments = Arguments::read(spec, request.arguments.as_ref())?;
    let document = tools::document(spec.document).ok_or_else(|| {
        ErrorData::internal_error(format!("document `{}` is missing", spec.document), None)
    })?;
    let embedded = PromptMessage::new_resource(
        Role::User,
        document_uri(document),
        Some(MARKDOWN.to_owned()),
        Some(document.markdown.clone()),
        None,
        None,
        None,
    );
    let ask = PromptMessage::new_text(Role::User, (spec.write)(&arguments));
    Ok(GetPromptResult::new(vec![embedded, ask]).with_description(spec.description))
}

/// A prompt's arguments, checked: required ones present, every one a string, none unknown.
struct Arguments<'a> {
    values: Vec<(&'static str, &'a str)>,
}

impl<'a> Arguments<'a> {
    fn read(spec: &PromptSpec, given: Option<&'a JsonObject>) -> Result<Self, ErrorData> {
        let invalid = |message: String| ErrorData::invalid_params(message, None);
        let mut values = Vec::new();
        if let Some(given) = given {
            for (name, value) in given {
                let known = spec
                    .arguments
                    .iter()
                    .find(|(known, _, _)| known == name)
                    .ok_or_else(|| {
                        invalid(format!("prompt `{}` has no argument `{name}`", spec.name))
                    })?;
                let text = match value {
                    Value::String(text) => text.trim(),
                    Value::Null => continue,
                    _ => return Err(invalid(format!("argument `{name}` must be a string"))),
                };
                if text.chars().count() > MAX_ARGUMENT_CHARS {
                    return Err(invalid(format!(
                        "argument `{name}` is longer than {MAX_ARGUMENT_CHARS} characters"
                    )));
                }
                if !text.is_empty() {
                    values.push((known.0, text));
                }
            }
        }
        for (name, _, required) in spec.arguments {
            if *required && !values.iter().any(|(given, _)| given == name) {
                return Err(invalid(format!(
                    "prompt `{}` needs the argument `{name}`",
                    spec.name
                )));
            }
        }
        Ok(Self { values })
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.values
            .iter()
            .find(|(given, _)| *given == name)
            .map(|(_, value)| *value)
    }
}

fn explain_scaling(arguments: &Arguments<'_>) -> String {
    let audience = arguments.get("audience").unwrap_or("an operator");
    format!(
        "Using the document above, explain to {audience} how tollgate scales out on Azure App \
         Service. Cover what each instance keeps to itself, what must be shared through Redis \
         (REDIS_URL) so budgets, cached answers and usage agree across instances, why MCP \
         needs no sticky sessions, and how calling the whoami tool shows requests spreading \
         across instances. Look up \"redis shared state\" with the lookup_fact tool if you can. \
         End with a short checklist for scaling out safely."
    )
}

fn review_budget(arguments: &Arguments<'_>) -> String {
    let subscription = arguments.get("subscription").unwrap_or_default();
    let mut request = format!(
        "Review the token budget of the subscription `{subscription}` on tollgate, using the \
         document above on the gateway's policies."
    );
    for (name, label) in [
        ("tokens_per_minute", "Per-minute budget"),
        ("quota", "Longer quota"),
        ("usage", "Recent usage"),
    ] {
        if let Some(value) = arguments.get(name) {
            request.push_str(&format!("\n{label}: {value}"));
        }
    }
    request.push_str(
        "\nSay whether the budget fits the usage, what a caller sees when it runs out (429 \
         with Retry-After for the per-minute budget, 403 for a spent quota), and which settings \
         to change (TOKENS_PER_MINUTE, TOKEN_QUOTA, MAX_TOKENS_CAP, the semantic cache), with \
         the reasoning.",
    );
    request
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn prompt(name: &str, arguments: Value) -> Result<GetPromptResult, ErrorData> {
        let mut request = GetPromptRequestParams::new(name);
        request.arguments = arguments.as_object().cloned();
        get_prompt(&request)
    }

    #[test]
    fn every_document_is_a_readable_resource() {
        let listed = list_resources(CacheScope::Public);
        assert_eq!(listed.resources.len(), tools::documents().len());
        assert_eq!(listed.ttl_ms, Some(CACHE_TTL_MS));
        for resource in &listed.resources {
            let read = read_resource(&resource.uri, CacheScope::Private).unwrap();
            assert_eq!(read.cache_scope, Some(CacheScope::Private));
            let ResourceContents::TextResourceContents {
                text, mime_type, ..
            } = &read.contents[0]
            else {
                panic!("not text");
            };
            assert_eq!(mime_type.as_deref(), Some(MARKDOWN));
            assert!(text.starts_with("# "), "{text}");
        }
        for unknown in [
            "tollgate://docs/nope",
            "tollgate://docs/",
            "file:///etc/passwd",
            "",
        ] {
            let error = read_resource(unknown, CacheScope::Public).unwrap_err();
            assert_eq!(
                error.code,
                rmcp::model::ErrorCode::INVALID_PARAMS,
                "{unknown}"
            );
        }
        let templates = list_resource_templates(CacheScope::Public);
        assert_eq!(
            templates.resource_templates[0].uri_template,
            "tollgate://docs/{name}"
        );
    }

    #[test]
    fn prompts_embed_their_document_and_check_their_arguments() {
        let listed = list_prompts(CacheScope::Public);
        assert!(listed.prompts.len() >= 2);
        let review = prompt(
            "review_budget",
            json!({"subscription": "team-a", "usage": "120000 tokens today"}),
        )
        .unwrap();
        assert_eq!(review.messages.len(), 2);
        let text = serde_json::to_string(&review.messages).unwrap();
        assert!(text.contains("tollgate://docs/gateway-policies"), "{text}");
        assert!(
            text.contains("`team-a`") && text.contains("Recent usage: 120000"),
            "{text}"
        );
        assert!(prompt("explain_scaling", json!({})).is_ok());
        for (name, arguments) in [
            ("review_budget", json!({})),
            ("review_budget", json!({"subscription": 5})),
            ("review_budget", json!({"subscription": "a", "extra": "x"})),
            ("nope", json!({})),
        ] {
            let error = prompt(name, arguments).unwrap_err();
            assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS, "{name}");
        }
    }
}
