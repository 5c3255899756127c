//! The epoch clock and the voting schedule inside each epoch.
//!
//! The document for epoch `e + 1` is produced during epoch `e`, at fixed
//! fractions of the epoch length P (Katzenpost's authority uses eighths of
//! the epoch too): descriptor uploads for `e + 1` close and votes go out at
//! 2P/8, authorities tally and exchange signatures at 4P/8, missing
//! signatures and documents are pulled from peers from 6P/8, and a round
//! without a threshold-signed document by 7P/8 is declared failed. Times are
//! Unix milliseconds passed in by the caller; nothing here reads a clock.

use serde::{Deserialize, Serialize};

/// A point of the voting round, in eighths of the epoch before the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    /// Descriptor uploads for the target close; each authority sends its vote.
    Vote,
    /// Votes are tallied; each authority signs its result and sends the
    /// signature.
    Sign,
    /// Authorities without a threshold-signed document pull signatures and
    /// documents from their peers.
    Publish,
    /// A round still without a document is declared failed.
    Deadline,
}

impl Phase {
    fn eighths(self) -> u64 {
        match self {
            Phase::Vote => 2,
            Phase::Sign => 4,
            Phase::Publish => 6,
            Phase::Deadline => 7,
        }
    }
}

/// Epoch numbering from a genesis time and a fixed epoch length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Unix milliseconds at which epoch 0 starts.
    pub genesis_ms: u64,
    /// Epoch length P in milliseconds.
    pub epoch_length_ms: u64,
}

impl Schedule {
    /// The epoch running at `now_ms` (0 before genesis).
    pub fn epoch_at(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.genesis_ms) / self.epoch_length_ms.max(1)
    }

    /// The epoch whose document is being produced at `now_ms`.
    pub fn target_at(&self, now_ms: u64) -> u64 {
        self.epoch_at(now_ms).saturating_add(1)
    }

    /// Unix milliseconds at which `epoch` starts.
    pub fn epoch_start(&self, epoch: u64) -> u64 {
        self.genesis_ms
            .saturating_add(epoch.saturating_mul(self.epoch_length_ms))
    }

    /// When `phase` of the round producing the document for `target` happens
    /// (inside epoch `target - 1`).
    pub fn phase_at(&self, target: u64, phase: Phase) -> u64 {
        let round_epoch_start = self.epoch_start(target.saturating_sub(1));
        round_epoch_start.saturating_add(self.epoch_length_ms / 8 * phase.eighths())
    }

    /// The key epochs a hop tries, in order, on a packet arriving at
    /// `now_ms` (packets do not say which epoch they were built for):
    /// the current epoch; the next one once its document can have been
    /// published (clients switch to a document as soon as they fetch it);
    /// and the previous one, whose document stays valid through the current
    /// epoch (a client that missed one round, or a packet still in flight).
    pub fn key_epochs_at(&self, now_ms: u64) -> Vec<u64> {
        let current = self.epoch_at(now_ms);
        let mut epochs = vec![current];
        if now_ms >= self.phase_at(current.saturating_add(1), Phase::Publish) {
            epochs.push(current.saturating_add(1));
        }
        if current > 0 {
            epochs.push(current - 1);
        }
        epochs
    }

    /// The validity window of the document for `epoch`: from its start until
    /// one epoch after its end, so a failed next round leaves a valid document.
    pub fn validity(&self, epoch: u64) -> (u64, u64) {
        (
            self.epoch_start(epoch),
            self.epoch_start(epoch.saturating_add(2)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_fall_inside_the_previous_epoch() {
        let s = Schedule {
            genesis_ms: 1_000,
            epoch_length_ms: 8_000,
        };
        assert_eq!(s.epoch_at(999), 0);
        assert_eq!(s.epoch_at(9_000), 1);
        assert_eq!(s.target_at(9_000), 2);
        assert_eq!(s.phase_at(2, Phase::Vote), 9_000 + 2_000);
        assert_eq!(s.phase_at(2, Phase::Deadline), 9_000 + 7_000);
        assert_eq!(s.validity(2), (17_000, 33_000));
    }

    #[test]
    fn the_next_key_is_tried_only_once_its_document_can_exist() {
        let s = Schedule {
            genesis_ms: 1_000,
            epoch_length_ms: 8_000,
        };
        // Epoch 1 runs 9,000..17,000; the document of epoch 2 is published
        // at 6/8 of it, 15,000.
        assert_eq!(s.key_epochs_at(9_000), vec![1, 0]);
        assert_eq!(s.key_epochs_at(14_999), vec![1, 0]);
        assert_eq!(s.key_epochs_at(15_000), vec![1, 2, 0]);
        assert_eq!(s.key_epochs_at(17_000), vec![2, 1]);
        assert_eq!(s.key_epochs_at(0), vec![0]);
    }
}
