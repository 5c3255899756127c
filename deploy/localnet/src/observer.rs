//! A passive observer of the wires.
//!
//! A tap is a TCP relay placed in front of a listener: it forwards every
//! byte unchanged and records what anyone watching that wire can see — the
//! length and arrival time of each Noise transport message (libp2p's Noise
//! framing puts a 2-byte length in the clear before each one). Nothing
//! inside the encryption is read.
//!
//! The analysis then asks the two questions an observer would: do all
//! messages on a link have one size, and does a client's emission pattern
//! change when it starts sending messages?
//!
//! What a Noise message holds, seen from outside: a 16-byte tag and one or
//! more yamux frames, each a 12-byte header and its data. A link that only
//! ever writes whole *units* (a link frame between nodes; a length-prefixed
//! cell between a client and its gateway) produces messages of length
//! `16 + k·(12 + unit) + 12·c`: `k` units, coalesced when several leave at
//! once, and `c` header-only yamux control frames (window updates).
//! Yamux carries at most 16 KiB in one frame, so a larger unit (the KEM
//! format's 18,254-byte frame) leaves as several frames: leading pieces of
//! 16 KiB and a last piece with the rest, which need not share a Noise
//! message; a message then holds any number of leading pieces, `k` last
//! pieces (`k` units completed) and control frames. When its send window
//! runs low yamux sends less than a piece, and the rest follows in the next
//! message: two such messages together are regular.
//! Anything else is *irregular*: the connection's handshakes, the protocol
//! negotiation when a stream opens — or a leak.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Bytes of the AEAD tag of a Noise transport message.
const NOISE_TAG: usize = 16;
/// Bytes of a yamux frame header.
const YAMUX_HEADER: usize = 12;
/// Header-only yamux frames one message may carry and still be regular.
const MAX_CONTROL_FRAMES: usize = 16;
/// Most data one yamux frame carries: the yamux crate's `split_send_size`
/// (16 KiB, libp2p's default); a longer write leaves as several frames.
const YAMUX_SPLIT: usize = 16 * 1024;
/// Multistream-select messages read before giving up on finding Noise.
const MAX_NEGOTIATION_MESSAGES: usize = 16;

/// One direction of one connection, as seen on the wire.
#[derive(Debug, Default, Clone)]
pub struct Flow {
    /// (seconds since the observer started, Noise message length).
    pub messages: Vec<(f64, usize)>,
}

/// One observed TCP connection.
#[derive(Debug, Default, Clone)]
pub struct Connection {
    /// From the side that dialled to the listener.
    pub to_listener: Flow,
    /// From the listener back to the dialler.
    pub to_dialer: Flow,
}

/// What one message is, from its length alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `k ≥ 1` units completed (and perhaps leading pieces of units and
    /// control frames).
    Units(usize),
    /// Only leading pieces of a unit larger than a yamux frame (and
    /// perhaps control frames): the unit completes in a later message.
    Leading,
    /// Only yamux control frames.
    Control,
    /// Neither.
    Irregular,
}

/// The yamux frames a unit leaves as, headers included: the length of a
/// leading piece, and that of the last piece (the whole unit when it fits
/// one frame, and then no leading piece).
fn pieces(unit: usize) -> (Option<usize>, usize) {
    let leading = unit.saturating_sub(1) / YAMUX_SPLIT;
    let last = YAMUX_HEADER + unit - leading * YAMUX_SPLIT;
    ((leading > 0).then_some(YAMUX_HEADER + YAMUX_SPLIT), last)
}

/// Classifies a Noise message length on a link whose writes are `unit`
/// bytes each: the most units it can complete, then the most leading
/// pieces, with at most [`MAX_CONTROL_FRAMES`] control frames besides.
pub fn shape(len: usize, unit: usize) -> Shape {
    let Some(body) = len.checked_sub(NOISE_TAG) else {
        return Shape::Irregular;
    };
    let (leading, last) = pieces(unit);
    let control = |rest: usize| {
        rest.is_multiple_of(YAMUX_HEADER) && rest / YAMUX_HEADER <= MAX_CONTROL_FRAMES
    };
    for k in (0..=body / last).rev() {
        let rest = body - k * last;
        let most_leading = leading.map_or(0, |l| rest / l);
        for a in (0..=most_leading).rev() {
            if control(rest - a * leading.unwrap_or(0)) {
                return match (k, a) {
                    (0, 0) => Shape::Control,
                    (0, _) => Shape::Leading,
                    _ => Shape::Units(k),
                };
            }
        }
    }
    Shape::Irregular
}

