//! Safety numbers: the 60 digits two people compare (read aloud, or one
//! scans the other's QR code) to know that no one sits between them.
//!
//! The construction is the one Signal uses for its safety numbers: each
//! side's half is an iterated SHA-512 over its identity key and a stable
//! identifier, cut into six groups of five digits; the two halves are
//! joined in sorted order, so both sides compute the same number. The
//! test vectors of Signal's published implementation pass through
//! [`SafetyNumber::compute`] unchanged. AegisLink's halves hash the
//! identity's Ed25519 key (with its type byte, `0x0E`) and, as stable
//! identifier, `"aegislink:"` followed by the contact id, so a number can
//! never coincide with one from another system.

use sha2::{Digest as _, Sha512};

use crate::edge::identity::encode_ed25519;
use crate::profile::contact_id_of;

/// Hash iterations for each half (Signal's figure: it makes a search for
/// a key whose half matches a target's cost 5,200 hashes per try).
pub const ITERATIONS: u32 = 5_200;

/// Version bytes hashed first (Signal's version 0).
const VERSION: [u8; 2] = [0, 0];

/// Digits in a safety number.
pub const DIGITS: usize = 60;

/// The number two contacts compare.
#[derive(Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    digits: String,
}

impl std::fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SafetyNumber({})", self.digits)
    }
}

/// One side's 30 digits.
fn half(iterations: u32, stable_id: &[u8], key: &[u8]) -> String {
    let mut hash = Sha512::new()
        .chain_update(VERSION)
        .chain_update(key)
        .chain_update(stable_id)
        .chain_update(key)
        .finalize();
    for _ in 1..iterations {
        hash = Sha512::new()
            .chain_update(hash)
            .chain_update(key)
            .finalize();
    }
    hash[..30]
        .chunks_exact(5)
        .map(|chunk| {
            let value = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            format!("{:05}", value % 100_000)
        })
        .collect()
}

/// AegisLink's stable identifier for an identity.
fn stable_id(signing: &[u8; 32]) -> Vec<u8> {
    let mut id = b"aegislink:".to_vec();
    id.extend_from_slice(&contact_id_of(signing).0);
    id
}

impl SafetyNumber {
    /// The number from both sides' identifiers and serialized keys, in
    /// Signal's construction (kept general so its test vectors apply).
    pub fn compute(
        iterations: u32,
        local_id: &[u8],
        local_key: &[u8],
        remote_id: &[u8],
        remote_key: &[u8],
    ) -> SafetyNumber {
        let local = half(iterations, local_id, local_key);
        let remote = half(iterations, remote_id, remote_key);
        let digits = if local < remote {
            local + &remote
        } else {
            remote + &local
        };
        SafetyNumber { digits }
    }

    /// The safety number between two AegisLink identities (their Ed25519
    /// signing keys); the same whichever side computes it.
    pub fn between(own_signing: &[u8; 32], their_signing: &[u8; 32]) -> SafetyNumber {
        SafetyNumber::compute(
            ITERATIONS,
            &stable_id(own_signing),
            &encode_ed25519(own_signing),
            &stable_id(their_signing),
            &encode_ed25519(their_signing),
        )
    }

