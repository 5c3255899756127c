//! The authorities' HTTP API, named once: every route the server serves
//! and every client (nodes, clients, the launcher, tests) requests.
//!
//! | route | method | body |
//! |---|---|---|
//! | [`DESCRIPTOR`] | POST | a signed descriptor |
//! | [`VOTE`] | POST | a signed vote (authority to authority) |
//! | [`SIGNATURE`] | POST | a document signature (authority to authority) |
//! | [`ROUND_SIGNATURES`] | GET | the signatures an authority holds for a round |
//! | [`ROUND_EQUIVOCATIONS`] | GET | proofs that authorities sent two different votes in a round |
//! | [`DOCUMENT_CURRENT`], [`DOCUMENT`] | GET | a signed consensus |
//! | [`CLOCK`] | GET | the authority's signed epoch clock |
//! | [`STATUS`] | GET | JSON: epoch, phase, counts (for people; unsigned) |
//! | [`STATUS_PAGE`] | GET | HTML: the current consensus for people (unsigned) |
//! | [`METRICS`] | GET | Prometheus text (authorities and nodes) |
//! | [`HEALTH`] | GET | 200 when a node is up |

/// Node descriptor uploads.
pub const DESCRIPTOR: &str = "/v1/descriptor";
/// Votes between authorities.
pub const VOTE: &str = "/v1/vote";
/// Document signatures between authorities.
pub const SIGNATURE: &str = "/v1/signature";
/// The signatures held for one round (the server's route pattern).
pub const ROUND_SIGNATURES: &str = "/v1/round/{epoch}/signatures";
/// The equivocation proofs held for one round (the server's route pattern).
pub const ROUND_EQUIVOCATIONS: &str = "/v1/round/{epoch}/equivocations";
/// The newest published document.
pub const DOCUMENT_CURRENT: &str = "/v1/document/current";
/// The document of one epoch (the server's route pattern).
pub const DOCUMENT: &str = "/v1/document/{epoch}";
/// The authority's signed epoch clock (`SignedClock`).
pub const CLOCK: &str = "/v1/clock";
/// The authority's status as JSON.
pub const STATUS: &str = "/status";
/// The network status page (HTML): the current consensus for people.
pub const STATUS_PAGE: &str = "/";
/// Prometheus metrics.
pub const METRICS: &str = "/metrics";
/// A node's liveness.
pub const HEALTH: &str = "/health";

/// Milliseconds since the Unix epoch by the system clock: the time every
/// program that talks to authorities (and the authorities themselves) uses
/// to place itself in the epoch schedule. The sans-IO cores never call it;
/// their drivers pass the time in.
#[cfg(feature = "fetch")]
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A Unix time in milliseconds as a UTC calendar date and time of day:
/// `(year, month, day, hour, minute, second)`, proleptic Gregorian (the
/// days-to-civil conversion of Howard Hinnant's `chrono`-compatible date
/// algorithms), for what people read: the status page and the client's
/// history.
pub fn utc_fields(unix_ms: u64) -> (i64, i64, i64, u64, u64, u64) {
    let secs = unix_ms / 1_000;
    let days = (secs / 86_400) as i64;
    let (hour, minute, second) = ((secs % 86_400) / 3_600, (secs % 3_600) / 60, secs % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, hour, minute, second)
}

/// `path` under the base URL `base` (such as `http://192.0.2.7:7900`).
pub fn url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The path of the document for `epoch`, or of the current one.
pub fn document_path(epoch: Option<u64>) -> String {
    match epoch {
        Some(e) => DOCUMENT.replace("{epoch}", &e.to_string()),
        None => DOCUMENT_CURRENT.to_owned(),
    }
}

/// The path of the signatures held for round `epoch`.
pub fn round_signatures_path(epoch: u64) -> String {
    ROUND_SIGNATURES.replace("{epoch}", &epoch.to_string())
}

/// The path of one round's equivocation proofs.
pub fn round_equivocations_path(epoch: u64) -> String {
    ROUND_EQUIVOCATIONS.replace("{epoch}", &epoch.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fill_the_route_patterns() {
        assert_eq!(document_path(Some(7)), "/v1/document/7");
        assert_eq!(document_path(None), "/v1/document/current");
        assert_eq!(round_signatures_path(3), "/v1/round/3/signatures");
        assert_eq!(url("http://a:1/", STATUS), "http://a:1/status");
        assert_eq!(url("http://a:1", STATUS), "http://a:1/status");
    }
}
