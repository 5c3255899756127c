//! The client's side of the directory: fetching the consensus from the
//! pinned authorities (through the SOCKS5 proxy when one is set) and
//! following the authority list the documents carry.
//!
//! A document is accepted when a majority of the pinned authorities signed
//! it. It names the authorities a threshold of voters is configured with;
//! when that list differs from the pinned one the client pins it instead,
//! provided the same document also carries a majority of signatures under
//! the new list (so adopting it can never leave the client unable to verify
//! what it already holds). An authority added to the network reaches every
//! client this way, and one retired stops being asked, without a new `init`.

use std::time::Duration;

use aegis_directory::{Fetcher, SignedConsensus, TrustedAuthority};
use aegis_mix_packet::Geometry;
use aegis_proto::Topology;

use crate::api::ClientError;

/// A fetcher for pinned authorities.
pub fn fetcher_for(authorities: &[TrustedAuthority]) -> Result<Fetcher, ClientError> {
    fetcher_via(authorities, None)
}

/// A fetcher for pinned authorities that asks them through `proxy`, if
/// given, so they see the proxy's address (host names are resolved by the
/// proxy). Through Tor a request takes longer, hence the longer timeout.
pub fn fetcher_via(
    authorities: &[TrustedAuthority],
    proxy: Option<&aegis_link::Socks5Proxy>,
) -> Result<Fetcher, ClientError> {
    let timeout = Duration::from_secs(if proxy.is_some() { 30 } else { 5 });
    let fetcher = Fetcher::for_authorities(authorities, timeout)
        .map_err(|e| ClientError::Directory(e.to_string()))?;
    let Some(proxy) = proxy.cloned() else {
        return Ok(fetcher);
    };
    let dialer: aegis_directory::Dialer = std::sync::Arc::new(move |host: String, port: u16| {
        let proxy = proxy.clone();
        Box::pin(async move {
            use aegis_link::socks5::{Target, connect};
            let target = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => Target::Ip(std::net::SocketAddr::new(ip, port)),
                Err(_) => Target::Name(host, port),
            };
            connect(&proxy, &target)
                .await
                .map_err(std::io::Error::other)
        })
    });
    Ok(fetcher.with_dialer(dialer))
}

/// Fetches and verifies the current consensus document.
pub async fn current_document(fetcher: &Fetcher) -> Result<SignedConsensus, ClientError> {
    fetcher
        .fetch(None, crate::driver::unix_ms())
        .await
        .map_err(|e| ClientError::Directory(e.to_string()))
}

/// The network a verified document describes, in the packet geometry it
/// names.
pub fn topology_of(document: SignedConsensus) -> Result<Topology, ClientError> {
    let geometry = geometry_of(&document)?;
    Topology::for_geometry(document, &geometry).map_err(|e| ClientError::Directory(e.to_string()))
}

/// The packet geometry (and so the packet format) a verified document
/// names, if this build knows it.
pub fn geometry_of(document: &SignedConsensus) -> Result<Geometry, ClientError> {
    let published = document.body.parameters.geometry_hash;
    Geometry::by_hash(&published).ok_or_else(|| {
        let hash: String = published.iter().map(|b| format!("{b:02x}")).collect();
        ClientError::Directory(format!(
            "the network's packet geometry {hash} is not one this version knows; a newer one may"
        ))
    })
}

/// Fetches and verifies the current consensus.
pub async fn current_topology(fetcher: &Fetcher) -> Result<Topology, ClientError> {
    topology_of(current_document(fetcher).await?)
}

/// The authority list to pin after `document` (already verified against
/// `pinned`), if it is another one: the list the document names, when it
/// names any, differs from `pinned`, and carries a majority of signatures
/// by its own members.
pub fn authorities_after(
    pinned: &[TrustedAuthority],
    document: &SignedConsensus,
) -> Option<Vec<TrustedAuthority>> {
    let named = &document.body.authorities;
    if named.is_empty() || TrustedAuthority::same_list(pinned, named) {
        return None;
    }
    TrustedAuthority::verifier(named)
        .check_signatures(document)
        .ok()
        .map(|()| named.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_directory::{ConsensusBody, DocumentSignature, NetworkParameters};
    use ed25519_dalek::SigningKey;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    fn at(i: u8) -> TrustedAuthority {
        TrustedAuthority {
            url: format!("http://192.0.2.{i}:7900"),
            public_key: key(i).verifying_key().to_bytes(),
        }
    }

    /// A document naming `named`, signed by `signers`.
    fn document(named: &[u8], signers: &[u8]) -> SignedConsensus {
        let body = ConsensusBody {
            format: aegis_directory::constants::DOCUMENT_FORMAT_VERSION,
            epoch: 4,
            valid_after_ms: 1_000,
            valid_until_ms: 3_000,
            parameters: NetworkParameters::standard(1_000),
            layers: Default::default(),
            gateways: Vec::new(),
            previous: None,
            authorities: TrustedAuthority::canonical_list(named.iter().map(|&i| at(i))),
        };
        let mut doc = SignedConsensus {
            signatures: Vec::new(),
            body,
        };
        for &i in signers {
            let hash = doc.body.hash();
            doc.add_signature(DocumentSignature::create(&key(i), 4, hash));
        }
        doc
    }

    fn pinned(list: &[u8]) -> Vec<TrustedAuthority> {
        list.iter().map(|&i| at(i)).collect()
    }

    #[test]
    fn an_added_authority_is_pinned_from_a_document_the_old_list_signed() {
        let doc = document(&[1, 2, 3], &[1, 2, 3]);
        let old = pinned(&[1, 2]);
        assert_eq!(
            TrustedAuthority::verifier(&old).check_signatures(&doc),
            Ok(())
        );
        assert_eq!(
            authorities_after(&old, &doc),
            Some(TrustedAuthority::canonical_list(pinned(&[1, 2, 3])))
        );
        // Already pinned, in any order: nothing to change.
        assert_eq!(authorities_after(&pinned(&[3, 1, 2]), &doc), None);
    }

    #[test]
    fn a_moved_or_retired_authority_is_followed() {
        let mut moved = document(&[1, 2, 3], &[1, 2, 3]);
        moved.body.authorities[0].url = "http://198.51.100.1:7900".into();
        let hash = moved.body.hash();
        moved.signatures.clear();
        for i in [1, 2, 3] {
            moved.add_signature(DocumentSignature::create(&key(i), 4, hash));
        }
        let after = authorities_after(&pinned(&[1, 2, 3]), &moved).unwrap();
        assert!(after.iter().any(|a| a.url == "http://198.51.100.1:7900"));
        let retired = document(&[1, 2], &[1, 2]);
        assert_eq!(
            authorities_after(&pinned(&[1, 2, 3]), &retired),
            Some(TrustedAuthority::canonical_list(pinned(&[1, 2])))
        );
    }

    #[test]
    fn a_list_its_own_members_have_not_signed_is_not_pinned() {
        // Five named, two of them signed: under the new list the document
        // would not verify, so the client keeps what it has.
        let doc = document(&[1, 2, 3, 4, 5], &[1, 2]);
        assert_eq!(authorities_after(&pinned(&[1, 2]), &doc), None);
    }

    #[test]
    fn a_document_naming_no_authorities_changes_nothing() {
        let doc = document(&[], &[1, 2]);
        assert_eq!(authorities_after(&pinned(&[1, 2]), &doc), None);
    }
}
