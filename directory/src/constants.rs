//! Every size, bound and domain-separation label of the directory protocol,
//! in one place.

/// Number of mix layers in the stratified topology (entry gateway, then
/// these layers, then exit gateway).
pub const MIX_LAYERS: usize = 3;

/// Number of Sphinx keys a descriptor announces: for its epoch `e` and for
/// `e + 1`, `e + 2`, so that senders can build packets ahead of rotation.
pub const SPHINX_KEYS_PER_DESCRIPTOR: usize = 3;

/// Most libp2p addresses one descriptor may list.
pub const MAX_ADDRESSES: usize = 8;
/// Longest libp2p address string, in bytes.
pub const MAX_ADDRESS_LEN: usize = 256;
/// Longest software version string, in bytes.
pub const MAX_VERSION_LEN: usize = 64;
/// Largest encoded signed descriptor accepted anywhere, in bytes: room for
/// three hybrid KEM keys (1,216 bytes each) beside everything else.
pub const MAX_DESCRIPTOR_BYTES: usize = 8 * 1024;

/// Most authorities a deployment may pin (bounds vote and signature sets).
pub const MAX_AUTHORITIES: usize = 64;
/// Most descriptors one vote or one document may carry.
pub const MAX_NODES: usize = 100_000;
/// Largest encoded vote or document accepted over HTTP, in bytes. Sized for
/// [`MAX_NODES`] descriptors of typical size, not of maximum size.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;
/// Largest encoded authority signature message, in bytes.
pub const MAX_SIGNATURE_BYTES: usize = 256;

/// Version of the consensus document format; bumped on any layout change.
/// Format 4: descriptors may carry hybrid KEM keys.
pub const DOCUMENT_FORMAT_VERSION: u16 = 4;

/// Domain label prepended to a descriptor body before the node signs it.
pub const DESCRIPTOR_DOMAIN: &[u8] = b"aegislink/directory/descriptor/v1\0";
/// Domain label prepended to a vote body before an authority signs it.
pub const VOTE_DOMAIN: &[u8] = b"aegislink/directory/vote/v1\0";
/// Domain label of the consensus document hash.
pub const DOCUMENT_HASH_DOMAIN: &[u8] = b"aegislink/directory/document/v1\0";
/// Domain label prepended to (epoch, document hash) before an authority
/// signs a document.
pub const DOCUMENT_SIGNATURE_DOMAIN: &[u8] = b"aegislink/directory/document-signature/v1\0";
/// Domain label prepended to (genesis, epoch length) before an authority
/// signs its clock.
pub const CLOCK_DOMAIN: &[u8] = b"aegislink/directory/clock/v1\0";
/// Domain label of the per-epoch node hash used for layer tie-breaking.
pub const LAYER_HASH_DOMAIN: &[u8] = b"aegislink/directory/layer/v1\0";

/// How many epochs of documents an authority keeps on disk and in memory.
pub const DOCUMENTS_KEPT: u64 = 48;
