//! The hybrid KEM every hop of a KEM packet uses: X-Wing (Connolly,
//! Schwabe, Westerbaan; draft-connolly-cfrg-xwing-kem), ML-KEM-768 and
//! X25519 under a SHA3-256 combiner. The shared secret stays secret while
//! either part holds: ML-KEM-768 against a quantum computer, X25519 if
//! ML-KEM were broken by classical means.
//!
//! A secret key is a 32-byte seed, expanded with SHAKE256 into ML-KEM's two
//! seeds and the X25519 scalar; the public key is ML-KEM's encapsulation key
//! (1,184 bytes) followed by the X25519 point (32); a ciphertext is ML-KEM's
//! (1,088) followed by the ephemeral X25519 point (32).

use libcrux_ml_kem::mlkem768::{self, MlKem768Ciphertext, MlKem768PrivateKey, MlKem768PublicKey};
use rand::CryptoRng;
use sha3::{Digest, Sha3_256};
use shake::{ExtendableOutput, Shake256, Update, XofReader};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::error::PacketError;

/// Length of ML-KEM-768's encapsulation key.
pub const MLKEM_PUBLIC_LEN: usize = 1184;
/// Length of ML-KEM-768's ciphertext.
pub const MLKEM_CIPHERTEXT_LEN: usize = 1088;
/// Length of an X-Wing public key: ML-KEM's key, then the X25519 point.
pub const PUBLIC_LEN: usize = MLKEM_PUBLIC_LEN + 32;
/// Length of an X-Wing ciphertext: ML-KEM's, then the ephemeral X25519 point.
pub const CIPHERTEXT_LEN: usize = MLKEM_CIPHERTEXT_LEN + 32;
/// Length of an X-Wing secret key (a seed).
pub const SECRET_LEN: usize = 32;

/// The combiner's label, `\.//^\`.
const LABEL: &[u8; 6] = b"\\.//^\\";

/// A hop's hybrid secret key: the seed and what it expands to. ML-KEM is
/// libcrux's formally verified implementation (several times faster than
/// the pure-Rust one the client's handshake uses, which matters on every
/// hop); both give the same keys, ciphertexts and secrets (the X-Wing
/// vectors hold for this one, the FIPS 203 vectors for the other).
pub struct HybridSecret {
    seed: Zeroizing<[u8; SECRET_LEN]>,
    mlkem: Box<MlKem768PrivateKey>,
    x25519: StaticSecret,
    public: HybridPublic,
}

impl Drop for HybridSecret {
    fn drop(&mut self) {
        // libcrux's key type does not zeroise itself.
        let mut bytes: [u8; 2400] = std::mem::take(&mut *self.mlkem).into();
        bytes.zeroize();
    }
}

impl std::fmt::Debug for HybridSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridSecret")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Clone for HybridSecret {
    fn clone(&self) -> Self {
        HybridSecret::from_seed(&self.seed)
    }
}

/// A hop's hybrid public key, as published.
#[derive(Clone)]
pub struct HybridPublic {
    x25519: PublicKey,
    bytes: Box<[u8; PUBLIC_LEN]>,
}

impl std::fmt::Debug for HybridPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HybridPublic({:02x}{:02x}{:02x}{:02x}..)",
            self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]
        )
    }
}

impl PartialEq for HybridPublic {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for HybridPublic {}

impl HybridSecret {
    /// A fresh key from `rng`.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; SECRET_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// The key a seed expands to (X-Wing's `expandDecapsulationKey`).
    pub fn from_seed(seed: &[u8; SECRET_LEN]) -> Self {
        let mut expanded = Zeroizing::new([0u8; 96]);
        let mut xof = Shake256::default();
        xof.update(seed);
        xof.finalize_xof().read(expanded.as_mut());
        let mut mlkem_seed = [0u8; 64];
        mlkem_seed.copy_from_slice(&expanded[..64]);
        let pair = mlkem768::generate_key_pair(mlkem_seed);
        mlkem_seed.zeroize();
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&expanded[64..]);
        let x25519 = StaticSecret::from(scalar);
        scalar.zeroize();
        let public = HybridPublic::from_parts(pair.public_key().as_slice(), (&x25519).into());
        let (private, _) = pair.into_parts();
        HybridSecret {
            seed: Zeroizing::new(*seed),
            mlkem: Box::new(private),
            x25519,
            public,
        }
    }

    /// The seed, for storage.
    pub fn seed(&self) -> &[u8; SECRET_LEN] {
        &self.seed
    }

    /// The public key to publish.
    pub fn public(&self) -> &HybridPublic {
        &self.public
    }