/// Incremental parser of one direction: multistream-select up to `/noise`,
/// then length-prefixed Noise messages.
#[derive(Debug, Default)]
struct Parser {
    buffer: Vec<u8>,
    in_noise: bool,
    negotiation_messages: usize,
    /// Gave up: the stream is not libp2p-over-Noise.
    opaque: bool,
}

impl Parser {
    /// Feeds bytes; returns the lengths of the Noise messages completed.
    fn feed(&mut self, bytes: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        if self.opaque {
            return out;
        }
        self.buffer.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            let rest = &self.buffer[at..];
            if self.in_noise {
                if rest.len() < 2 {
                    break;
                }
                let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                if rest.len() < 2 + len {
                    break;
                }
                out.push(len);
                at += 2 + len;
            } else {
                let Some((len, used)) = uvarint(rest) else {
                    break;
                };
                if rest.len() < used + len {
                    break;
                }
                let message = &rest[used..used + len];
                self.in_noise = message == b"/noise\n";
                self.negotiation_messages += 1;
                at += used + len;
                if !self.in_noise && self.negotiation_messages >= MAX_NEGOTIATION_MESSAGES {
                    self.opaque = true;
                    self.buffer.clear();
                    return out;
                }
            }
        }
        self.buffer.drain(..at);
        out
    }
}

