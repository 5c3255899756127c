//! Dialling a node back before it is listed: a node whose published
//! addresses no one can reach would be listed, routed through, and lose
//! every packet sent its way. Before its first descriptor is taken, the
//! authority opens a TCP connection to each published address (at most
//! [`DIAL_TIMEOUT`] each) and refuses the descriptor, saying which address
//! failed and how, if none answers.
//!
//! Only a correctly signed descriptor from a node the admission policy
//! would take is dialled, so strangers cannot make an authority connect
//! anywhere; a node that answered is remembered (by identity and
//! addresses) and not dialled again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::admission::Admission;
use crate::descriptor::{SignedDescriptor, tcp_address};

/// How long one dial may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(3);

/// Nodes remembered as reachable at most; past it the memory starts over.
const REMEMBERED: usize = 4_096;

/// The nodes whose addresses answered, with the addresses that did.
#[derive(Default)]
pub struct Reached(Mutex<HashMap<[u8; 32], Vec<String>>>);

impl Reached {
    /// Checks that `descriptor` can be dialled, unless the same node with
    /// the same addresses was reached before. `Ok` also for descriptors
    /// that are not dialled (unsigned, or refused by `admission`): the
    /// state machine refuses those with their own reason.
    pub async fn check(
        &self,
        descriptor: &SignedDescriptor,
        admission: &Admission,
    ) -> Result<(), String> {
        let identity = descriptor.identity();
        if descriptor.verify().is_err() {
            return Ok(());
        }
        if let Admission::Allowlist { nodes } = admission
            && !nodes.contains(&identity)
        {
            return Ok(());
        }
        let addresses = &descriptor.body.addresses;
        if self.lock().get(&identity) == Some(addresses) {
            return Ok(());
        }
        dial_any(addresses).await?;
        let mut reached = self.lock();
        if reached.len() >= REMEMBERED {
            reached.clear();
        }
        reached.insert(identity, addresses.clone());
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Vec<String>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Connects to each address in turn; `Ok` at the first that answers, else
/// what went wrong with each.
pub async fn dial_any(addresses: &[String]) -> Result<(), String> {
    let mut failures = Vec::new();
    for address in addresses {
        let Some(socket) = tcp_address(address) else {
            failures.push(format!("{address}: not a TCP address"));
            continue;
        };
        match tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(socket)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error)) => failures.push(format!("{address}: {error}")),
            Err(_) => failures.push(format!(
                "{address}: no answer within {} s",
                DIAL_TIMEOUT.as_secs()
            )),
        }
    }
    Err(format!(
        "this authority could not connect to any published address ({}); \
         check public_addresses and the firewall",
        failures.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_that_answers_passes_and_a_closed_one_is_named() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = format!(
            "/ip4/127.0.0.1/tcp/{}",
            listener.local_addr().unwrap().port()
        );
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("/ip4/127.0.0.1/tcp/{}", l.local_addr().unwrap().port())
        };
        dial_any(&[closed.clone(), open]).await.unwrap();
        let error = dial_any(std::slice::from_ref(&closed)).await.unwrap_err();
        assert!(error.contains(&closed), "{error}");
        assert!(error.contains("refused"), "{error}");
        let error = dial_any(&["/ip4/127.0.0.1/udp/9".into()])
            .await
            .unwrap_err();
        assert!(error.contains("not a TCP address"), "{error}");
    }
}
