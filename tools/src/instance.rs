use std::time::{Duration, Instant};

/// Who is serving. Built once at start by the caller's config code; this crate never reads
/// environment variables itself, so tests can build any identity they like.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub hostname: String,
    pub site_name: Option<String>,
    pub slot_name: Option<String>,
    pub pid: u32,
    pub version: &'static str,
    started: Instant,
}

impl Instance {
    /// The id is `instance_id` if set and non-blank, else `website_instance_id` if set and
    /// non-blank, else a fresh UUID v4. Blank site and slot names count as unset.
    pub fn new(
        instance_id: Option<String>,
        website_instance_id: Option<String>,
        site_name: Option<String>,
        slot_name: Option<String>,
    ) -> Self {
        let id = non_blank(instance_id)
            .or_else(|| non_blank(website_instance_id))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        Instance {
            id,
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            site_name: non_blank(site_name),
            slot_name: non_blank(slot_name),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION"),
            started: Instant::now(),
        }
    }

    /// Time since this value was built.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

fn non_blank(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn instance_id_wins_over_website_instance_id() {
        let instance = Instance::new(s("mine"), s("website"), None, None);
        assert_eq!(instance.id, "mine");
    }

    #[test]
    fn website_instance_id_is_the_fallback() {
        assert_eq!(Instance::new(None, s("website"), None, None).id, "website");
        assert_eq!(Instance::new(s(""), s("website"), None, None).id, "website");
        assert_eq!(
            Instance::new(s("  "), s("website"), None, None).id,
            "website"
        );
    }

    #[test]
    fn uuid_when_neither_is_set() {
        for instance in [
            Instance::new(None, None, None, None),
            Instance::new(s(""), s(""), None, None),
        ] {
            let parsed = uuid::Uuid::parse_str(&instance.id);
            assert!(parsed.is_ok(), "not a uuid: {}", instance.id);
            assert_eq!(parsed.ok().map(|u| u.get_version_num()), Some(4));
        }
        let a = Instance::new(None, None, None, None);
        let b = Instance::new(None, None, None, None);
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn fills_in_process_facts() {
        let instance = Instance::new(s("x"), None, s("site"), s(""));
        assert_eq!(instance.site_name.as_deref(), Some("site"));
        assert_eq!(instance.slot_name, None);
        assert_eq!(instance.pid, std::process::id());
        assert_eq!(instance.version, env!("CARGO_PKG_VERSION"));
        assert!(!instance.hostname.is_empty());
        assert!(instance.uptime() < Duration::from_secs(60));
    }
}
