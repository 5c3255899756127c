//! The link frame: what travels on every connection between two nodes, and
//! between a client and its gateway.
//!
//! `version (1) ‖ Sphinx packet (geometry.packet_len())`.
//! Nothing in a frame says which key epoch its packet was built for: a hop
//! tries the keys its clock says can be live (see
//! [`crate::process::open_with_any`]), so packets built under the previous,
//! current and next consensus look alike on the wire. Every frame of a
//! network has exactly the same length.

use crate::constants::{FRAME_HEADER_LEN, FRAME_VERSION};
use crate::error::PacketError;
use crate::geometry::Geometry;

/// A decoded frame, borrowing the packet bytes from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
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
        Ok(Frame {
            packet: &bytes[FRAME_HEADER_LEN..],
        })
    }

    /// Encodes a frame; the packet must have the geometry's packet length.
    pub fn encode(geometry: &Geometry, packet: &[u8]) -> Result<Vec<u8>, PacketError> {
        if packet.len() != geometry.packet_len() {
            return Err(PacketError::FrameLength {
                expected: geometry.frame_len(),
                got: FRAME_HEADER_LEN + packet.len(),
            });
        }
        let mut out = Vec::with_capacity(geometry.frame_len());
        out.push(FRAME_VERSION);
        out.extend_from_slice(packet);
        Ok(out)
    }
}