/// An unsigned LEB128 varint of at most 9 bytes: (value, bytes used).
fn uvarint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, &b) in bytes.iter().enumerate().take(9) {
        value |= ((b & 0x7F) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// A relay in front of `target`, recording every connection through it.
pub struct Tap {
    /// Which wire this is (a node's name, or a client's).
    pub label: String,
    /// Bytes per write on this wire (see the module documentation).
    pub unit: usize,
    /// Where the tap listens.
    pub port: u16,
    connections: Arc<Mutex<Vec<Connection>>>,
}

impl Tap {
    /// Starts relaying from `port` on loopback to `target`.
    pub async fn start(
        label: &str,
        unit: usize,
        port: u16,
        target: u16,
        origin: Instant,
    ) -> std::io::Result<Tap> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let connections = Arc::new(Mutex::new(Vec::<Connection>::new()));
        let record = connections.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let index = {
                    let mut all = record.lock().unwrap_or_else(|p| p.into_inner());
                    all.push(Connection::default());
                    all.len() - 1
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::spawn(relay(
                    in_read,
                    out_write,
                    record.clone(),
                    index,
                    true,
                    origin,
                ));
                tokio::spawn(relay(
                    out_read,
                    in_write,
                    record.clone(),
                    index,
                    false,
                    origin,
                ));
            }
        });
        Ok(Tap {
            label: label.to_owned(),
            unit,
            port,
            connections,
        })
    }

    /// Everything seen so far.
    pub fn connections(&self) -> Vec<Connection> {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    record: Arc<Mutex<Vec<Connection>>>,
    index: usize,
    to_listener: bool,
    origin: Instant,
) {
    let mut parser = Parser::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let at = origin.elapsed().as_secs_f64();
        let lengths = parser.feed(&buffer[..n]);
        if !lengths.is_empty() {
            let mut all = record.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(connection) = all.get_mut(index) {
                let flow = if to_listener {
                    &mut connection.to_listener
                } else {
                    &mut connection.to_dialer
                };
                flow.messages
                    .extend(lengths.into_iter().map(|len| (at, len)));
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Sizes seen in one direction of a tap's connections.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SizeReport {
    /// Noise messages seen.
    pub messages: usize,
    /// Units carried (a message of `k` coalesced units counts `k`).
    pub units: usize,
    /// Messages of only control frames.
    pub control: usize,
    /// Irregular messages before the first unit of a connection (handshakes).
    pub setup: usize,
    /// Irregular messages after it.
    pub irregular: usize,
    /// The distinct lengths of those irregular messages.
    pub irregular_lengths: Vec<usize>,
    /// The distinct lengths of unit-carrying messages.
    pub unit_lengths: Vec<usize>,
}

impl SizeReport {
    fn add(&mut self, flow: &Flow, unit: usize) {
        let mut seen_unit = false;
        // A message yamux cut short (its send window ran low): held back
        // until the next one shows whether the two carry whole pieces.
        let mut short: Option<usize> = None;
        for &(_, len) in &flow.messages {
            self.messages += 1;
            if let Some(first) = short.take() {
                let joined = first + len - NOISE_TAG;
                if let Shape::Units(k) = shape(joined, unit) {
                    self.units += k;
                    continue;
                }
                self.irregular += 1;
                insert_sorted(&mut self.irregular_lengths, first);
            }
            match shape(len, unit) {
                Shape::Units(k) => {
                    seen_unit = true;
                    self.units += k;
                    insert_sorted(&mut self.unit_lengths, len);
                }
                Shape::Leading => {
                    seen_unit = true;
                    insert_sorted(&mut self.unit_lengths, len);
                }
                Shape::Control => self.control += 1,
                Shape::Irregular if !seen_unit => self.setup += 1,
                Shape::Irregular => short = Some(len),
            }
        }
        if let Some(first) = short {
            self.irregular += 1;
            insert_sorted(&mut self.irregular_lengths, first);
        }
    }
}

fn insert_sorted(v: &mut Vec<usize>, x: usize) {
    if let Err(i) = v.binary_search(&x) {
        v.insert(i, x);
    }
}

/// One tap's wire, both directions.
#[derive(Debug, Clone, Serialize)]
pub struct LinkReport {
    /// The tap's label.
    pub label: String,
    /// Bytes per unit on this wire.
    pub unit: usize,
    /// TCP connections seen.
    pub connections: usize,
    /// Dialler to listener.
    pub to_listener: SizeReport,
    /// Listener to dialler.
    pub to_dialer: SizeReport,
}

/// The sizes on a tap's wire.
pub fn link_report(tap: &Tap) -> LinkReport {
    let connections = tap.connections();
    let mut to_listener = SizeReport::default();
    let mut to_dialer = SizeReport::default();
    for c in &connections {
        to_listener.add(&c.to_listener, tap.unit);
        to_dialer.add(&c.to_dialer, tap.unit);
    }
    LinkReport {
        label: tap.label.clone(),
        unit: tap.unit,
        connections: connections.len(),
        to_listener,
        to_dialer,
    }
}

/// Emission in one time window.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Seconds observed.
    pub seconds: f64,
    /// Units emitted.
    pub units: usize,
    /// Units per second.
    pub rate: f64,
    /// Coefficient of variation (standard deviation / mean) of the gaps
    /// between units: about 1 for Poisson emissions, near 0 for fixed
    /// intervals.
    pub gap_cv: f64,
    /// Mean resultant length R of the units' phases on the slot period
    /// 1/(λP + λL + λD): 1 when every unit leaves on one fixed grid, about
    /// 1/√n for times that ignore the period (uniform phases).
    pub phase_r: f64,
    /// Rayleigh's test of uniform phases: the probability of an R at least
    /// this large if the phases were uniform, exp(−n R²).
    pub phase_p: f64,
}

/// How a client's emissions compare before and after it has messages.
#[derive(Debug, Clone, Serialize)]
pub struct EmissionReport {
    /// The tap's label (the client).
    pub label: String,
    /// Cover only.
    pub quiet: Window,
    /// While messages are sent and received.
    pub busy: Window,
    /// Two-sample Kolmogorov–Smirnov distance between the gaps between
    /// emissions in the two windows.
    pub ks_distance: f64,
    /// The distance above which the two gap distributions differ at the
    /// 0.1 % level.
    pub ks_critical: f64,
}

/// Unit emission times in `[from, to)` of the dialler's side of a tap.
fn emissions(tap: &Tap, from: f64, to: f64) -> Vec<f64> {
    let mut times = Vec::new();
    for c in tap.connections() {
        for &(at, len) in &c.to_listener.messages {
            if let Shape::Units(k) = shape(len, tap.unit)
                && at >= from
                && at < to
            {
                times.extend(std::iter::repeat_n(at, k));
            }
        }
    }
    times.sort_by(f64::total_cmp);
    times
}

fn window(times: &[f64], from: f64, to: f64, period: f64) -> Window {
    let seconds = (to - from).max(0.0);
    let phase_r = phase_concentration(times, period);
    Window {
        phase_r,
        phase_p: (-(times.len() as f64) * phase_r * phase_r).exp(),
        seconds,
        units: times.len(),
        rate: if seconds > 0.0 {
            times.len() as f64 / seconds
        } else {
            0.0
        },
        gap_cv: coefficient_of_variation(&gaps(times)),
    }
}

/// The mean resultant length of `times` taken as angles on a circle of
/// `period` seconds (0 for no times or no period).
fn phase_concentration(times: &[f64], period: f64) -> f64 {
    if times.is_empty() || period.is_nan() || period <= 0.0 {
        return 0.0;
    }
    let (mut c, mut s) = (0.0, 0.0);
    for t in times {
        let angle = std::f64::consts::TAU * (t / period).fract();
        c += angle.cos();
        s += angle.sin();
    }
    (c * c + s * s).sqrt() / times.len() as f64
}

/// Standard deviation over mean of `values` (0 for fewer than two).
fn coefficient_of_variation(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return 0.0;
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    variance.sqrt() / mean
}

fn gaps(times: &[f64]) -> Vec<f64> {
    let mut g: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    g.sort_by(f64::total_cmp);
    g
}

/// The two-sample Kolmogorov–Smirnov statistic of two samples (1 if either
/// is empty), from the test kit's test.
pub fn ks_distance(a: &[f64], b: &[f64]) -> f64 {
    aegis_testkit::ks::two_sample(a, b).map_or(1.0, |r| r.d)
}

/// Compares a client's emissions while it has only cover to send — from one
/// second after its first emission until `quiet_to` — with those in
/// `[quiet_to, busy_to)`.
pub fn emission_report(tap: &Tap, quiet_to: f64, busy_to: f64, period: f64) -> EmissionReport {
    let quiet_from = emissions(tap, 0.0, quiet_to)
        .first()
        .map_or(quiet_to, |first| (first + 1.0).min(quiet_to));
    let quiet = emissions(tap, quiet_from, quiet_to);
    let busy = emissions(tap, quiet_to, busy_to);
    let (gq, gb) = (gaps(&quiet), gaps(&busy));
    let (n, m) = (gq.len().max(1) as f64, gb.len().max(1) as f64);
    EmissionReport {
        label: tap.label.clone(),
        quiet: window(&quiet, quiet_from, quiet_to, period),
        busy: window(&busy, quiet_to, busy_to, period),
        ks_distance: ks_distance(&gq, &gb),
        // c(α = 0.001) = 1.949.
        ks_critical: 1.949 * ((n + m) / (n * m)).sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against closed forms: exponential gaps have a coefficient of
    /// variation of exactly 1, fixed gaps 0, and uniform gaps on [0, 2m]
    /// 1/√3.
    #[test]
    fn gap_cv_and_phase_concentration_match_their_closed_forms() {
        use rand::{RngExt as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut t = 0.0;
        let poisson: Vec<f64> = (0..20_000)
            .map(|_| {
                t += -(1.0 - rng.random::<f64>()).ln() / 14.0;
                t
            })
            .collect();
        let poisson = window(&poisson, 0.0, t, 1.0 / 14.0);
        assert!((poisson.gap_cv - 1.0).abs() < 0.03, "{}", poisson.gap_cv);
        // Uniform phases: n R² is exponential with mean 1.
        assert!(poisson.phase_p > 1e-3, "{poisson:?}");
        let fixed: Vec<f64> = (0..1_000).map(|i| 0.01 + f64::from(i) / 14.0).collect();
        let fixed = window(&fixed, 0.0, 100.0, 1.0 / 14.0);
        assert!(fixed.gap_cv < 1e-9);
        assert!((fixed.phase_r - 1.0).abs() < 1e-9, "{fixed:?}");
        // A grid with normal jitter σ: R → exp(−(2πσ/T)² / 2) (the wrapped
        // normal's mean resultant length).
        let sigma = 0.01;
        let jittered: Vec<f64> = (0..20_000)
            .map(|i| {
                let (u, v): (f64, f64) = (rng.random(), rng.random());
                let normal = (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                1.0 + f64::from(i) / 14.0 + sigma * normal
            })
            .collect();
        let r = window(&jittered, 0.0, 2_000.0, 1.0 / 14.0).phase_r;
        let expected = (-(std::f64::consts::TAU * sigma * 14.0).powi(2) / 2.0).exp();
        assert!((r - expected).abs() < 0.02, "{r} against {expected}");
        let mut t = 0.0;
        let uniform: Vec<f64> = (0..20_000)
            .map(|_| {
                t += rng.random::<f64>() * 2.0;
                t
            })
            .collect();
        let cv = window(&uniform, 0.0, t, 1.0).gap_cv;
        assert!((cv - 1.0 / 3f64.sqrt()).abs() < 0.02, "{cv}");
    }

    #[test]
    fn shapes_follow_the_framing() {
        let unit = aegis_mix_packet::Geometry::STANDARD.frame_len();
        let one = NOISE_TAG + YAMUX_HEADER + unit;
        assert_eq!(shape(one, unit), Shape::Units(1));
        assert_eq!(shape(one + YAMUX_HEADER + unit, unit), Shape::Units(2));
        assert_eq!(shape(one + 2 * YAMUX_HEADER, unit), Shape::Units(1));
        assert_eq!(shape(NOISE_TAG + YAMUX_HEADER, unit), Shape::Control);
        assert_eq!(shape(one + 5, unit), Shape::Irregular);
        assert_eq!(shape(NOISE_TAG + YAMUX_HEADER + 20, unit), Shape::Irregular);
        assert_eq!(shape(3, unit), Shape::Irregular);
        // A KEM frame leaves as a 16 KiB piece and the rest, together or
        // apart.
        let kem = aegis_mix_packet::Geometry::PQ.frame_len();
        let (lead, last) = (YAMUX_HEADER + YAMUX_SPLIT, YAMUX_HEADER + kem - YAMUX_SPLIT);
        assert_eq!(shape(NOISE_TAG + lead, kem), Shape::Leading);
        assert_eq!(shape(NOISE_TAG + last, kem), Shape::Units(1));
        assert_eq!(shape(NOISE_TAG + lead + last, kem), Shape::Units(1));
        assert_eq!(
            shape(NOISE_TAG + last + lead + last + YAMUX_HEADER, kem),
            Shape::Units(2)
        );
        assert_eq!(shape(NOISE_TAG + last + 7, kem), Shape::Irregular);
        // A Sphinx frame on a KEM link is not a unit.
        assert_eq!(shape(one, kem), Shape::Irregular);
    }

    #[test]
    fn parser_finds_noise_messages_after_negotiation_in_any_chunking() {
        let mut wire = Vec::new();
        for m in [&b"/multistream/1.0.0\n"[..], b"/noise\n"] {
            wire.push(m.len() as u8);
            wire.extend_from_slice(m);
        }
        for len in [32usize, 300, 2_449] {
            wire.extend_from_slice(&(len as u16).to_be_bytes());
            wire.extend(std::iter::repeat_n(0xA5, len));
        }
        for chunk in [1usize, 7, 1_000, wire.len()] {
            let mut parser = Parser::default();
            let mut seen = Vec::new();
            for piece in wire.chunks(chunk) {
                seen.extend(parser.feed(piece));
            }
            assert_eq!(seen, vec![32, 300, 2_449], "chunks of {chunk}");
        }
    }

    #[test]
    fn a_stream_that_never_negotiates_noise_is_left_alone() {
        let mut parser = Parser::default();
        let mut wire = Vec::new();
        for _ in 0..MAX_NEGOTIATION_MESSAGES {
            wire.extend_from_slice(b"\x03na\n");
        }
        assert!(parser.feed(&wire).is_empty());
        assert!(parser.opaque);
        assert!(parser.feed(&[0, 1, 2]).is_empty());
    }

    #[test]
    fn ks_distance_separates_different_samples_only() {
        let a: Vec<f64> = (0..500).map(|i| i as f64 / 500.0).collect();
        let b: Vec<f64> = (0..400).map(|i| (i as f64 + 0.5) / 400.0).collect();
        assert!(ks_distance(&a, &b) < 0.01);
        let c: Vec<f64> = a.iter().map(|x| x * 0.5).collect();
        assert!(ks_distance(&a, &c) > 0.45);
    }
}
