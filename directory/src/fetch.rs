//! Fetching a consensus document from any of several HTTP sources
//! (authorities, gateways' caches, mirrors) and keeping the first one that
//! verifies against the pinned authority keys.

use std::time::Duration;

use crate::consensus::SignedConsensus;
use crate::constants::MAX_DOCUMENT_BYTES;
use crate::verify::Verifier;

/// Why no document could be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(String),
    /// Every source failed; one line per source, in order.
    #[error("no source gave a valid document: {}", .0.join("; "))]
    AllFailed(Vec<String>),
}

/// Tries sources in turn; the first verified document wins.
#[derive(Clone)]
pub struct Fetcher {
    sources: Vec<String>,
    verifier: Verifier,
    client: reqwest::Client,
    dialer: Option<Dialer>,
    timeout: Duration,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("sources", &self.sources)
            .field("dialed", &self.dialer.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Opens a TCP stream to a host (name or IP address) and port some other
/// way than directly: through a SOCKS5 proxy, say.
pub type Dialer = std::sync::Arc<
    dyn Fn(
            String,
            u16,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = std::io::Result<tokio::net::TcpStream>> + Send>,
        > + Send
        + Sync,
>;

/// `GET url` (an `http://` URL) over a stream `dialer` opens, HTTP/1.1;
/// the body, of at most [`MAX_DOCUMENT_BYTES`], if the status is 200.
async fn get_via(dialer: &Dialer, url: &str) -> Result<Vec<u8>, String> {
    use http_body_util::BodyExt as _;
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// sources can be dialed"));
    }
    let (Some(host), Some(authority)) = (uri.host(), uri.authority()) else {
        return Err(format!("{url}: no host"));
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let stream = dialer(host, port).await.map_err(|e| error_chain(&e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| error_chain(&e))?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority.as_str())
        .header(hyper::header::CONNECTION, "close")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| error_chain(&e))?;
    if response.status() != hyper::StatusCode::OK {
        driver.abort();
        return Err(format!("HTTP {}", response.status()));
    }
    let body = http_body_util::Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the document: {e}"))?
        .to_bytes();
    driver.abort();
    Ok(body.to_vec())
}

/// Reads a response body, refusing more than `limit` bytes.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err("response too large".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err("response too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its causes, `outer: cause: cause`: a request that failed
/// at a proxy says so, not only that it failed.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = inner.source();
    }
    text
}

impl Fetcher {
    /// A fetcher over base URLs such as `http://192.0.2.7:7900`.
    pub fn new(
        sources: Vec<String>,
        verifier: Verifier,
        timeout: Duration,
    ) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // Few, rare requests: no idle connections to keep around.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(Fetcher {
            sources,
            verifier,
            client,
            dialer: None,
            timeout,
        })
    }

    /// A fetcher over trusted authorities, checking against their keys.
    pub fn for_authorities(
        authorities: &[crate::TrustedAuthority],
        timeout: Duration,
    ) -> Result<Self, FetchError> {
        Fetcher::new(
            crate::TrustedAuthority::urls(authorities),
            crate::TrustedAuthority::verifier(authorities),
            timeout,
        )
    }

    /// Makes every request over streams `dialer` opens (through a proxy,
    /// say) instead of connecting directly; `http://` sources only.
    pub fn with_dialer(mut self, dialer: Dialer) -> Self {
        self.dialer = Some(dialer);
        self
    }

    /// The verifier documents are checked with.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Fetches the document for `epoch` (or the sources' current one) and
    /// returns the first that verifies at `now_ms`.
    pub async fn fetch(
        &self,
        epoch: Option<u64>,
        now_ms: u64,
    ) -> Result<SignedConsensus, FetchError> {
        let path = crate::api::document_path(epoch);
        let mut failures = Vec::new();
        for source in &self.sources {
            match self.fetch_one(source, &path, epoch, now_ms).await {
                Ok(doc) => return Ok(doc),
                Err(why) => failures.push(format!("{source}: {why}")),
            }
        }
        Err(FetchError::AllFailed(failures))
    }

    async fn fetch_one(
        &self,
        source: &str,
        path: &str,
        epoch: Option<u64>,
        now_ms: u64,
    ) -> Result<SignedConsensus, String> {
        let url = crate::api::url(source, path);
        if let Some(dialer) = &self.dialer {
            let body = tokio::time::timeout(self.timeout, get_via(dialer, &url))
                .await
                .map_err(|_| "timed out".to_owned())??;
            return self
                .verifier
                .verify_bytes(&body, epoch, now_ms)
                .map_err(|e| e.to_string());
        }
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body = read_limited(response, MAX_DOCUMENT_BYTES).await?;
        self.verifier
            .verify_bytes(&body, epoch, now_ms)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A server that answers one request with `response`; the request it
    /// read comes back through the handle.
    async fn server(response: Vec<u8>) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(&response).await.unwrap();
            String::from_utf8(request).unwrap()
        });
        (port, task)
    }

    /// A dialer that connects directly and counts its calls.
    fn counting(calls: Arc<AtomicUsize>) -> Dialer {
        Arc::new(move |host: String, port: u16| {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { TcpStream::connect((host.as_str(), port)).await })
        })
    }

    #[tokio::test]
    async fn a_dialed_get_speaks_http_1_1_and_refuses_what_it_should() {
        let calls = Arc::new(AtomicUsize::new(0));
        let dialer = counting(Arc::clone(&calls));
        let (port, request) =
            server(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_vec()).await;
        let url = format!("http://127.0.0.1:{port}/v1/document/current");
        assert_eq!(get_via(&dialer, &url).await.unwrap(), b"hello");
        let request = request.await.unwrap();
        assert!(
            request.starts_with("GET /v1/document/current HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains(&format!("host: 127.0.0.1:{port}\r\n"))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let (port, _) =
            server(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec()).await;
        let error = get_via(&dialer, &format!("http://127.0.0.1:{port}/x"))
            .await
            .unwrap_err();
        assert!(error.contains("404"), "{error}");
        // A body longer than any document is refused while it is read.
        let huge = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_DOCUMENT_BYTES + 1
        );
        let (port, _) = server(huge.into_bytes()).await;
        assert!(
            get_via(&dialer, &format!("http://127.0.0.1:{port}/x"))
                .await
                .is_err()
        );
        // Only plain HTTP can be dialed.
        assert!(get_via(&dialer, "https://127.0.0.1:1/x").await.is_err());
        // The dialer's failure is passed on.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert!(
            get_via(&dialer, &format!("http://127.0.0.1:{port}/x"))
                .await
                .is_err()
        );
    }
}
