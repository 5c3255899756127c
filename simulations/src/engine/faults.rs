//! Faults as events ([`crate::faults`]): lossy links, and nodes that stop
//! and come back.

use super::*;

/// The faults' running state.
pub(super) struct Faults {
    pub(super) report: FaultReport,
    /// For each node, the outage it is in (none: up).
    down: Vec<Option<usize>>,
}

impl Sim<'_> {
    /// Schedules the scenario's outages, if it has faults.
    pub(super) fn start_faults(&mut self) {
        let f = &self.s.faults;
        if !f.enabled() {
            return;
        }
        let mut outages = Vec::new();
        for (i, o) in f.outages.iter().enumerate() {
            self.queue
                .schedule_far(secs(o.start_secs), Event::Fail(i as u32));
            if let Some(end) = o.end_secs {
                self.queue.schedule_far(secs(end), Event::Recover(i as u32));
            }
            outages.push(OutageReport {
                node: o.node_id(&self.topo) as u32,
                start_secs: o.start_secs,
                end_secs: o.end_secs,
                ..OutageReport::default()
            });
        }
        let links = i32::try_from(self.topo.route_len()).unwrap_or(i32::MAX);
        self.faults = Some(Faults {
            report: FaultReport {
                link_loss: f.link_loss,
                link_loss_closed_form: (1.0 - f.link_loss).powi(links),
                outages,
                ..FaultReport::default()
            },
            down: vec![None; self.topo.nodes()],
        });
    }

    /// Whether the link packet `id` is about to cross loses it; a lost
    /// packet is counted and released. Draws from the RNG only when links
    /// are lossy, so other runs keep their transcripts.
    pub(super) fn link_drops(&mut self, id: u32) -> bool {
        let p = self.s.faults.link_loss;
        if p <= 0.0 || self.rng.random::<f64>() >= p {
            return false;
        }
        if let Some(f) = &mut self.faults {
            f.report.lost_on_links += 1;
        }
        self.lose(id);
        true
    }

    /// Whether `node` is down; a packet reaching it then is lost.
    pub(super) fn down_drops(&mut self, node: usize, id: u32) -> bool {
        let Some(f) = &mut self.faults else {
            return false;
        };
        let Some(o) = f.down[node] else {
            return false;
        };
        f.report.lost_at_failed_nodes += 1;
        f.report.outages[o].arrived_while_down += 1;
        self.lose(id);
        true
    }

    /// Whether `node` is down.
    pub(super) fn is_down(&self, node: usize) -> bool {
        self.faults
            .as_ref()
            .is_some_and(|f| f.down.get(node).is_some_and(Option::is_some))
    }

    /// A packet lost to a fault: counted if real, and released.
    fn lose(&mut self, id: u32) {
        let real = matches!(
            self.packets.get(id as usize),
            Some(Some(Packet {
                kind: Kind::Real(_),
                ..
            }))
        );
        if let (true, Some(f)) = (real, &mut self.faults) {
            f.report.real_lost += 1;
        }
        self.release(id);
    }

    /// Outage `outage` starts: its node loses what it holds, and the
    /// observer, who sees the node go, forgets its pools.
    pub(super) fn fail(&mut self, outage: usize) {
        let Some(f) = &mut self.faults else {
            return;
        };
        let node = f.report.outages[outage].node as usize;
        f.down[node] = Some(outage);
        let mut held = Vec::new();
        let n = &mut self.nodes[node];
        n.mixer.drain(&mut held);
        n.due = None;
        n.pools = [None, None];
        if let Some(book) = self.lineage.as_mut() {
            book.clear(pool_id(node, Arrival::FromClient));
            book.clear(pool_id(node, Arrival::FromNode));
        }
        f.report.outages[outage].held_at_failure += held.len() as u64;
        f.report.lost_at_failed_nodes += held.len() as u64;
        for id in held {
            self.lose(id);
        }
    }

    /// Outage `outage` ends: the node forwards again, and a mix starts its
    /// loop bookkeeping afresh.
    pub(super) fn recover(&mut self, outage: usize) {
        let Some(f) = &mut self.faults else {
            return;
        };
        let node = f.report.outages[outage].node as usize;
        if f.down[node] == Some(outage) {
            f.down[node] = None;
        }
        if let Some(loops) = self.loops.get_mut(node).and_then(Option::as_mut) {
            *loops = MixLoops::new(self.loop_deadline);
        }
    }

    /// `mix` raised its loss alarm at `now`: the first alarm of another mix
    /// after an outage's start is that outage's detection.
    pub(super) fn note_alarm(&mut self, now: Duration, mix: usize) {
        let Some(f) = &mut self.faults else {
            return;
        };
        let t = now.as_secs_f64();
        for o in &mut f.report.outages {
            if o.node as usize != mix && t >= o.start_secs && o.first_alarm_after_secs.is_none() {
                o.first_alarm_after_secs = Some(t - o.start_secs);
            }
        }
    }

    /// The faults' report, with the delivery ratio.
    pub(super) fn fault_report(&self) -> Option<FaultReport> {
        let f = self.faults.as_ref()?;
        let mut r = f.report.clone();
        r.real_delivered = self.bw.real_delivered;
        let resolved = r.real_delivered + r.real_lost;
        r.delivery_ratio = if resolved > 0 {
            r.real_delivered as f64 / resolved as f64
        } else {
            1.0
        };
        Some(r)
    }
}
