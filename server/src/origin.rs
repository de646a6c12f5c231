//! Which web pages may open the WebSocket. A browser lets any page open a WebSocket to any
//! server, and tells the server the page's origin in the handshake's `Origin` header; the
//! server must refuse pages of other sites itself.
//!
//! Allowed: the public URL's origin, the configured list, and handshakes with no `Origin`
//! at all. Browsers always send one, so a missing header means a client that is not a
//! browser (the test and load-generator clients, aiortc); such a client can send any header
//! it likes, so refusing it would protect nothing.

use anyhow::{Context, bail};
use url::Url;

/// The origins whose pages may open the WebSocket.
#[derive(Debug, Clone)]
pub struct AllowedOrigins {
    /// ASCII serialisations (`https://host[:port]`), as browsers send them.
    origins: Vec<String>,
}

impl AllowedOrigins {
    /// The public URL's origin and the `extra` ones.
    ///
    /// # Errors
    /// An entry that is not an origin like `https://example.org`.
    pub fn new(public_url: &str, extra: &[String]) -> anyhow::Result<Self> {
        let mut origins = vec![origin_of(public_url).context("the public URL")?];
        for entry in extra {
            origins.push(origin_of(entry).context("an allowed origin")?);
        }
        Ok(AllowedOrigins { origins })
    }

    /// Whether a handshake with this `Origin` header (if any) may upgrade.
    pub fn allows(&self, origin: Option<&[u8]>) -> bool {
        origin.is_none_or(|o| self.origins.iter().any(|a| a.as_bytes() == o))
    }
}

/// The origin of an http(s) URL, as a browser writes it: lowercase host, no default port.
fn origin_of(url: &str) -> anyhow::Result<String> {
    let parsed = Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
        bail!("`{url}` is not an http or https origin");
    }
    Ok(parsed.origin().ascii_serialization())
}

/// The WebSocket endpoint's origin for pages served from `public_url`: `ws://` or `wss://`.
pub fn websocket_origin(public_url: &str) -> String {
    let origin = origin_of(public_url).unwrap_or_default();
    match origin.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => origin.replacen("http://", "ws://", 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_as_browsers_write_them() {
        let extra = ["https://App.Example.org:443/path".to_string()];
        let allowed = AllowedOrigins::new("http://127.0.0.1:8080/", &extra).unwrap();
        let allows = |o: &str| allowed.allows(Some(o.as_bytes()));
        assert!(allows("http://127.0.0.1:8080"));
        assert!(allows("https://app.example.org"));
        assert!(!allows("https://app.example.org:8443"));
        assert!(!allows("http://app.example.org"));
        assert!(!allows("http://127.0.0.1:8081"));
        assert!(!allows("null"));
        assert!(allowed.allows(None));
    }

    #[test]
    fn a_bad_origin_is_a_start_up_error() {
        for bad in ["example.org", "ftp://example.org", "mailto:a@example.org"] {
            let err = AllowedOrigins::new("http://127.0.0.1:8080", &[bad.into()]).unwrap_err();
            assert!(format!("{err:#}").contains(bad), "{err:#}");
        }
    }

    #[test]
    fn the_websocket_origin_follows_the_scheme() {
        assert_eq!(
            websocket_origin("https://meet.example.org/x"),
            "wss://meet.example.org"
        );
        assert_eq!(
            websocket_origin("http://127.0.0.1:8080"),
            "ws://127.0.0.1:8080"
        );
    }
}