    /// The shared secret in `ciphertext`. Never fails: a ciphertext made for
    /// another key, or tampered with, yields an unrelated secret (ML-KEM's
    /// implicit rejection; the combiner hashes the X25519 point as sent), so
    /// the MAC over what it protects refuses it.
    pub fn decapsulate(&self, ciphertext: &[u8; CIPHERTEXT_LEN]) -> Zeroizing<[u8; 32]> {
        let mut ct_m = [0u8; MLKEM_CIPHERTEXT_LEN];
        ct_m.copy_from_slice(&ciphertext[..MLKEM_CIPHERTEXT_LEN]);
        let ss_m = Zeroizing::new(mlkem768::decapsulate(
            &self.mlkem,
            &MlKem768Ciphertext::from(ct_m),
        ));
        let mut point = [0u8; 32];
        point.copy_from_slice(&ciphertext[MLKEM_CIPHERTEXT_LEN..]);
        let ss_x = Zeroizing::new(
            self.x25519
                .diffie_hellman(&PublicKey::from(point))
                .to_bytes(),
        );
        combine(&ss_m, &ss_x, &point, self.public.x25519.as_bytes())
    }
}

impl HybridPublic {
    fn from_parts(mlkem: &[u8; MLKEM_PUBLIC_LEN], x25519: PublicKey) -> Self {
        let mut bytes = Box::new([0u8; PUBLIC_LEN]);
        bytes[..MLKEM_PUBLIC_LEN].copy_from_slice(mlkem);
        bytes[MLKEM_PUBLIC_LEN..].copy_from_slice(x25519.as_bytes());
        HybridPublic { x25519, bytes }
    }

    fn mlkem(&self) -> MlKem768PublicKey {
        let mut key = [0u8; MLKEM_PUBLIC_LEN];
        key.copy_from_slice(&self.bytes[..MLKEM_PUBLIC_LEN]);
        MlKem768PublicKey::from(key)
    }

    /// Strict decoding of a published key: exactly 1,216 bytes whose
    /// ML-KEM part passes FIPS 203's modulus check.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PacketError> {
        if bytes.len() != PUBLIC_LEN {
            return Err(PacketError::MalformedKey(format!(
                "hybrid public key is {} bytes, expected {PUBLIC_LEN}",
                bytes.len()
            )));
        }
        let mut mlkem = [0u8; MLKEM_PUBLIC_LEN];
        mlkem.copy_from_slice(&bytes[..MLKEM_PUBLIC_LEN]);
        if !mlkem768::validate_public_key(&MlKem768PublicKey::from(mlkem)) {
            return Err(PacketError::MalformedKey(
                "ML-KEM key fails the modulus check".into(),
            ));
        }
        let mut point = [0u8; 32];
        point.copy_from_slice(&bytes[MLKEM_PUBLIC_LEN..]);
        Ok(Self::from_parts(&mlkem, PublicKey::from(point)))
    }

    /// The published encoding.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_LEN] {
        &self.bytes
    }

    /// A fresh ciphertext and the shared secret it carries.
    pub fn encapsulate<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> ([u8; CIPHERTEXT_LEN], Zeroizing<[u8; 32]>) {
        let mut eseed = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(eseed.as_mut());
        self.encapsulate_derand(&eseed)
    }

    /// Encapsulation from 64 bytes of randomness (X-Wing's
    /// `EncapsulateDerand`): ML-KEM's message, then the ephemeral X25519
    /// scalar. For test vectors; [`HybridPublic::encapsulate`] draws them.
    pub fn encapsulate_derand(
        &self,
        eseed: &[u8; 64],
    ) -> ([u8; CIPHERTEXT_LEN], Zeroizing<[u8; 32]>) {
        let mut m = [0u8; 32];
        m.copy_from_slice(&eseed[..32]);
        let (ct_m, ss_m) = mlkem768::encapsulate(&self.mlkem(), m);
        m.zeroize();
        let ss_m = Zeroizing::new(ss_m);
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&eseed[32..]);
        let ephemeral = StaticSecret::from(scalar);
        scalar.zeroize();
        let point = PublicKey::from(&ephemeral);
        let ss_x = Zeroizing::new(ephemeral.diffie_hellman(&self.x25519).to_bytes());
        let mut ciphertext = [0u8; CIPHERTEXT_LEN];
        ciphertext[..MLKEM_CIPHERTEXT_LEN].copy_from_slice(ct_m.as_slice());
        ciphertext[MLKEM_CIPHERTEXT_LEN..].copy_from_slice(point.as_bytes());
        let ss = combine(&ss_m, &ss_x, point.as_bytes(), self.x25519.as_bytes());
        (ciphertext, ss)
    }
}

/// `SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ label)`.
fn combine(
    ss_m: &[u8; 32],
    ss_x: &[u8; 32],
    ct_x: &[u8; 32],
    pk_x: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    let mut h = <Sha3_256 as Digest>::new();
    for part in [&ss_m[..], ss_x, ct_x, pk_x, LABEL] {
        Digest::update(&mut h, part);
    }
    Zeroizing::new(h.finalize().into())
}
