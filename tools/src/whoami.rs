//! `whoami`: which instance is serving, so callers can see load spread across a scaled-out app.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Instance, ToolError};

pub const NAME: &str = "whoami";
pub const TITLE: &str = "Who am I";
pub const DESCRIPTION: &str = "Report which server instance is answering: instance id, host, \
App Service site and slot, process id, version and uptime. Use it to check identity or to see \
which instance served a request when the app is scaled out.";

/// No arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct WhoamiArgs {}

/// The identity of the instance that served this call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WhoamiResult {
    /// Identity of this instance (INSTANCE_ID, else WEBSITE_INSTANCE_ID, else a UUID made at start).
    pub instance_id: String,
    /// Host name of the machine or container.
    pub hostname: String,
    /// App Service site name, when running on App Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_name: Option<String>,
    /// App Service deployment slot name, when running in a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_name: Option<String>,
    /// Operating-system process id.
    pub pid: u32,
    /// Server version.
    pub version: String,
    /// Seconds since the server started, with millisecond precision.
    pub uptime_seconds: f64,
    /// When this answer was made, RFC 3339 in UTC.
    pub served_at: String,
}

/// Describe `instance`, stamped with the current time.
pub fn whoami(instance: &Instance, _args: WhoamiArgs) -> Result<WhoamiResult, ToolError> {
    let now = OffsetDateTime::now_utc();
    // Whole milliseconds keep the timestamp short and readable.
    let now = now.replace_millisecond(now.millisecond()).unwrap_or(now);
    let served_at = now
        .format(&Rfc3339)
        .map_err(|e| ToolError::Failed(format!("could not format the current time: {e}")))?;
    let uptime_ms = instance.uptime().as_millis();
    Ok(WhoamiResult {
        instance_id: instance.id.clone(),
        hostname: instance.hostname.clone(),
        site_name: instance.site_name.clone(),
        slot_name: instance.slot_name.clone(),
        pid: instance.pid,
        version: instance.version.to_owned(),
        uptime_seconds: uptime_ms as f64 / 1000.0,
        served_at,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reports_the_instance() {
        let instance = Instance::new(Some("i-1".into()), None, Some("site".into()), None);
        let result = whoami(&instance, WhoamiArgs {}).unwrap();
        assert_eq!(result.instance_id, "i-1");
        assert_eq!(result.site_name.as_deref(), Some("site"));
        assert_eq!(result.pid, std::process::id());
        assert!(result.uptime_seconds >= 0.0);
        // e.g. 2026-05-01T12:34:56.789Z
        let at = &result.served_at;
        assert!(at.ends_with('Z'), "{at}");
        assert_eq!(at.as_bytes().get(10), Some(&b'T'), "{at}");
        assert!(at.starts_with("20"), "{at}");
    }

    #[test]
    fn omits_unset_site_and_slot() {
        let instance = Instance::new(Some("i-1".into()), None, None, None);
        let value = serde_json::to_value(whoami(&instance, WhoamiArgs {}).unwrap()).unwrap();
        let object = value.as_object().unwrap();
        assert!(!object.contains_key("site_name"));
        assert!(!object.contains_key("slot_name"));
        assert_eq!(object["instance_id"], "i-1");
    }
}
