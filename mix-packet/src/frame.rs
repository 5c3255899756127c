//! The link frame: what travels on every connection between two nodes, and
//! between a client and its gateway.
//!
//! `version (1) ‖ key epoch (8, big-endian) ‖ Sphinx packet (geometry.packet_len())`.
//! The epoch tells the receiving node which of its Sphinx keys to try, so at
//! an epoch boundary no packet fails for being keyed one epoch early or late.
//! Every frame of a network has exactly the same length.

use crate::constants::{FRAME_HEADER_LEN, FRAME_VERSION};
use crate::error::PacketError;
use crate::geometry::Geometry;

/// A decoded frame, borrowing the packet bytes from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The Sphinx key epoch the packet was built for.
    pub epoch: u64,
    /// The Sphinx packet.
    pub packet: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Strict decoding: exactly `geometry.frame_len()` bytes and a known version.
    pub fn decode(geometry: &Geometry, bytes: &'a [u8]) -> Result<Self, PacketError> {
        if bytes.len() != geometry.frame_len() {
            return Err(PacketError::FrameLength {
                expected: geometry.frame_len(),
                got: bytes.len(),
            });
        }
        if bytes[0] != FRAME_VERSION {
            return Err(PacketError::UnsupportedFrameVersion(bytes[0]));
        }
        let mut epoch = [0u8; 8];
        epoch.copy_from_slice(&bytes[1..FRAME_HEADER_LEN]);
        Ok(Frame {
            epoch: u64::from_be_bytes(epoch),
            packet: &bytes[FRAME_HEADER_LEN..],
        })
    }

    /// Encodes a frame; the packet must have the geometry's packet length.
    pub fn encode(geometry: &Geometry, epoch: u64, packet: &[u8]) -> Result<Vec<u8>, PacketError> {
        if packet.len() != geometry.packet_len() {
            return Err(PacketError::FrameLength {
                expected: geometry.frame_len(),
                got: FRAME_HEADER_LEN + packet.len(),
            });
        }
        let mut out = Vec::with_capacity(geometry.frame_len());
        out.push(FRAME_VERSION);
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(packet);
        Ok(out)
    }
}
