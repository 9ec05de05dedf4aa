//! `GET /dashboard`: the operator's page, compiled into the binary. Its script and stylesheet
//! are routes of their own (`/dashboard/app.js`, `/dashboard/app.css`), so the page runs under
//! a strict Content-Security-Policy with no inline code and nothing from any other host. The
//! page needs no key to load; it asks for the admin key itself and reads `/admin/stats` with it.

use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, header};

const PAGE: &str = include_str!("../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard/app.js");
const STYLE: &str = include_str!("../assets/dashboard/app.css");
/// A bar of hits beside a smaller bar of misses.
const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect x="2" y="2" width="5" height="12" fill="#1d4ed8"/><rect x="9" y="9" width="5" height="5" fill="#b45309"/></svg>"##;

/// Everything from this origin only; no inline script or style, no plugins, no framing; the
/// page's one fetch goes back to this server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

pub async fn icon() -> Response {
    asset(ICON, "image/svg+xml")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_nothing_inline() {
        for source in [PAGE, SCRIPT, STYLE] {
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                let allowed = needle == "http://" && source.contains("http://www.w3.org/2000/svg");
                let count = source.matches(needle).count();
                let expected = usize::from(allowed);
                assert_eq!(count, expected, "{needle} in a dashboard asset");
            }
        }
        assert!(!PAGE.contains("<style") && !PAGE.contains(" style="));
        assert!(!PAGE.contains("<script>"));
        // No inline event handlers (` onclick=`…): the policy would block them anyway.
        let handlers = PAGE.match_indices(" on").filter(|(at, _)| {
            let rest = &PAGE[at + 3..];
            let name_len = rest.find(|c: char| !c.is_ascii_lowercase()).unwrap_or(0);
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert_eq!(handlers.count(), 0);
        assert!(PAGE.contains(r#"<script src="/dashboard/app.js" defer>"#));
    }
}
