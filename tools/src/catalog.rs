//! The tool catalog and the name-based dispatcher that the MCP server and the agent share.

use std::sync::{Arc, LazyLock};

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{Instance, ToolError, echo, lookup_fact, summarize, whoami};

/// Static description of one tool, built from the schemars schemas of its argument and result
/// structs.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// JSON schema of the arguments; always `"type": "object"`, with no `$ref`.
    pub input_schema: Arc<Map<String, Value>>,
    /// JSON schema of the structured result; always `"type": "object"`, with no `$ref`.
    pub output_schema: Arc<Map<String, Value>>,
}

impl ToolSpec {
    fn new<Args: JsonSchema, Output: JsonSchema>(
        name: &'static str,
        title: &'static str,
        description: &'static str,
    ) -> Self {
        ToolSpec {
            name,
            title,
            description,
            input_schema: Arc::new(object_schema::<Args>(SchemaSettings::for_deserialize)),
            output_schema: Arc::new(object_schema::<Output>(SchemaSettings::for_serialize)),
        }
    }
}

static CATALOG: LazyLock<Vec<ToolSpec>> = LazyLock::new(|| {
    vec![
        ToolSpec::new::<whoami::WhoamiArgs, whoami::WhoamiResult>(
            whoami::NAME,
            whoami::TITLE,
            whoami::DESCRIPTION,
        ),
        ToolSpec::new::<echo::EchoArgs, echo::EchoResult>(
            echo::NAME,
            echo::TITLE,
            echo::DESCRIPTION,
        ),
        ToolSpec::new::<lookup_fact::LookupFactArgs, lookup_fact::LookupFactResult>(
            lookup_fact::NAME,
            lookup_fact::TITLE,
            lookup_fact::DESCRIPTION,
        ),
        ToolSpec::new::<summarize::SummarizeArgs, summarize::SummarizeResult>(
            summarize::NAME,
            summarize::TITLE,
            summarize::DESCRIPTION,
        ),
    ]
});

/// The four tools, in a fixed order: whoami, echo, lookup_fact, summarize.
pub fn catalog() -> &'static [ToolSpec] {
    &CATALOG
}

/// The tool called `name`, if there is one (exact, case-sensitive).
pub fn spec(name: &str) -> Option<&'static ToolSpec> {
    catalog().iter().find(|tool| tool.name == name)
}

/// Run tool `name` with raw JSON arguments (`None` means `{}`) and return its structured result,
/// always a JSON object that includes `instance_id`.
pub fn call(
    instance: &Instance,
    name: &str,
    arguments: Option<Map<String, Value>>,
) -> Result<Value, ToolError> {
    let spec = spec(name).ok_or_else(|| ToolError::UnknownTool(name.to_owned()))?;
    let arguments = arguments.unwrap_or_default();
    check_arguments(spec, &arguments)?;
    match spec.name {
        whoami::NAME => to_object(whoami::whoami(instance, parse(spec, arguments)?)?),
        echo::NAME => to_object(echo::echo(instance, parse(spec, arguments)?)?),
        lookup_fact::NAME => {
            to_object(lookup_fact::lookup_fact(instance, parse(spec, arguments)?)?)
        }
        summarize::NAME => to_object(summarize::summarize(instance, parse(spec, arguments)?)?),
        _ => Err(ToolError::UnknownTool(name.to_owned())),
    }
}

/// Like [`call`], for arguments that arrive as any JSON value (e.g. parsed from a model's tool
/// call): `null` means `{}`, and anything but an object is [`ToolError::InvalidArguments`].
pub fn call_json(instance: &Instance, name: &str, arguments: Value) -> Result<Value, ToolError> {
    match arguments {
        Value::Null => call(instance, name, None),
        Value::Object(map) => call(instance, name, Some(map)),
        other => {
            // Report an unknown tool before complaining about its arguments.
            let spec = spec(name).ok_or_else(|| ToolError::UnknownTool(name.to_owned()))?;
            Err(invalid(
                spec,
                format!("arguments must be a JSON object, got {}", describe(&other)),
            ))
        }
    }
}

