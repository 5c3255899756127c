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
#[derive(Debug, Clone)]
pub struct Fetcher {
    sources: Vec<String>,
    verifier: Verifier,
    client: reqwest::Client,
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
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body = read_limited(response, MAX_DOCUMENT_BYTES).await?;
        self.verifier
            .verify_bytes(&body, epoch, now_ms)
            .map_err(|e| e.to_string())
    }
}
