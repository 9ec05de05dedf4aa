//! tollgate's integration tests, one module per concern, built as one test binary: every
//! module links the whole app, and one binary instead of two dozen saves gigabytes of disk and
//! minutes of linking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod agent_auth;
mod agent_bad_requests;
mod agent_chat;
mod agent_limits;
mod agent_messy_models;
mod agent_routing;
mod agent_stream;
mod app_oneshot;
mod auth;
mod auth_matrix;
mod cache_eval_sets;
mod cache_semantic;
mod dns_rebinding;
mod gateway_budget;
mod gateway_content_safety;
mod gateway_endpoint;
mod gateway_https_upstream;
mod gateway_openai_client;
mod gateway_quota;
mod gateway_resilience;
mod gateway_usage;
mod loadtest_e2e;
mod mcp_fast_path;
mod mcp_http;
mod mcp_rate_limit;
mod mcp_schemas;
mod mcp_tools;
mod redis_shared;
mod security_budget;
mod security_cache_budget;
mod security_cache_partition;
mod security_connections;
mod security_mcp_credentials;
mod security_names;
mod security_stream_send_timeout;
mod status_routes;
mod telemetry_otlp;