/// The schema of `T` as a compact, self-contained object schema.
fn object_schema<T: JsonSchema>(
    contract: fn(SchemaSettings) -> SchemaSettings,
) -> Map<String, Value> {
    let settings = contract(SchemaSettings::draft2020_12()).with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    tidy(&mut schema);
    let mut schema = match schema {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    schema.remove("$schema");
    schema.remove("title");
    // MCP requires object schemas even for tools without arguments.
    schema.insert("type".to_owned(), Value::from("object"));
    schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    schema
}

/// Join the hard-wrapped lines of doc-comment descriptions and drop `"default": null`, which
/// only repeats that a field is optional; the schemas go into every model prompt, so compact pays.
/// Then make each schema portable (see [`make_portable`]).
fn tidy(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("default").is_some_and(Value::is_null) {
                map.remove("default");
            }
            make_portable(map);
            for (key, inner) in map.iter_mut() {
                match inner {
                    Value::String(text) if key == "description" => *text = unwrap_lines(text),
                    _ => tidy(inner),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// Schemas every client accepts: an optional field is simply not `required` (never a nullable
/// type array such as `["string", "null"]`, which Gemini-style function declarations and the
/// MCP Inspector's strict check refuse), and no `format` outside JSON Schema's own (schemars
/// writes Rust's `uint32`, `int64`, `double`…; Claude Code warns on them): an integer's width
/// becomes `minimum`/`maximum` instead.
fn make_portable(schema: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = schema.get("type") {
        let mut non_null = types.iter().filter(|kind| kind.as_str() != Some("null"));
        if let (Some(only), None) = (non_null.next(), non_null.next()) {
            let only = only.clone();
            schema.insert("type".to_owned(), only);
        }
    }
    let Some(Value::String(format)) = schema.get("format") else {
        return;
    };
    if STANDARD_FORMATS.contains(&format.as_str()) {
        return;
    }
    let bounds = integer_bounds(format);
    schema.remove("format");
    if let Some((minimum, maximum)) = bounds {
        schema
            .entry("minimum")
            .or_insert_with(|| Value::from(minimum));
        if let Some(maximum) = maximum {
            schema
                .entry("maximum")
                .or_insert_with(|| Value::from(maximum));
        }
    }
}

/// The formats JSON Schema (draft 2020-12) defines; any other is dropped.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// The range a schemars integer format stands for, where it says more than "an integer":
/// `(minimum, maximum)`, with no maximum for 64-bit and pointer-sized unsigned integers.
fn integer_bounds(format: &str) -> Option<(i64, Option<i64>)> {
    match format {
        "uint8" => Some((0, Some(i64::from(u8::MAX)))),
        "uint16" => Some((0, Some(i64::from(u16::MAX)))),
        "uint32" => Some((0, Some(i64::from(u32::MAX)))),
        "uint" | "uint64" | "uint128" => Some((0, None)),
        "int8" => Some((i64::from(i8::MIN), Some(i64::from(i8::MAX)))),
        "int16" => Some((i64::from(i16::MIN), Some(i64::from(i16::MAX)))),
        "int32" => Some((i64::from(i32::MIN), Some(i64::from(i32::MAX)))),
        _ => None,
    }
}

/// Single line breaks become spaces; blank lines (paragraph breaks) stay.
fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .split('\n')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Check `arguments` against the tool's input schema: required fields present, and each known
/// field of the declared JSON type. Done before serde so the message can name the field; fields
/// the schema doesn't know are ignored, since clients may add their own.
fn check_arguments(spec: &ToolSpec, arguments: &Map<String, Value>) -> Result<(), ToolError> {
    let schema = &spec.input_schema;
    if let Some(Value::Array(required)) = schema.get("required") {
        for field in required.iter().filter_map(Value::as_str) {
            if !arguments.contains_key(field) {
                return Err(invalid(spec, format!("missing required field `{field}`")));
            }
        }
    }
    let Some(Value::Object(properties)) = schema.get("properties") else {
        return Ok(());
    };
    for (field, property) in properties {
        let (Some(value), Some(expected)) = (arguments.get(field), property.get("type")) else {
            continue;
        };
        // An optional field given as `null` is left out, as clients that write every field mean.
        if value.is_null() && !is_required(schema, field) {
            continue;
        }
        let allowed: Vec<&str> = match expected {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        if !allowed.iter().any(|kind| has_type(value, kind)) {
            let wanted: Vec<String> = allowed
                .iter()
                .filter(|kind| **kind != "null")
                .map(|kind| with_article(kind))
                .collect();
            return Err(invalid(
                spec,
                format!(
                    "field `{field}` must be {}, got {}",
                    wanted.join(" or "),
                    describe(value)
                ),
            ));
        }
    }
    Ok(())
}

fn is_required(schema: &Map<String, Value>, field: &str) -> bool {
    schema
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|required| required.iter().any(|name| name.as_str() == Some(field)))
}

fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

fn with_article(kind: &str) -> String {
    match kind {
        "integer" | "array" | "object" => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

/// A short, plain description of a JSON value for error messages; never the whole value, which
/// could be large.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) if n.is_i64() || n.is_u64() => format!("integer {n}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() <= 40 => format!("string {s:?}"),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn invalid(spec: &ToolSpec, reason: String) -> ToolError {
    ToolError::InvalidArguments {
        tool: spec.name.to_owned(),
        reason,
    }
}

/// Deserialize checked arguments. The schema check has already caught wrong types and missing
/// fields; what is left (an integer out of range, say) is reported in serde's words.
fn parse<T: DeserializeOwned>(
    spec: &ToolSpec,
    arguments: Map<String, Value>,
) -> Result<T, ToolError> {
    serde_json::from_value(Value::Object(arguments)).map_err(|e| invalid(spec, e.to_string()))
}

fn to_object<T: Serialize>(result: T) -> Result<Value, ToolError> {
    match serde_json::to_value(result) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(ToolError::Failed(
            "tool result is not a JSON object".to_owned(),
        )),
        Err(e) => Err(ToolError::Failed(format!(
            "could not encode the tool result: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::*;

    fn instance() -> Instance {
        Instance::new(Some("i-cat".into()), None, None, None)
    }

    fn args(value: Value) -> Option<Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            _ => panic!("not an object"),
        }
    }

    fn reason(result: Result<Value, ToolError>) -> String {
        match result {
            Err(ToolError::InvalidArguments { reason, .. }) => reason,
            other => panic!("expected InvalidArguments, got {other:?}"),
        }
    }

    #[test]
    fn catalog_has_four_tools_in_order() {
        let names: Vec<&str> = catalog().iter().map(|t| t.name).collect();
        assert_eq!(names, ["whoami", "echo", "lookup_fact", "summarize"]);
        for tool in catalog() {
            assert!(spec(tool.name).is_some());
            assert!(!tool.title.is_empty());
            assert!(tool.description.len() > 40, "{}", tool.name);
        }
        assert!(spec("Echo").is_none());
        assert!(std::ptr::eq(catalog(), catalog()));
    }

    #[test]
    fn schemas_are_compact_inline_objects() {
        for tool in catalog() {
            for schema in [&tool.input_schema, &tool.output_schema] {
                assert_eq!(schema.get("type"), Some(&json!("object")), "{}", tool.name);
                assert!(schema.get("properties").is_some_and(Value::is_object));
                assert!(!schema.contains_key("$schema"));
                assert!(!schema.contains_key("title"));
                let text = serde_json::to_string(schema.as_ref()).unwrap();
                assert!(!text.contains("$ref"), "{}: {text}", tool.name);
                assert!(!text.contains("$defs"), "{}: {text}", tool.name);
                assert!(!text.contains("\\n"), "{}: {text}", tool.name);
                assert!(!text.contains("\"default\":null"), "{}: {text}", tool.name);
            }
            let output = tool.output_schema["properties"].as_object().unwrap();
            assert!(output.contains_key("instance_id"), "{}", tool.name);
            let required = tool.output_schema["required"].as_array().unwrap();
            assert!(required.contains(&json!("instance_id")), "{}", tool.name);
        }
    }

    #[test]
    fn schemas_are_portable() {
        for tool in catalog() {
            for schema in [&tool.input_schema, &tool.output_schema] {
                let text = serde_json::to_string(schema.as_ref()).unwrap();
                assert!(!text.contains("\"null\""), "{}: {text}", tool.name);
                assert!(!text.contains("\"format\""), "{}: {text}", tool.name);
            }
        }
        let pid = &spec("whoami").unwrap().output_schema["properties"]["pid"];
        assert_eq!(pid["minimum"], 0);
        assert_eq!(pid["maximum"], u32::MAX);
        let length = &spec("echo").unwrap().output_schema["properties"]["length"];
        assert_eq!(
            (&length["type"], &length["minimum"]),
            (&json!("integer"), &json!(0))
        );
        let topic = &spec("summarize").unwrap().input_schema["properties"]["topic"];
        assert_eq!(topic["type"], "string");
    }

    #[test]
    fn input_schemas_describe_the_arguments() {
        let whoami = &spec("whoami").unwrap().input_schema;
        assert_eq!(whoami["properties"], json!({}));

        let echo = &spec("echo").unwrap().input_schema;
        assert_eq!(echo["properties"]["message"]["type"], "string");
        assert_eq!(echo["required"], json!(["message"]));
        assert!(echo["properties"]["message"]["description"].is_string());

        let summarize = &spec("summarize").unwrap().input_schema;
        let properties = summarize["properties"].as_object().unwrap();
        for field in ["text", "topic", "max_sentences"] {
            assert!(properties.contains_key(field), "{field}");
        }
        assert!(
            summarize
                .get("required")
                .is_none_or(|r| r.as_array().unwrap().is_empty())
        );
    }

    #[test]
    fn whoami_output_schema_keeps_optional_fields() {
        let schema = &spec("whoami").unwrap().output_schema;
        let properties = schema["properties"].as_object().unwrap();
        assert!(properties.contains_key("site_name"));
        assert!(properties.contains_key("slot_name"));
        let required = schema["required"].as_array().unwrap();
        assert!(!required.contains(&json!("site_name")));
    }

    #[test]
    fn every_tool_result_is_an_object_with_instance_id() {
        let calls = [
            ("whoami", json!({})),
            ("echo", json!({"message": "hi"})),
            ("lookup_fact", json!({"topic": "mcp"})),
            ("lookup_fact", json!({"topic": "no such thing"})),
            ("summarize", json!({"topic": "mcp"})),
            (
                "summarize",
                json!({"text": "One. Two. Three.", "max_sentences": 1}),
            ),
        ];
        for (name, arguments) in calls {
            let result = call(&instance(), name, args(arguments)).unwrap();
            assert_eq!(result["instance_id"], "i-cat", "{name}");
        }
    }

    #[test]
    fn unknown_tool() {
        let err = call(&instance(), "nope", None).unwrap_err();
        assert_eq!(err, ToolError::UnknownTool("nope".into()));
        assert_eq!(err.to_string(), "unknown tool `nope`");
        assert_eq!(err.code(), "unknown_tool");
        assert!(matches!(
            call_json(&instance(), "nope", json!(5)),
            Err(ToolError::UnknownTool(_))
        ));
    }

    #[test]
    fn missing_arguments_mean_empty_object() {
        assert!(call(&instance(), "whoami", None).is_ok());
        assert!(call_json(&instance(), "whoami", Value::Null).is_ok());
        assert!(call(&instance(), "whoami", args(json!({"extra": true}))).is_ok());
        let message = reason(call(&instance(), "echo", None));
        assert!(
            message.contains("missing required field `message`"),
            "{message}"
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let message = reason(call(&instance(), "echo", args(json!({"message": 5}))));
        assert_eq!(message, "field `message` must be a string, got integer 5");

        let message = reason(call(
            &instance(),
            "lookup_fact",
            args(json!({"topic": null})),
        ));
        assert!(
            message.contains("`topic`") && message.contains("null"),
            "{message}"
        );

        let message = reason(call(
            &instance(),
            "summarize",
            args(json!({"text": "hi", "max_sentences": "three"})),
        ));
        assert!(
            message.contains("`max_sentences`") && message.contains("integer"),
            "{message}"
        );

        let message = reason(call(
            &instance(),
            "summarize",
            args(json!({"max_sentences": 2.5})),
        ));
        assert!(message.contains("`max_sentences`"), "{message}");

        let message = reason(call(&instance(), "summarize", args(json!({"text": ["a"]}))));
        assert!(
            message.contains("`text`") && message.contains("array"),
            "{message}"
        );
    }

    #[test]
    fn invalid_arguments_display_names_the_tool() {
        let err = call(&instance(), "echo", args(json!({}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid arguments for `echo`: missing required field `message`"
        );
        assert_eq!(err.code(), "invalid_arguments");
    }

    #[test]
    fn non_object_arguments_are_invalid() {
        let message = reason(call_json(&instance(), "echo", json!("hello")));
        assert!(message.contains("must be a JSON object"), "{message}");
        assert!(matches!(
            call_json(&instance(), "echo", json!({"message": "ok"})),
            Ok(Value::Object(_))
        ));
    }

    #[test]
    fn optional_fields_accept_null() {
        let result = call(
            &instance(),
            "summarize",
            args(json!({"text": "Only this.", "topic": null, "max_sentences": null})),
        )
        .unwrap();
        assert_eq!(result["sentences"], json!(["Only this."]));
    }

    #[test]
    fn tool_refusals_are_failed() {
        let err = call(&instance(), "summarize", args(json!({}))).unwrap_err();
        assert!(matches!(err, ToolError::Failed(_)));
        assert_eq!(err.code(), "tool_failed");
        let long = "x".repeat(65_537);
        let err = call(&instance(), "echo", args(json!({"message": long}))).unwrap_err();
        assert!(matches!(err, ToolError::Failed(_)));
    }

    #[test]
    fn results_match_their_typed_functions() {
        let value = call(&instance(), "echo", args(json!({"message": "héllo"}))).unwrap();
        let typed: echo::EchoResult = serde_json::from_value(value).unwrap();
        assert_eq!(typed.length, 5);
        let value = call(&instance(), "whoami", None).unwrap();
        let typed: whoami::WhoamiResult = serde_json::from_value(value).unwrap();
        assert_eq!(typed.instance_id, "i-cat");
    }
}
