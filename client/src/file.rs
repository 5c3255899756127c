//! Files sent as messages: the file's name and media type travel sealed
//! with its bytes, in one message of content kind 4.
//!
//! ```text
//! file body = name length (1) ‖ name (UTF-8) ‖ type length (1) ‖ media type (ASCII) ‖ data
//! ```
//!
//! A name is what the sender's file was called, never a path: the decoder
//! refuses separators, control characters, `.` and `..`, so saving a
//! received file under its name cannot leave the folder the user chose.

use aegis_mix_packet::Geometry;
use serde::{Deserialize, Serialize};

use crate::card::CARD_STRING_LEN;
use crate::edge::EdgeError;
use crate::edge::pqxdh::InitialHeader;
use crate::edge::ratchet::MESSAGE_OVERHEAD_V2;
use crate::edge::spqr::Section;

/// Longest file name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest media type, in bytes.
pub const MAX_TYPE_LEN: usize = 127;
/// The media type of a file whose type is not known.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// What a file message says about its file, beside the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// The file's name (no path).
    pub name: String,
    /// Its media type, such as `application/pdf`.
    pub media_type: String,
}

impl FileMeta {
    /// Checked metadata: a usable name and a media type of the form
    /// `type/subtype` in visible ASCII.
    pub fn new(name: &str, media_type: &str) -> Result<FileMeta, EdgeError> {
        check_name(name)?;
        check_type(media_type)?;
        Ok(FileMeta {
            name: name.to_owned(),
            media_type: media_type.to_owned(),
        })
    }

    /// Metadata for a file called `name`, its type guessed from the
    /// extension when `media_type` is not given.
    pub fn for_name(name: &str, media_type: Option<&str>) -> Result<FileMeta, EdgeError> {
        let guessed = media_type.unwrap_or_else(|| guess_type(name));
        FileMeta::new(name, guessed)
    }

    /// `name length ‖ name ‖ type length ‖ type ‖ data`.
    pub fn encode_body(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.name.len() + self.media_type.len() + data.len());
        out.push(self.name.len() as u8);
        out.extend_from_slice(self.name.as_bytes());
        out.push(self.media_type.len() as u8);
        out.extend_from_slice(self.media_type.as_bytes());
        out.extend_from_slice(data);
        out
    }

    /// Splits a file body into its metadata and its bytes; strict.
    pub fn decode_body(body: &[u8]) -> Result<(FileMeta, &[u8]), EdgeError> {
        let malformed = EdgeError::Malformed("file");
        let (name, rest) = take_field(body).ok_or(malformed.clone())?;
        let (media_type, data) = take_field(rest).ok_or(malformed.clone())?;
        let name = std::str::from_utf8(name).map_err(|_| malformed.clone())?;
        let media_type = std::str::from_utf8(media_type).map_err(|_| malformed)?;
        Ok((FileMeta::new(name, media_type)?, data))
    }

    /// Bytes the metadata takes in a file body.
    pub fn encoded_len(&self) -> usize {
        2 + self.name.len() + self.media_type.len()
    }
}

fn take_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    (rest.len() >= usize::from(len)).then(|| rest.split_at(usize::from(len)))
}

fn check_name(name: &str) -> Result<(), EdgeError> {
    let bad = name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(EdgeError::Malformed("file name"));
    }
    Ok(())
}

fn check_type(media_type: &str) -> Result<(), EdgeError> {
    let visible = media_type.bytes().all(|b| b.is_ascii_graphic());
    let shaped = media_type
        .split_once('/')
        .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty());
    if media_type.len() > MAX_TYPE_LEN || !visible || !shaped {
        return Err(EdgeError::Malformed("media type"));
    }
    Ok(())
}

/// The media type usually meant by a file name's extension, or
/// [`OCTET_STREAM`].
pub fn guess_type(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "txt" | "text" | "md" => "text/plain",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "ogg" | "opus" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => OCTET_STREAM,
    }
}

/// The largest file one message can carry in `geometry` under `meta`'s
/// name and type: the geometry's largest message less the most a message
/// adds around its content (the handshake header while the contact has
/// not answered, the ratchet's header and tag, the content header and our
/// card).
pub fn max_file_len(geometry: &Geometry, meta: &FileMeta) -> usize {
    // Version 2's ratchet overhead (the larger): its header names the
    // post-quantum epoch, and its section takes at least a byte.
    let ratchet = MESSAGE_OVERHEAD_V2 + Section::len_with(0);
    let around = 1 + InitialHeader::LEN + ratchet + 3 + CARD_STRING_LEN;
    geometry
        .max_message_len()
        .saturating_sub(around + meta.encoded_len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_bodies_round_trip_and_refuse_paths_and_bad_types() {
        let meta = FileMeta::for_name("report.PDF", None).unwrap();
        assert_eq!(meta.media_type, "application/pdf");
        let body = meta.encode_body(b"%PDF-1.7");
        let (decoded, data) = FileMeta::decode_body(&body).unwrap();
        assert_eq!((decoded, data), (meta, &b"%PDF-1.7"[..]));
        for name in ["", ".", "..", "a/b", "..\\x", "a\nb", "\0"] {
            assert!(FileMeta::new(name, OCTET_STREAM).is_err(), "{name:?}");
        }
        assert!(FileMeta::new(&"x".repeat(MAX_NAME_LEN + 1), OCTET_STREAM).is_err());
        for media_type in ["", "text", "/plain", "text/", "text/ plain", "tëxt/plain"] {
            assert!(FileMeta::new("a", media_type).is_err(), "{media_type:?}");
        }
        assert_eq!(
            FileMeta::for_name("notes", None).unwrap().media_type,
            OCTET_STREAM
        );
        // Truncated at every length: refused, never a panic.
        for cut in 0..body.len().min(20) {
            let _ = FileMeta::decode_body(&body[..cut]);
        }
        assert!(FileMeta::decode_body(&[]).is_err());
        assert!(FileMeta::decode_body(&[5, b'a']).is_err());
        // A name that is a path, however it is spelt, is refused.
        let mut hostile = vec![9];
        hostile.extend_from_slice(b"../passwd");
        hostile.push(10);
        hostile.extend_from_slice(b"text/plain");
        assert!(FileMeta::decode_body(&hostile).is_err());
    }

    #[test]
    fn the_largest_file_is_about_a_thousand_full_fragments() {
        let g = Geometry::STANDARD;
        let meta = FileMeta::for_name("a.bin", None).unwrap();
        let max = max_file_len(&g, &meta);
        // The figures docs/protocol.md gives: 1,024 fragments of 1,533
        // bytes, less 3,589 around the content, less the file header.
        assert_eq!(g.max_message_len(), 1_569_792);
        assert_eq!(max, 1_569_792 - 3_589 - meta.encoded_len());
        assert_eq!(max, 1_566_172);
    }
}
