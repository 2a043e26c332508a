//! The errors commands return on purpose, typed so that callers (the demo, the audit, the
//! tests) can tell them apart with `anyhow::Error::downcast_ref::<CommandError>()`.

/// A command refused or failed for a reason it explains.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The JSON-RPC endpoint did not answer.
    #[error(
        "cannot reach the cluster at {url} ({detail}): check --url, or that the endpoint is \
         running"
    )]
    ClusterUnreachable { url: String, detail: String },

    /// The signer is not the account the instruction needs; nothing was sent.
    #[error("wrong keypair: {signer} is not the {role} of this deployment ({expected}); {hint}")]
    WrongKeypair {
        signer: String,
        role: String,
        expected: String,
        hint: String,
    },

    /// The operator has claimed everything its newest finalized proof pays.
    #[error(
        "nothing to claim: operator {operator} has already claimed {claimed} of the {cumulative} \
         its newest finalized proof (epoch {epoch}) pays; wait for the next epoch to be finalized"
    )]
    NothingToClaim {
        operator: String,
        epoch: u64,
        cumulative: String,
        claimed: String,
    },

    /// The buyer's newest finalized usage is already settled.
    #[error(
        "nothing to settle: buyer {buyer}'s usage up to epoch {epoch} ({cumulative} credits) is \
         already settled; wait for the next epoch to be finalized"
    )]
    NothingToSettle {
        buyer: String,
        epoch: u64,
        cumulative: u64,
    },

    /// The posted price is older than the deployment allows; nothing was sent.
    #[error(
        "the posted price is stale: it was posted {age_secs} s ago by the chain's clock, and this \
         deployment accepts prices at most {max_age_secs} s old (price_max_age_secs). Wait for \
         the oracles to post a fresh price and try again; nothing was sent"
    )]
    StalePrice { age_secs: i64, max_age_secs: u64 },

    /// The purchase would yield fewer credits than the buyer accepts; nothing was sent.
    #[error(
        "slippage bound not met: at the posted price of {price} credits per token, {tokens} \
         tokens buy {credits} credits, fewer than the {min_credits} you accept. Raise \
         --max-slippage-bps or lower --min-credits, or wait for the price; nothing was sent"
    )]
    Slippage {
        price: u64,
        tokens: String,
        credits: u64,
        min_credits: u64,
    },

    /// The deployment exists with other parameters than the file's; nothing was sent.
    #[error(
        "the deployment {config} is already initialized with different parameters: {}. Nothing \
         was changed; a live deployment changes through governance: `backhaul admin \
         queue-params` / `queue-oracles` / `queue-guardians`, then `backhaul admin apply <ID>` \
         once the governance delay has passed",
        .differences.join("; ")
    )]
    InitializedDifferently {
        config: String,
        differences: Vec<String>,
    },

    /// The program refused the transaction.
    #[error("the program refused the transaction: {name} (error {code}): {message}{}", hint_suffix(.hint))]
    Program {
        code: u32,
        name: String,
        message: String,
        hint: Option<String>,
    },

    /// The transaction failed outside the program's own checks.
    #[error("the transaction failed: {detail}{}", hint_suffix(.hint))]
    Transaction {
        detail: String,
        hint: Option<String>,
    },

    /// The deployment is paused; nothing was sent.
    #[error(
        "the deployment is paused: {what} is refused until {} (the pause expires then) or until \
         the admin runs `backhaul admin unpause`; nothing was sent",
        crate::output::format_ts(*.until)
    )]
    Paused { what: String, until: i64 },

    /// A queued governance change cannot be applied yet; nothing was sent.
    #[error(
        "change {id} is not executable yet: its governance delay ends at {} ({}). Wait until \
         then and run `backhaul admin apply {id}` again; nothing was sent",
        crate::output::format_ts(*.executable_at),
        crate::output::relative(*.executable_at, *.now)
    )]
    ChangeNotReady {
        id: u64,
        executable_at: i64,
        now: i64,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    match hint {
        Some(h) => format!(". {h}"),
        None => String::new(),
    }
}

/// The [`CommandError`] inside `e`, if it is one.
pub fn command_error(e: &anyhow::Error) -> Option<&CommandError> {
    e.downcast_ref::<CommandError>()
}
