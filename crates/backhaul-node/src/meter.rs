//! The node's count of a session and its rules for receipts (`docs/node.md`, "Metering"): ask
//! every `receipt_every_bytes`, countersign only an amount the count supports and above the last
//! countersigned one, stop relaying beyond `max_unreceipted_bytes`.

use backhaul_protocol::UsageReceipt;

/// Why the node does not countersign a receipt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptRefusal {
    #[error("the receipt claims {claimed} bytes but the node counted {counted}")]
    AboveCount { claimed: u64, counted: u64 },
    #[error("the receipt's {claimed} bytes are not above the last countersigned {last}")]
    NotAboveLast { claimed: u64, last: u64 },
    #[error("sequence {got} is not above the last countersigned {last}")]
    Sequence { got: u64, last: u64 },
    #[error("the receipt names another session, node, client, buyer or epoch")]
    WrongSession,
    #[error(
        "the receipt's age of {got} s is not the session's ({expected} s, give or take {slack} s)"
    )]
    Age { got: u64, expected: u64, slack: u64 },
}

/// How far a receipt's session age may be from the node's clock, seconds.
pub const AGE_SLACK_SECS: u64 = 30;

/// One session's meter on the node.
#[derive(Clone, Debug)]
pub struct Meter {
    /// What every receipt of the session must carry (sequence, bytes and age aside).
    pub template: UsageReceipt,
    pub receipt_every_bytes: u64,
    pub max_unreceipted_bytes: u64,
    /// Bytes relayed both ways so far.
    counted: u64,
    /// The last countersigned amount and sequence.
    last_amount: u64,
    last_sequence: u64,
    /// The count at the last receipt request.
    asked_at: u64,
}

impl Meter {
    pub fn new(
        template: UsageReceipt,
        receipt_every_bytes: u64,
        max_unreceipted_bytes: u64,
    ) -> Self {
        Meter {
            template,
            receipt_every_bytes: receipt_every_bytes.max(1),
            max_unreceipted_bytes,
            counted: 0,
            last_amount: 0,
            last_sequence: 0,
            asked_at: 0,
        }
    }

    /// Adds `n` relayed bytes.
    pub fn add(&mut self, n: usize) {
        self.counted = self.counted.saturating_add(n as u64);
    }

    pub fn counted(&self) -> u64 {
        self.counted
    }

    /// The last countersigned amount.
    pub fn receipted(&self) -> u64 {
        self.last_amount
    }

    /// Bytes relayed beyond the last countersigned amount.
    pub fn unreceipted(&self) -> u64 {
        self.counted.saturating_sub(self.last_amount)
    }

    /// Whether the node must stop relaying until a receipt comes.
    pub fn over_bound(&self) -> bool {
        self.unreceipted() > self.max_unreceipted_bytes
    }

    /// Whether to ask for a receipt now (and marks it asked): every `receipt_every_bytes`.
    pub fn receipt_due(&mut self) -> bool {
        if self.counted.saturating_sub(self.asked_at) >= self.receipt_every_bytes {
            self.asked_at = self.counted;
            true
        } else {
            false
        }
    }

    /// Checks a receipt the client signed at `age_secs` into the session (by the node's clock)
    /// and, when the node can countersign it, records it as the last one.
    pub fn accept(&mut self, r: &UsageReceipt, age_secs: u64) -> Result<(), ReceiptRefusal> {
        let t = &self.template;
        if (r.epoch, r.session_id, r.node, r.client, r.buyer)
            != (t.epoch, t.session_id, t.node, t.client, t.buyer)
        {
            return Err(ReceiptRefusal::WrongSession);
        }
        // Any later sequence: a receipt the node could not countersign (one claiming bytes it
        // never relayed, say) leaves a gap, and the oracles count a session at its highest one.
        if r.sequence <= self.last_sequence {
            return Err(ReceiptRefusal::Sequence {
                got: r.sequence,
                last: self.last_sequence,
            });
        }
        if r.cumulative_bytes > self.counted {
            return Err(ReceiptRefusal::AboveCount {
                claimed: r.cumulative_bytes,
                counted: self.counted,
            });
        }
        if r.cumulative_bytes <= self.last_amount {
            return Err(ReceiptRefusal::NotAboveLast {
                claimed: r.cumulative_bytes,
                last: self.last_amount,
            });
        }
        if r.session_age_secs.abs_diff(age_secs) > AGE_SLACK_SECS {
            return Err(ReceiptRefusal::Age {
                got: r.session_age_secs,
                expected: age_secs,
                slack: AGE_SLACK_SECS,
            });
        }
        self.last_amount = r.cumulative_bytes;
        self.last_sequence = r.sequence;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> UsageReceipt {
        UsageReceipt {
            epoch: 1,
            session_id: [1; 16],
            node: [2; 32],
            client: [3; 32],
            buyer: [4; 32],
            sequence: 0,
            cumulative_bytes: 0,
            session_age_secs: 0,
        }
    }

    fn receipt(sequence: u64, bytes: u64, age: u64) -> UsageReceipt {
        UsageReceipt {
            sequence,
            cumulative_bytes: bytes,
            session_age_secs: age,
            ..template()
        }
    }

    #[test]
    fn the_node_asks_countersigns_what_it_counted_and_stops_at_the_bound() {
        let mut m = Meter::new(template(), 100, 250);
        m.add(99);
        assert!(!m.receipt_due());
        m.add(1);
        assert!(m.receipt_due());
        assert!(!m.receipt_due(), "asked once per step");
        // More than was relayed: refused.
        assert_eq!(
            m.accept(&receipt(1, 101, 0), 0),
            Err(ReceiptRefusal::AboveCount {
                claimed: 101,
                counted: 100
            })
        );
        // Bytes in flight: the client's count may be lower.
        assert_eq!(m.accept(&receipt(1, 90, 0), 0), Ok(()));
        assert_eq!(m.receipted(), 90);
        // Replayed or out of order.
        assert!(matches!(
            m.accept(&receipt(1, 95, 0), 0),
            Err(ReceiptRefusal::Sequence { .. })
        ));
        assert!(matches!(
            m.accept(&receipt(2, 90, 0), 0),
            Err(ReceiptRefusal::NotAboveLast { .. })
        ));
        // Another session's receipt.
        let mut other = receipt(2, 95, 0);
        other.session_id = [9; 16];
        assert_eq!(m.accept(&other, 0), Err(ReceiptRefusal::WrongSession));
        // A made-up age.
        assert!(matches!(
            m.accept(&receipt(2, 95, 1_000), 10),
            Err(ReceiptRefusal::Age { .. })
        ));
        // A client that stops signing: the bound is reached.
        m.add(240);
        assert_eq!(m.unreceipted(), 250);
        assert!(!m.over_bound());
        m.add(1);
        assert!(m.over_bound());
        assert_eq!(m.accept(&receipt(2, 341, 5), 5), Ok(()));
        assert!(!m.over_bound());
    }
}
