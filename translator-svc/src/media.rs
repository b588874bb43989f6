//! Fetches `image` / `document` URL sources so they can be inlined as base64 (Bedrock never fetches
//! URLs). Guards against SSRF: https only unless allowed, every address the name resolves to must
//! be public, the connection is pinned to the checked address, and every redirect is re-checked.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::StreamExt;
use futures::future::try_join_all;
use reqwest::Url;

use crate::convert::{FetchedMedia, UrlSource};
use crate::error::ApiError;

const MAX_REDIRECTS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
pub struct MediaFetcher {
    pub allow_http: bool,
    /// Lets tests (and operators with internal media hosts) fetch from private addresses.
    pub allow_private: bool,
}

/// True for addresses a gateway must never be tricked into calling: loopback, private ranges,
/// link-local (incl. the cloud metadata service), unspecified, multicast, CGNAT, ULA.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..=127).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

fn refuse(at: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_at(at, format!("could not fetch the URL source: {why}"))
}

impl MediaFetcher {
    async fn checked_address(&self, url: &Url, at: &str) -> Result<SocketAddr, ApiError> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            other => return Err(refuse(at, format!("{other} URLs are not allowed"))),
        }
        let host = url
            .host_str()
            .ok_or_else(|| refuse(at, "URL has no host"))?;
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|_| refuse(at, "host does not resolve"))?
            .collect();
        let first = *addrs
            .first()
            .ok_or_else(|| refuse(at, "host does not resolve"))?;
        if !self.allow_private && addrs.iter().any(|a| is_forbidden(a.ip())) {
            return Err(refuse(
                at,
                "the host resolves to a private or reserved address",
            ));
        }
        Ok(first)
    }

    /// Download one URL source; errors are 400s naming the block's path.
    pub async fn fetch(&self, source: &UrlSource) -> Result<FetchedMedia, ApiError> {
        let (kind, at) = (source.kind, source.path.as_str());
        let mut url = Url::parse(&source.url).map_err(|_| refuse(at, "not a valid URL"))?;
        for _ in 0..=MAX_REDIRECTS {
            let addr = self.checked_address(&url, at).await?;
            let host = url.host_str().unwrap_or_default().to_string();
            // Pin the connection to the address we checked, so DNS cannot change under us.
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(TIMEOUT)
                .resolve(&host, addr)
                .build()
                .map_err(|e| refuse(at, e))?;
            let response = client
                .get(url.clone())
                .send()
                .await
                .map_err(|_| refuse(at, "connection failed"))?;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| refuse(at, "redirect without a location"))?;
                url = url
                    .join(location)
                    .map_err(|_| refuse(at, "bad redirect location"))?;
                continue;
            }
            if !response.status().is_success() {
                return Err(refuse(
                    at,
                    format!("the server answered {}", response.status().as_u16()),
                ));
            }
            let media_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(|v| v.trim().to_ascii_lowercase())
                .unwrap_or_default();
            if !kind.accepts(&media_type) {
                return Err(refuse(
                    at,
                    format!("content type {media_type:?} is not allowed"),
                ));
            }
            let limit = kind.max_bytes();
            let mut data = Vec::new();
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|_| refuse(at, "the download failed"))?;
                if data.len() + chunk.len() > limit {
                    return Err(refuse(
                        at,
                        format!("larger than {} MiB", limit / (1024 * 1024)),
                    ));
                }
                data.extend_from_slice(&chunk);
            }
            return Ok(FetchedMedia {
                pointer: source.pointer.clone(),
                media_type,
                bytes: data,
            });
        }
        Err(refuse(at, "too many redirects"))
    }
}

impl MediaFetcher {
    /// Download every URL source of a request concurrently and inline them (spec 7). With
    /// fetching disabled the sources stay, and conversion answers the 400.
    pub async fn inline_all(
        &self,
        enabled: bool,
        request: &mut serde_json::Value,
    ) -> Result<(), ApiError> {
        let sources = crate::convert::url_sources(request);
        if sources.is_empty() || !enabled {
            return Ok(());
        }
        let fetched = try_join_all(sources.iter().map(|s| self.fetch(s))).await?;
        crate::convert::inline_fetched(request, fetched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::MediaKind;

    #[test]
    fn forbidden_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    async fn serve(app: axum::Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    fn source(url: &str) -> UrlSource {
        UrlSource {
            pointer: "/messages/0/content/0/source".into(),
            path: "messages.0.content.0.source".into(),
            url: url.into(),
            kind: MediaKind::Image,
        }
    }

    #[tokio::test]
    async fn refuses_loopback_and_plain_http() {
        let fetcher = MediaFetcher::default();
        let err = fetcher
            .fetch(&source("http://127.0.0.1:1/x.png"))
            .await
            .unwrap_err();
        assert!(
            err.message.contains("http URLs are not allowed"),
            "{}",
            err.message
        );
        let fetcher = MediaFetcher {
            allow_http: true,
            allow_private: false,
        };
        let err = fetcher
            .fetch(&source("http://127.0.0.1:1/x.png"))
            .await
            .unwrap_err();
        assert!(err.message.contains("private"), "{}", err.message);
        assert_eq!(err.status.as_u16(), 400);
    }

    #[tokio::test]
    async fn fetches_follows_redirects_and_checks_type_and_size() {
        use axum::routing::get;
        let app = axum::Router::new()
            .route(
                "/img.png",
                get(|| async { ([("content-type", "image/png")], vec![1u8, 2, 3]) }),
            )
            .route(
                "/hop",
                get(|| async { axum::response::Redirect::temporary("/img.png") }),
            )
            .route(
                "/page",
                get(|| async { ([("content-type", "text/html")], "<html>") }),
            )
            .route(
                "/big",
                get(|| async { ([("content-type", "image/png")], vec![0u8; 21 * 1024 * 1024]) }),
            );
        let addr = serve(app).await;
        let fetcher = MediaFetcher {
            allow_http: true,
            allow_private: true,
        };
        let got = fetcher
            .fetch(&source(&format!("http://{addr}/hop")))
            .await
            .unwrap();
        assert_eq!(got.media_type, "image/png");
        assert_eq!(got.bytes, vec![1, 2, 3]);
        assert_eq!(got.pointer, "/messages/0/content/0/source");
        let err = fetcher
            .fetch(&source(&format!("http://{addr}/page")))
            .await
            .unwrap_err();
        assert!(err.message.contains("text/html"));
        let err = fetcher
            .fetch(&source(&format!("http://{addr}/big")))
            .await
            .unwrap_err();
        assert!(err.message.contains("larger than 20 MiB"));
    }
}
