//! The n−1 fault: a private network namespace, and packet filter rules in
//! it that cut the links between one mix and its previous layer.
//!
//! An n−1 (blending) attacker holds back all of a mix's honest input and
//! lets only its own packets through. On the wire that is what this fault
//! does to the victim: every link between it and the layer before it stops
//! carrying anything, in both directions (an attacker on the path cannot
//! hold back one direction of a TCP connection without the other). The
//! attacker's own packets are left out: the victim's loops, which cross the
//! blocked links on their way home, are what its alarm watches.
//!
//! Filter rules need root and must not touch the machine's own network, so
//! the launcher re-runs itself in namespaces of its own first
//! (`aegis_testkit::netns::isolate`): the namespace, its loopback device and
//! its rules vanish when the launcher exits.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use aegis_testkit::NetworkPlan;
use aegis_testkit::netns::isolated;

use crate::nodes::{listen_port, name_of, node_url};
use crate::report::{self, NMinusOne};

/// Seconds the n−1 fault holds the victim's input back: long enough for
/// its alarm, short enough that the messages sent through it meanwhile are
/// delivered on retransmission within the run.
pub const N_MINUS_ONE_SECS: f64 = 30.0;

/// The n−1 fault under way: which links are cut since when, and what the
/// victim's alarm did.
pub struct Attack {
    report: NMinusOne,
    /// The victim's `/metrics`.
    metrics: String,
    cut_at: Instant,
    /// The victim's and its predecessors' listen ports, until restored.
    cut: Option<(u16, Vec<u16>)>,
}

impl Attack {
    /// Cuts the links of the first layer-2 mix of `document` from layer 1.
    pub fn start(
        document: aegis_directory::SignedConsensus,
        plan: &NetworkPlan,
    ) -> anyhow::Result<Attack> {
        let (victim, predecessors) = victim_and_predecessors(document)?;
        let victim_name = name_of(plan, &victim)?;
        let peers = predecessors
            .iter()
            .map(|p| listen_port(plan, &name_of(plan, p)?))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let victim_port = listen_port(plan, &victim_name)?;
        cut_links(victim_port, &peers)?;
        eprintln!(
            "fault: n-1: every link between {victim_name} and the {} layer-1 mixes cut",
            peers.len()
        );
        Ok(Attack {
            metrics: node_url(plan, &victim_name, aegis_directory::api::METRICS)?,
            report: NMinusOne {
                victim: victim_name,
                alarm_after_s: None,
                cut_for_s: N_MINUS_ONE_SECS,
            },
            cut_at: Instant::now(),
            cut: Some((victim_port, peers)),
        })
    }

    /// Lets go once the attack has lasted its time, and notes when the
    /// victim's alarm is first seen.
    pub async fn poll(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let since = self.cut_at.elapsed().as_secs_f64();
        if since >= N_MINUS_ONE_SECS
            && let Some((victim, peers)) = self.cut.take()
        {
            restore_links(victim, &peers)?;
            eprintln!("fault: n-1: links restored after {N_MINUS_ONE_SECS} s");
        }
        if self.report.alarm_after_s.is_none()
            && report::loop_alarms(http, std::slice::from_ref(&self.metrics)).await > 0
        {
            self.report.alarm_after_s = Some(since);
            eprintln!(
                "fault: n-1: {}'s loop alarm raised {since:.1} s after the cut",
                self.report.victim
            );
        }
        Ok(())
    }

    /// What the fault did, for the report.
    pub fn report(self) -> NMinusOne {
        self.report
    }
}

/// The victim of the n−1 fault in `document` (the first layer-2 mix) and
/// the mixes of the layer before it.
pub fn victim_and_predecessors(
    document: aegis_directory::SignedConsensus,
) -> anyhow::Result<(aegis_mix_packet::NodeId, Vec<aegis_mix_packet::NodeId>)> {
    let topology = aegis_proto::Topology::new(document);
    let victim = *topology.layers[1].first().context("no mix in layer 2")?;
    Ok((victim, topology.layers[0].clone()))
}

/// Cuts every link between the node listening on port `victim` and each
/// node listening on one of `peers`, both directions. Nodes dial from
/// their listening port (libp2p's port reuse), so a link between two nodes
/// is a TCP connection between their two listening ports, whichever dialled.
/// Only inside the private namespace.
pub fn cut_links(victim: u16, peers: &[u16]) -> anyhow::Result<()> {
    apply(cut_rules(victim, peers))
}

/// Undoes [`cut_links`]: the attacker lets the victim's input through
/// again.
pub fn restore_links(victim: u16, peers: &[u16]) -> anyhow::Result<()> {
    let rules = cut_rules(victim, peers)
        .into_iter()
        .map(|mut rule| {
            if let Some(op) = rule.iter_mut().find(|a| *a == "-A") {
                *op = "-D".to_owned();
            }
            rule
        })
        .collect();
    apply(rules)
}

fn apply(rules: Vec<Vec<String>>) -> anyhow::Result<()> {
    if !isolated() {
        bail!("refusing to change packet filter rules outside the launcher's own namespace");
    }
    for rule in rules {
        let status = Command::new("iptables")
            .args(&rule)
            .status()
            .context("running iptables")?;
        if !status.success() {
            bail!("iptables refused a rule ({status})");
        }
    }
    Ok(())
}

/// The `iptables` arguments [`cut_links`] runs.
fn cut_rules(victim: u16, peers: &[u16]) -> Vec<Vec<String>> {
    peers
        .iter()
        .flat_map(|&peer| [(peer, victim), (victim, peer)])
        .map(|(from, to)| {
            [
                "-w",
                "-A",
                "INPUT",
                "-p",
                "tcp",
                "--sport",
                &from.to_string(),
                "--dport",
                &to.to_string(),
                "-j",
                "DROP",
            ]
            .iter()
            .map(|a| a.to_string())
            .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_of_every_link_are_cut() {
        let rules = cut_rules(4000, &[4100, 4200]);
        let pairs: Vec<(String, String)> =
            rules.iter().map(|r| (r[6].clone(), r[8].clone())).collect();
        let expect = [(4100, 4000), (4000, 4100), (4200, 4000), (4000, 4200)];
        assert_eq!(
            pairs,
            expect
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        );
        assert!(rules.iter().all(|r| r.last().is_some_and(|a| a == "DROP")));
    }
}
