//! Steps 1 and 2: the receipts of each session, streamed in (client, node, session) order, reduced to
//! the one at its top sequence; then who is paid and who pays, and whether the session counts.

use crate::error::CloseError;
use crate::inputs::{latest, CloseContext, Stored, StoredReceipt};
use crate::intern::{FastMap, Interner};
use backhaul_protocol::{ClientGrant, Key, NodeBinding};
use std::collections::BTreeMap;

/// Why a session did not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Skip {
    Equivocation,
    UnknownBinding,
    UnknownGrant,
    GrantExpired,
    RateExceeded,
    SelfDealing,
}

impl Skip {
    fn name(self) -> &'static str {
        match self {
            Skip::Equivocation => "equivocation",
            Skip::UnknownBinding => "unknown_binding",
            Skip::UnknownGrant => "unknown_grant",
            Skip::GrantExpired => "grant_expired",
            Skip::RateExceeded => "rate_exceeded",
            Skip::SelfDealing => "self_dealing",
        }
    }
}

/// What applies to a (buyer, client) pair: the grant's limit, or why nothing does.
#[derive(Clone, Copy)]
pub(crate) enum PairGrant {
    Valid { buyer: u32, limit: u64 },
    Expired,
    Missing,
}

/// One counting session, with interned ids (48 bytes, so that ten million fit in memory).
pub(crate) struct Counted {
    pub(crate) node: u32,
    pub(crate) client: u32,
    pub(crate) pair: u32,
    pub(crate) session: u128,
    pub(crate) bytes: u64,
}

/// The session being read: its identity, the receipt at its top sequence, and whether another
/// receipt at that sequence differs.
struct Current {
    client: Key,
    node: Key,
    session: [u8; 16],
    top: StoredReceipt,
    equivocated: bool,
}

/// The epoch's sessions, judged as their receipts stream in.
pub(crate) struct Sessions<'a> {
    ctx: &'a CloseContext<'a>,
    bindings_by_node: FastMap<Key, Vec<&'a Stored<NodeBinding>>>,
    grants_by_pair: FastMap<(Key, Key), Vec<&'a Stored<ClientGrant>>>,
    pairs: Interner,
    last_pair: Option<((Key, Key), u32)>,
    current: Option<Current>,
    judged: Judged,
    counted: Vec<Counted>,
}

/// What the sessions decided, besides the sessions that may count: every key met, by id.
#[derive(Default)]
pub(crate) struct Judged {
    pub(crate) nodes: Interner,
    /// The operator of each node (an id in `operators`), `None` without a binding.
    pub(crate) node_operator: Vec<Option<u32>>,
    pub(crate) operators: Interner,
    /// Clients of counting sessions.
    pub(crate) clients: Interner,
    pub(crate) buyers: Interner,
    /// What applies to each (buyer, client) pair met, by pair id.
    pub(crate) pair_grant: Vec<PairGrant>,
    /// Sessions that did not count, by reason.
    pub(crate) rejected: BTreeMap<String, u64>,
    /// Sessions seen.
    pub(crate) sessions: u64,
}

impl<'a> Sessions<'a> {
    pub(crate) fn new(ctx: &'a CloseContext<'a>) -> Self {
        let mut bindings_by_node: FastMap<Key, Vec<&Stored<NodeBinding>>> = FastMap::default();
        for b in ctx.bindings {
            bindings_by_node.entry(b.body.node).or_default().push(b);
        }
        let mut grants_by_pair: FastMap<(Key, Key), Vec<&Stored<ClientGrant>>> = FastMap::default();
        for g in ctx.grants {
            grants_by_pair
                .entry((g.body.buyer, g.body.client))
                .or_default()
                .push(g);
        }
        Sessions {
            ctx,
            bindings_by_node,
            grants_by_pair,
            pairs: Interner::default(),
            last_pair: None,
            current: None,
            judged: Judged::default(),
            counted: Vec::new(),
        }
    }

