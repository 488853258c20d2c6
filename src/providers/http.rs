//! The one HTTP client every provider uses, with the one retry policy and rate limit.
//!
//! `HttpClient::execute` sends a request built by the adapter, reads the whole body and hands
//! it to the adapter's decoder; whatever fails on the way comes back as a `ProviderError` that
//! knows whether it is retryable. 429 and 503 honour `Retry-After` (seconds or an HTTP date);
//! other 5xx, timeouts, dropped connections and truncated or malformed bodies are retried
//! with exponential backoff and full jitter, a bounded number of times. A provider that asks
//! to wait longer than `RetryPolicy::max_wait` stops the request with `WaitTooLong`, so the run
//! can end cleanly and be resumed. Every request of a run passes one shared token bucket.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;

use super::{FieldError, ProviderError, ProviderKind};

/// How often and how long a failed request is tried again.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// The first backoff's upper bound; it doubles with each attempt.
    pub base_delay: Duration,
    /// The largest backoff between two attempts.
    pub max_delay: Duration,
    /// The longest `Retry-After` we accept before giving up on the run.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a uniform delay between zero and the attempt's exponential bound.
    fn backoff(&self, attempt: u32) -> Duration {
        let bound = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let millis = bound.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// A response read whole, handed to an adapter's decoder.
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl HttpResponse {
    /// The error this non-success response stands for, with the provider's own message.
    pub fn error(&self, provider: ProviderKind, endpoint: &str) -> ProviderError {
        let status = self.status.as_u16();
        let endpoint = endpoint.to_string();
        match status {
            401 | 403 => ProviderError::Unauthorized {
                provider,
                status,
                endpoint,
                message: provider_message(&self.body),
            },
            422 => ProviderError::Invalid {
                provider,
                endpoint,
                fields: validation_fields(&self.body),
            },
            _ => ProviderError::Status {
                provider,
                status,
                endpoint,
                message: provider_message(&self.body),
                retry_after: parse_retry_after(&self.headers),
            },
        }
    }

    /// One record read by id: `None` for 404 (the provider no longer has it), the provider's
    /// error for another failure, else what `parse` makes of the body.
    pub fn optional_record<T, E: std::fmt::Display>(
        &self,
        provider: ProviderKind,
        endpoint: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ProviderError> {
        if self.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !self.status.is_success() {
            return Err(self.error(provider, endpoint));
        }
        parse(&String::from_utf8_lossy(&self.body))
            .map(Some)
            .map_err(|e| self.malformed(provider, endpoint, e))
    }

    /// A record in a well-formed answer that callvault cannot archive (see
    /// `ProviderError::Unusable`).
    pub fn unusable(
        &self,
        provider: ProviderKind,
        endpoint: &str,
        err: impl std::fmt::Display,
    ) -> ProviderError {
        ProviderError::Unusable {
            provider,
            endpoint: endpoint.to_string(),
            message: err.to_string(),
        }
    }

    pub fn malformed(
        &self,
        provider: ProviderKind,
        endpoint: &str,
        err: impl std::fmt::Display,
    ) -> ProviderError {
        ProviderError::Malformed {
            provider,
            endpoint: endpoint.to_string(),
            message: format!("{err} (HTTP {}, {} bytes)", self.status, self.body.len()),
        }
    }
}

/// The message inside an error body, whatever shape the provider uses, with anything that
/// looks like a key taken out (a provider may echo the key it refused).
fn provider_message(body: &[u8]) -> String {
    crate::secret::redact(&raw_provider_message(body))
}

fn raw_provider_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Shapes {
        detail: Option<serde_json::Value>,
        message: Option<String>,
        title: Option<String>,
        error: Option<serde_json::Value>,
    }
    let text = String::from_utf8_lossy(body);
    match serde_json::from_slice::<Shapes>(body) {
        Ok(s) => {
            if let Some(m) = s.message.or(s.title) {
                return m;
            }
            match s.detail.or(s.error) {
                Some(serde_json::Value::String(m)) => m,
                Some(other) => other.to_string(),
                None => shorten(&text),
            }
        }
        Err(_) if text.trim().is_empty() => "no message".into(),
        Err(_) => shorten(&text),
    }
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The fields of a FastAPI-style 422 body, `{detail: [{loc, msg, type}]}`.
fn validation_fields(body: &[u8]) -> Vec<FieldError> {
    #[derive(Deserialize)]
    struct Body {
        detail: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        loc: Vec<serde_json::Value>,
        #[serde(default)]
        msg: String,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(b) => b
            .detail
            .into_iter()
            .map(|item| FieldError {
                location: item
                    .loc
                    .iter()
                    .map(|part| match part {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("."),
                message: crate::secret::redact(&item.msg),
            })
            .collect(),
        Err(_) => vec![FieldError {
            location: "body".into(),
            message: provider_message(body),
        }],
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Checks a base URL given by the user or a config file, once, at the edge: http or https, a
/// host, no credentials (keys come from the environment), no query or fragment. Returns it
/// without a trailing `/`.
pub fn check_base_url(text: &str) -> Result<String, String> {
    let url =
        reqwest::Url::parse(text.trim()).map_err(|e| format!("'{text}' is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "'{text}' is not an http or https address (callvault speaks HTTP only)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{text}' names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "a base URL must not hold credentials; keys come only from the environment".into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "'{text}' has a query or fragment; give the API's base address"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Whether requests to `base_url` would carry a key in clear text off this machine: plain
/// http to a host that is not loopback.
pub fn is_cleartext_remote(base_url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base_url) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    url.scheme() == "http" && !loopback
}

/// `base` with `segments` appended as path segments, each percent-encoded, so an id can never
/// step out of its place in the path (`..`, `/`, `?`).
pub fn endpoint_url(
    provider: ProviderKind,
    base: &str,
    segments: &[&str],
) -> Result<reqwest::Url, ProviderError> {
    let malformed = |message: String| ProviderError::Malformed {
        provider,
        endpoint: base.to_string(),
        message,
    };
    let mut url =
        reqwest::Url::parse(base).map_err(|e| malformed(format!("not a base URL: {e}")))?;
    url.path_segments_mut()
        .map_err(|_| malformed("the base URL cannot take a path".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// A header value holding a secret: marked sensitive, so no log or debug output shows it. A
/// key that cannot be a header value is sent empty, and the provider answers 401.
pub fn secret_header(value: &str) -> reqwest::header::HeaderValue {
    let mut header = reqwest::header::HeaderValue::from_str(value)
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
    header.set_sensitive(true);
    header
}

/// One `reqwest::Client` for the whole process, plus the retry policy and the rate limit.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: RetryPolicy,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

impl HttpClient {
    pub fn new(policy: RetryPolicy, rps: Option<f64>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("callvault/", env!("CARGO_PKG_VERSION")))
            // Provider APIs do not redirect. Following one would hand the key (reqwest strips
            // only `Authorization` and `Cookie` across hosts) and a DELETE to another address;
            // a 3xx is reported as the error it is instead.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .gzip(true)
            .build()?;
        let limiter = rps
            .and_then(rate_quota)
            .map(|q| Arc::new(RateLimiter::direct(q)));
        Ok(HttpClient {
            client,
            policy,
            limiter,
        })
    }

    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Sends the request `build` makes, retrying as the policy says, and decodes the
    /// response with `decode`. `endpoint` names the request in errors and logs; it never
    /// holds a secret.
    pub async fn execute<T>(
        &self,
        provider: ProviderKind,
        endpoint: &str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
        decode: impl Fn(&HttpResponse) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let mut attempt = 1;
        loop {
            let result = self.attempt(provider, endpoint, &build, &decode).await;
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retryable() || attempt >= self.policy.max_attempts {
                return Err(err);
            }
            let delay = match err.retry_after() {
                Some(asked) if asked > self.policy.max_wait => {
                    return Err(ProviderError::WaitTooLong {
                        provider,
                        endpoint: endpoint.to_string(),
                        asked,
                        cap: self.policy.max_wait,
                    })
                }
                Some(asked) => asked,
                None => self.policy.backoff(attempt),
            };
            tracing::warn!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                "retrying {provider} {endpoint}: {err}"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt<T>(
        &self,
        provider: ProviderKind,
        endpoint: &str,
        build: &impl Fn(&reqwest::Client) -> RequestBuilder,
        decode: &impl Fn(&HttpResponse) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        let transport = |source| ProviderError::Transport {
            provider,
            endpoint: endpoint.to_string(),
            source,
        };
        tracing::debug!("{provider} {endpoint}");
        let response = build(&self.client).send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?;
        decode(&HttpResponse {
            status,
            headers,
            body,
        })
    }
}

fn rate_quota(rps: f64) -> Option<Quota> {
    if !(rps.is_finite() && rps > 0.0) {
        return None;
    }
    let period = Duration::from_secs_f64(1.0 / rps);
    Quota::with_period(period).map(|q| q.allow_burst(NonZeroU32::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(3)));
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        let date = later.to_rfc2822().replace("+0000", "GMT");
        h.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let wait = parse_retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn backoff_draws_uniformly_up_to_a_bound_that_doubles_from_200_ms_to_10_s() {
        let p = RetryPolicy::default();
        // The schedule written out, not recomputed: attempt n waits up to 200 ms * 2^(n-1),
        // never more than 10 s.
        let bounds_ms = [
            200u64, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000, 10_000,
        ];
        for (attempt, bound) in (1..).zip(bounds_ms) {
            let draws: Vec<u64> = (0..2_000)
                .map(|_| p.backoff(attempt).as_millis() as u64)
                .collect();
            let (min, max) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
            let mean = draws.iter().sum::<u64>() as f64 / draws.len() as f64;
            assert!(*max <= bound, "attempt {attempt}: {max} ms past {bound} ms");
            // Full jitter: the draws fill [0, bound] (a constant, zero or a smaller bound
            // fails here; each check fails by chance with odds below 1e-40).
            assert!(
                *max * 10 >= bound * 9,
                "attempt {attempt}: max {max} of {bound}"
            );
            assert!(
                *min * 10 <= bound,
                "attempt {attempt}: min {min} of {bound}"
            );
            let share = mean / bound as f64;
            assert!(
                (0.45..=0.55).contains(&share),
                "attempt {attempt}: mean {mean} ms of {bound}"
            );
        }
    }

    /// The error a response with `status` stands for.
    fn error_for(status: u16, retry_after: Option<&'static str>) -> ProviderError {
        let mut headers = HeaderMap::new();
        if let Some(v) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(v));
        }
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: bytes::Bytes::from_static(br#"{"detail":"no"}"#),
        }
        .error(ProviderKind::Bluejay, "GET /x")
    }

    #[test]
    fn which_answers_are_retried() {
        // 408, 409, 429 and every 5xx may succeed if sent again; other 4xx never will.
        let table = [
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (405, false),
            (408, true),
            (409, true),
            (410, false),
            (422, false),
            (429, true),
            (500, true),
            (501, true),
            (502, true),
            (503, true),
            (504, true),
        ];
        for (status, retried) in table {
            let err = error_for(status, None);
            assert_eq!(err.is_retryable(), retried, "HTTP {status}: {err}");
            assert_eq!(err.http_status(), Some(status));
        }
        assert_eq!(
            error_for(429, Some("7")).retry_after(),
            Some(Duration::from_secs(7))
        );
        let kind = ProviderKind::Bluejay;
        let endpoint = String::from("GET /x");
        let others = [
            (
                ProviderError::Malformed {
                    provider: kind,
                    endpoint: endpoint.clone(),
                    message: "cut short".into(),
                },
                true,
            ),
            (
                ProviderError::WaitTooLong {
                    provider: kind,
                    endpoint: endpoint.clone(),
                    asked: Duration::from_secs(600),
                    cap: Duration::from_secs(120),
                },
                false,
            ),
            (
                ProviderError::Unsupported {
                    provider: kind,
                    what: "x".into(),
                },
                false,
            ),
            (
                ProviderError::Unusable {
                    provider: kind,
                    endpoint: endpoint.clone(),
                    message: "a call has no id".into(),
                },
                false,
            ),
            (
                ProviderError::Truncated {
                    provider: kind,
                    endpoint,
                    message: "x".into(),
                },
                false,
            ),
        ];
        for (err, retried) in others {
            assert_eq!(err.is_retryable(), retried, "{err}");
        }
    }

    /// A server on 127.0.0.1 that answers its n-th connection with `replies[n]` (the last
    /// one again past the end), each on a connection of its own, and counts them.
    fn scripted_server(
        replies: Vec<&'static str>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, Write};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = std::sync::Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let n = count.fetch_add(1, Ordering::SeqCst);
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let reply = replies[n.min(replies.len() - 1)];
                let _ = stream.write_all(
                    format!("{reply}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}")
                        .as_bytes(),
                );
            }
        });
        (url, served)
    }

    /// Sends one GET through a client with `policy` to `url`.
    fn send(policy: RetryPolicy, url: &str) -> Result<(), ProviderError> {
        let client = HttpClient::new(policy, None).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(client.execute(
            ProviderKind::Bluejay,
            "GET /x",
            |c| c.get(url),
            |r| match r.status.is_success() {
                true => Ok(()),
                false => Err(r.error(ProviderKind::Bluejay, "GET /x")),
            },
        ))
    }

    #[test]
    fn a_request_is_sent_at_most_max_attempts_times_and_a_refusal_once() {
        use std::sync::atomic::Ordering;
        let policy = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_wait: Duration::from_secs(1),
        };
        let (url, served) = scripted_server(vec!["HTTP/1.1 500 Internal Server Error"]);
        let err = send(policy, &url).unwrap_err();
        assert_eq!(err.http_status(), Some(500), "{err}");
        assert_eq!(served.load(Ordering::SeqCst), 4, "retries exhausted");

        let (url, served) = scripted_server(vec![
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0",
            "HTTP/1.1 502 Bad Gateway",
            "HTTP/1.1 200 OK",
        ]);
        send(policy, &url).unwrap();
        assert_eq!(
            served.load(Ordering::SeqCst),
            3,
            "ends at the first success"
        );

        let (url, served) = scripted_server(vec!["HTTP/1.1 400 Bad Request"]);
        assert_eq!(send(policy, &url).unwrap_err().http_status(), Some(400));
        assert_eq!(served.load(Ordering::SeqCst), 1, "a 400 is not sent again");

        let (url, served) =
            scripted_server(vec!["HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30"]);
        let err = send(policy, &url).unwrap_err();
        assert!(matches!(err, ProviderError::WaitTooLong { .. }), "{err}");
        assert_eq!(served.load(Ordering::SeqCst), 1, "no wait past max_wait");
    }

    #[test]
    fn base_urls_are_checked_once_at_the_edge() {
        assert_eq!(
            check_base_url("https://api.getbluejay.ai/").as_deref(),
            Ok("https://api.getbluejay.ai")
        );
        assert!(check_base_url("notaurl").is_err());
        assert!(check_base_url("ftp://example.com")
            .unwrap_err()
            .contains("http or https"));
        let creds = check_base_url("https://user:sk-secret@example.com").unwrap_err();
        assert!(
            creds.contains("credentials") && !creds.contains("sk-secret"),
            "{creds}"
        );
        assert!(check_base_url("https://example.com/?a=1").is_err());
        assert!(is_cleartext_remote("http://example.com"));
        assert!(!is_cleartext_remote("https://example.com"));
        assert!(!is_cleartext_remote("http://127.0.0.1:8787"));
        assert!(!is_cleartext_remote("http://localhost:1"));
        assert!(!is_cleartext_remote("http://[::1]:1"));
    }

    #[test]
    fn validation_errors_read_field_by_field() {
        let body = br#"{"detail":[{"loc":["query","page_size"],"msg":"Input should be less than or equal to 100","type":"less_than_equal"}]}"#;
        let fields = validation_fields(body);
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].location, "query.page_size");
        assert!(fields[0].message.contains("100"));
    }
}