    /// A number from its 60 digits (as the control protocol carries it);
    /// `None` for anything else.
    pub fn from_digits(digits: &str) -> Option<SafetyNumber> {
        (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then(|| {
            SafetyNumber {
                digits: digits.to_owned(),
            }
        })
    }

    /// The 60 digits.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The digits in twelve groups of five, three lines of four groups (as
    /// people read them out).
    pub fn grouped(&self) -> String {
        let groups: Vec<&str> = (0..DIGITS / 5)
            .map(|i| &self.digits[i * 5..i * 5 + 5])
            .collect();
        groups
            .chunks(4)
            .map(|line| line.join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether the digits someone typed or scanned are this number (spaces
    /// and line breaks ignored). Compared without an early exit.
    pub fn matches(&self, typed: &str) -> bool {
        let typed: Vec<u8> = typed.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if typed.len() != DIGITS {
            return false;
        }
        typed
            .iter()
            .zip(self.digits.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }

    /// The QR code's modules (`true` is dark), without the quiet zone. It
    /// encodes the 60 digits in numeric mode, error correction level M.
    pub fn qr_modules(&self) -> Vec<Vec<bool>> {
        use qrcodegen::{QrCode, QrCodeEcc};
        let Ok(code) = QrCode::encode_text(&self.digits, QrCodeEcc::Medium) else {
            // Sixty digits fit the smallest versions; encoding cannot fail.
            return Vec::new();
        };
        let size = code.size();
        (0..size)
            .map(|y| (0..size).map(|x| code.get_module(x, y)).collect())
            .collect()
    }

    /// The QR code for a terminal: two module rows per text line, light
    /// modules and a two-module quiet zone drawn as blocks (the light
    /// parts of the code show in the terminal's text colour, which on
    /// the usual dark background gives dark modules on light). Decode it
    /// with [`parse_terminal_qr`].
    pub fn qr_terminal(&self) -> String {
        render_terminal(&self.qr_modules())
    }
}

/// Quiet zone drawn around a terminal QR code, in modules.
const QUIET: usize = 2;

fn render_terminal(modules: &[Vec<bool>]) -> String {
    let size = modules.len();
    let full = size + 2 * QUIET;
    // Light at (x, y) of the bordered code.
    let light = |x: usize, y: usize| {
        if x < QUIET || y < QUIET || x >= size + QUIET || y >= size + QUIET {
            return true;
        }
        !modules[y - QUIET][x - QUIET]
    };
    let mut out = String::new();
    for y in (0..full).step_by(2) {
        for x in 0..full {
            let top = light(x, y);
            let bottom = y + 1 < full && light(x, y + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    out
}

/// The modules (`true` dark, quiet zone included) of a code drawn by
/// [`SafetyNumber::qr_terminal`]; `None` if the text is not such a
/// drawing.
pub fn parse_terminal_qr(text: &str) -> Option<Vec<Vec<bool>>> {
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let width = lines.first()?.len();
    let mut rows = Vec::with_capacity(lines.len() * 2);
    for line in &lines {
        if line.len() != width {
            return None;
        }
        let mut top = Vec::with_capacity(width);
        let mut bottom = Vec::with_capacity(width);
        for c in line {
            let (t, b) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                _ => return None,
            };
            top.push(!t);
            bottom.push(!b);
        }
        rows.push(top);
        rows.push(bottom);
    }
    // An odd number of module rows leaves a last half-line with no light
    // module drawn under it; it is not part of the code.
    rows.truncate(width);
    Some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Signal's published test vectors for its safety numbers
    // (libsignal, fingerprint tests "version 1"): two Curve25519 identity
    // keys with their 0x05 type byte, phone numbers as stable
    // identifiers, 5,200 iterations.
    const ALICE_KEY: &str = "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868";
    const BOB_KEY: &str = "05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b";
    const ALICE_ID: &str = "+14152222222";
    const BOB_ID: &str = "+14153333333";
    const DISPLAYED: &str = "300354477692869396892869876765458257569162576843440918079131";

    #[test]
    fn the_construction_gives_signals_published_safety_number() {
        let alice = hex::decode(ALICE_KEY).unwrap();
        let bob = hex::decode(BOB_KEY).unwrap();
        let from_alice = SafetyNumber::compute(
            ITERATIONS,
            ALICE_ID.as_bytes(),
            &alice,
            BOB_ID.as_bytes(),
            &bob,
        );
        let from_bob = SafetyNumber::compute(
            ITERATIONS,
            BOB_ID.as_bytes(),
            &bob,
            ALICE_ID.as_bytes(),
            &alice,
        );
        assert_eq!(from_alice.digits(), DISPLAYED);
        assert_eq!(from_bob, from_alice);
    }

    #[test]
    fn both_sides_see_the_same_number_and_a_third_key_changes_it() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let m = [3u8; 32];
        let ab = SafetyNumber::between(&a, &b);
        assert_eq!(ab, SafetyNumber::between(&b, &a));
        assert_eq!(ab.digits().len(), DIGITS);
        assert!(ab.digits().bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(ab, SafetyNumber::between(&a, &m));
        assert_ne!(ab, SafetyNumber::between(&m, &b));
    }

    #[test]
    fn typed_digits_match_with_any_spacing_and_only_when_all_agree() {
        let n = SafetyNumber::between(&[1u8; 32], &[2u8; 32]);
        assert!(n.matches(n.digits()));
        assert!(n.matches(&n.grouped()));
        assert_eq!(n.grouped().lines().count(), 3);
        let mut wrong = n.digits().as_bytes().to_vec();
        wrong[59] = if wrong[59] == b'0' { b'1' } else { b'0' };
        assert!(!n.matches(std::str::from_utf8(&wrong).unwrap()));
        assert!(!n.matches(&n.digits()[..59]));
        assert!(!n.matches(""));
    }

    #[test]
    fn the_terminal_drawing_reads_back_as_the_code() {
        let n = SafetyNumber::between(&[1u8; 32], &[2u8; 32]);
        let modules = n.qr_modules();
        // Sixty digits at level M need version 2 (25 × 25 modules): the
        // published capacities are 34 digits for version 1-M, 63 for 2-M.
        assert_eq!(modules.len(), 25);
        let parsed = parse_terminal_qr(&n.qr_terminal()).unwrap();
        assert_eq!(parsed.len(), 25 + 2 * QUIET);
        for (y, row) in modules.iter().enumerate() {
            assert_eq!(&parsed[y + QUIET][QUIET..QUIET + 25], &row[..]);
        }
        assert!(parsed[0].iter().all(|dark| !dark));
        assert_eq!(parse_terminal_qr("not a code"), None);
    }
}
