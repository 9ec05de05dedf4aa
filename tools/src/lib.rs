//! The four tollgate tools as pure Rust: no HTTP, no MCP types.
//!
//! This crate is the single source of truth for each tool's name, description, JSON schemas and
//! behaviour. The MCP server and the in-process agent both dispatch through [`call`], so a tool
//! behaves the same whichever way it is reached.
//!
//! # Layout
//! - [`whoami`], [`echo`], [`lookup_fact`], [`summarize`]: one module per tool, each with its
//!   argument and result structs (whose doc comments become the schema descriptions) and a typed
//!   function that runs it.
//! - [`catalog`] / [`spec`]: the static [`ToolSpec`] list (name, title, description, input and
//!   output schemas), in a fixed order.
//! - [`call`] / [`call_json`]: dispatch by name with raw JSON arguments, checked against the
//!   input schema, returning the structured result as a JSON object.
//! - [`documents`] / [`document`]: the built-in documents (the ones `summarize` reads), whole,
//!   as Markdown, each with a stable name.
//! - [`Instance`]: who is serving; every result carries its `instance_id`.
//! - [`ToolError`]: unknown tool, invalid arguments, or a refusal the model can recover from.
//!
//! Private helpers: `topic_match` (the forgiving topic matcher shared by `lookup_fact` and
//! `summarize`) and `corpus` (the one knowledge base: per topic, the fact `lookup_fact` returns
//! and the document `summarize` summarizes). Words, stop words and plurals come from the
//! `text-analysis` crate.

mod catalog;
mod corpus;
pub mod documents;
pub mod echo;
mod error;
mod instance;
pub mod lookup_fact;
pub mod summarize;
mod topic_match;
pub mod whoami;

pub use catalog::{ToolSpec, call, call_json, catalog, spec};
pub use documents::{Document, document, documents};
pub use error::ToolError;
pub use instance::Instance;