    /// Adds a stored receipt. Receipts must come in (client, node, session id) order: a session
    /// is one node serving one client, so a receipt naming another node (a key the client made
    /// up, say) is another session and never replaces the served one. Receipts of other epochs
    /// are ignored.
    pub(crate) fn push(&mut self, r: &StoredReceipt) -> Result<(), CloseError> {
        if r.receipt.epoch != self.ctx.epoch {
            return Ok(());
        }
        let (client, node, session) = (r.receipt.client, r.receipt.node, r.receipt.session_id);
        if let Some(cur) = &mut self.current {
            if cur.client == client && cur.node == node && cur.session == session {
                if r.receipt.sequence > cur.top.receipt.sequence {
                    cur.top = *r;
                    cur.equivocated = false;
                } else if r.receipt.sequence == cur.top.receipt.sequence
                    && r.body_hash != cur.top.body_hash
                {
                    cur.equivocated = true;
                }
                return Ok(());
            }
            if (cur.client, cur.node, cur.session) > (client, node, session) {
                return Err(CloseError::Unordered);
            }
        }
        if let Some(done) = self.current.take() {
            self.session(done);
        }
        self.current = Some(Current {
            client,
            node,
            session,
            top: *r,
            equivocated: false,
        });
        Ok(())
    }

    /// Judges the last session; returns what was decided and the sessions that may count.
    pub(crate) fn finish(mut self) -> (Judged, Vec<Counted>) {
        if let Some(done) = self.current.take() {
            self.session(done);
        }
        (self.judged, self.counted)
    }

    fn skip(&mut self, s: Skip) {
        *self
            .judged
            .rejected
            .entry(s.name().to_string())
            .or_default() += 1;
    }

    /// Judges one session from the receipt at its top sequence.
    fn session(&mut self, cur: Current) {
        self.judged.sessions += 1;
        if cur.equivocated {
            return self.skip(Skip::Equivocation);
        }
        let r = cur.top.receipt;
        let epoch = self.ctx.epoch;
        let j = &mut self.judged;
        let (node, new_node) = j.nodes.id(&r.node);
        if new_node {
            let operator = self
                .bindings_by_node
                .get(&r.node)
                .and_then(|v| latest(v.iter().copied(), epoch))
                // An expired binding is no binding (so that dropping expired ones from the
                // state never changes a close).
                .filter(|b| !b.expired_for(self.ctx.epoch_start))
                .map(|b| j.operators.id(&b.operator).0);
            j.node_operator.push(operator);
        }
        let pair_key = (r.buyer, r.client);
        let pair = match self.last_pair {
            Some((k, id)) if k == pair_key => id,
            _ => {
                let (id, new_pair) = self.pairs.id(&pair_hash(&pair_key));
                if new_pair {
                    let grant = self
                        .grants_by_pair
                        .get(&pair_key)
                        .and_then(|v| latest(v.iter().copied(), epoch))
                        .copied();
                    j.pair_grant.push(match grant {
                        None => PairGrant::Missing,
                        Some(g) if g.expires_at <= self.ctx.epoch_start => PairGrant::Expired,
                        Some(g) => PairGrant::Valid {
                            buyer: j.buyers.id(&g.buyer).0,
                            limit: g.credit_limit,
                        },
                    });
                }
                self.last_pair = Some((pair_key, id));
                id
            }
        };
        let Some(operator) = j.node_operator[node as usize] else {
            return self.skip(Skip::UnknownBinding);
        };
        let buyer = match j.pair_grant[pair as usize] {
            PairGrant::Missing => return self.skip(Skip::UnknownGrant),
            PairGrant::Expired => return self.skip(Skip::GrantExpired),
            PairGrant::Valid { buyer, .. } => buyer,
        };
        let epoch_secs = u64::try_from(self.ctx.epoch_end.saturating_sub(self.ctx.epoch_start))
            .unwrap_or(u64::MAX);
        if r.rate_bytes_per_sec(epoch_secs) > self.ctx.params.max_rate_bytes_per_sec {
            return self.skip(Skip::RateExceeded);
        }
        if j.operators.keys[operator as usize] == j.buyers.keys[buyer as usize] {
            return self.skip(Skip::SelfDealing);
        }
        let (client, _) = j.clients.id(&r.client);
        self.counted.push(Counted {
            node,
            client,
            pair,
            session: u128::from_be_bytes(r.session_id),
            bytes: r.cumulative_bytes,
        });
    }
}

/// One 32-byte key for a (buyer, client) pair, for interning.
fn pair_hash(pair: &(Key, Key)) -> Key {
    backhaul_core::merkle::sha256v(&[&pair.0, &pair.1])
}
