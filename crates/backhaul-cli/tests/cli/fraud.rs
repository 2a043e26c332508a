//! Two colluding oracles of three (threshold two) against `guardian watch`, with the real oracle
//! software and bonds set through governance. An honest epoch 0 pays two operators. In epoch 1
//! the colluders (whose keys the test holds, their own oracles stopped) vote a proposal whose
//! reward tree lowers an honest operator's cumulative reward and gives the difference to a
//! thief, its dataset published where the guardian looks (`--datasets-from` a folder). The
//! watcher proves the decrease within the challenge period: the epoch is refuted, the colluders'
//! bonds slashed, half to the guardian. The colluders' oracles come back (with bonds topped up)
//! and all three vote the honest dataset in the next round, which the watcher lets pass and
//! which finalizes: the honest operator claims its whole reward, the thief nothing.

use crate::common::*;
use backhaul_cli::context::signing_key;
use backhaul_cli::guardian::watch::{watch_until, Action, JudgeArgs, Outcome, WatchLog};
use backhaul_cli::operator;
use backhaul_client::{BuyerIdentity, ClientConfig, Fanout, NodeIdentity, OracleClient};
use backhaul_core::merkle::{sha256v, TreeKind};
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_oracle::chain::{Addresses, RpcChain};
use backhaul_oracle::{Oracle, Settings};
use backhaul_protocol::dataset::{b58, hex, key_from_b58, Dataset, RewardLeaf};
use backhaul_sdk::state::{Config, EpochRecord, EpochStatus, OracleBond};
use backhaul_sdk::{ix, Deployment};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The bond every oracle must hold to vote, set through governance: 1 SOL.
const BOND: u64 = 1_000_000_000;
const PRICE: u64 = 100_000;

/// Starts oracle `i` of `w` at `addr` over its data folder (the same across restarts), voting
/// with its key.
async fn start_oracle(w: &Deployed, i: usize, addr: SocketAddr) -> Oracle {
    let settings = Settings {
        listen: addr,
        data_dir: w.net.dir.path().join(format!("oracle-{i}")),
        rpc_url: w.net.url(),
        config: w.d.config.to_string(),
        keypair: Some(w.net.keypair_file(&format!("oracle-{i}"), &w.oracles[i])),
        price_credits_per_token: Some(PRICE),
        close_poll_secs: 1,
        submit_poll_secs: 1,
        ..Settings::default()
    };
    let chain = Arc::new(RpcChain {
        rpc: Arc::new(RpcClient::new_with_commitment(
            w.net.url(),
            CommitmentConfig::confirmed(),
        )),
        addresses: Addresses {
            program_id: backhaul::ID,
            config: w.d.config,
        },
    });
    Oracle::start(settings, chain)
        .await
        .unwrap_or_else(|e| panic!("oracle {i} starts: {e:#}"))
}

async fn record(w: &Deployed, e: u64) -> Option<EpochRecord> {
    w.net.account::<EpochRecord>(&w.d.epoch_record(e)).await
}

/// The watcher's decision on `epoch`'s round `round`.
async fn verdict(log: &WatchLog, epoch: u64, round: u32) -> Outcome {
    wait_for(
        &format!("the guardian's verdict on epoch {epoch} round {round}"),
        60,
        || async { log.of(epoch, round) },
    )
    .await
}

/// `oracle` bonds `amount` lamports.
async fn bond(w: &Deployed, oracle: &Keypair, amount: u64) {
    w.net
        .send(
            &[ix::deposit_bond(&w.d, &oracle.pubkey(), amount)],
            oracle,
            &[],
        )
        .await;
}

/// Epoch 1's reward tree with `victim`'s cumulative reward cut to a quarter and the rest given
/// to `thief`: the same total (so the same allocation), one leaf more, sorted and well-formed.
fn steal(honest: &Dataset, config: &Pubkey, victim: &Pubkey, thief: &Pubkey) -> Dataset {
    let mut fraud = honest.clone();
    let leaf = fraud
        .rewards
        .leaves
        .iter_mut()
        .find(|l| l.operator == victim.to_string())
        .expect("the victim's leaf");
    let taken = leaf.cumulative - leaf.cumulative / 4;
    leaf.cumulative -= taken;
    fraud.rewards.leaves.push(RewardLeaf {
        operator: b58(&thief.to_bytes()),
        cumulative: taken,
        amount: taken,
        bytes: 0,
    });
    fraud
        .rewards
        .leaves
        .sort_by_key(|l| key_from_b58(&l.operator).expect("key"));
    let entries = fraud
        .rewards
        .leaves
        .iter()
        .map(|l| Entry {
            account: key_from_b58(&l.operator).expect("key"),
            cumulative: l.cumulative,
        })
        .collect();
    let tree = EpochTree::build(TreeKind::Reward, &config.to_bytes(), 1, entries).expect("tree");
    assert_eq!(tree.total, honest.rewards.total, "the same total");
    fraud.rewards.root = hex(&tree.root);
    fraud.rewards.leaf_count = tree.leaf_count();
    fraud
}

/// Sends `ixs` paid by `payer`; the error when it does not land.
async fn try_send(
    net: &Net,
    ixs: &[solana_sdk::instruction::Instruction],
    payer: &Keypair,
) -> Result<(), String> {
    let blockhash = net.rpc.get_latest_blockhash().await.expect("blockhash");
    let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &[payer], blockhash);
    net.rpc
        .send_and_confirm_transaction(&tx)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_colluding_oracles_are_refuted_by_the_watcher_slashed_and_the_honest_round_finalizes() {
    let w = deploy(Net::start(true), START, 3 * EPOCH_SECS).await;
    let net = &w.net;
    let addrs: Vec<SocketAddr> = (0..3)
        .map(|_| {
            format!("127.0.0.1:{}", unused_port())
                .parse()
                .expect("addr")
        })
        .collect();
    let mut oracles = vec![];
    for (i, addr) in addrs.iter().enumerate() {
        oracles.push(Some(start_oracle(&w, i, *addr).await));
    }
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    wait_for("a posted price", 30, || async {
        net.account::<backhaul_sdk::state::PriceFeed>(&w.d.price_feed())
            .await
            .filter(|f| f.credits_per_token == PRICE)
    })
    .await;

    // Governance asks every oracle for a 1 SOL bond (queued now, applied after its delay).
    let admin = w.ctx(&w.admin, &[]);
    let queued = backhaul_cli::admin::queue_params(
        &admin,
        &backhaul_cli::admin::QueueParamsArgs {
            oracle_bond_lamports: Some(BOND),
            ..Default::default()
        },
    )
    .await
    .expect("queue the bond");
    let (change, executable_at) = (
        queued.change_id.expect("change id"),
        queued.executable_at.expect("executable at"),
    );

    // Epoch 0: a buyer's client is served by two operators' nodes.
    let buyer = net.funded().await;
    w.give_tokens(&buyer.pubkey(), 500 * TOKEN).await;
    net.send(
        &[ix::buy_credits(
            &w.d,
            &buyer.pubkey(),
            &w.d.ata(&buyer.pubkey()),
            100 * TOKEN,
            1,
            buyer.pubkey(),
            0,
        )],
        &buyer,
        &[],
    )
    .await;
    let proto = backhaul_cli::operator::protocol_deployment(&w.d);
    let fanout = Fanout::from_urls(&urls, ClientConfig::default()).expect("fanout");
    let operators: Vec<Keypair> = vec![net.funded().await, net.funded().await];
    let nodes: Vec<ed25519_dalek::SigningKey> = (0..2)
        .map(|_| ed25519_dalek::SigningKey::from_bytes(&rand::random()))
        .collect();
    let bindings: Vec<_> = nodes
        .iter()
        .zip(&operators)
        .map(|(n, o)| {
            NodeIdentity::new(proto, n.clone(), o.pubkey().to_bytes())
                .sign_binding(0, START, &signing_key(o))
                .expect("binding")
        })
        .collect();
    assert!(fanout.submit_bindings(&bindings).await.all_succeeded());
    let client = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let grant = BuyerIdentity::new(proto, signing_key(&buyer)).grant(
        client.verifying_key().to_bytes(),
        0,
        1,
        i64::MAX,
        0,
    );
    assert!(fanout.submit_grants(&[grant]).await.all_succeeded());
    let operator_keys: Vec<Pubkey> = operators.iter().map(|o| o.pubkey()).collect();
    serve_traffic(&w, &urls, &nodes, &operator_keys, &client, &buyer.pubkey()).await;

    // The guardian watches from the start, live, with the oracle that stays honest and the
    // folder the colluders publish to.
    let served = net.dir.path().join("served");
    std::fs::create_dir_all(&served).expect("folder");
    let log = WatchLog::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(watch_until(
        w.ctx(&w.guardian, &urls[2..]),
        JudgeArgs {
            datasets_from: vec![served.display().to_string()],
            ..JudgeArgs::default()
        },
        Duration::from_millis(500),
        log.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    // Epoch 0 closes honestly; the watcher lets it pass; it finalizes.
    net.warp_to(START + EPOCH_SECS as i64 + 1).await;
    let r0 = wait_for("quorum on epoch 0", 60, || async {
        record(&w, 0)
            .await
            .filter(|r| r.status == EpochStatus::Proposed)
    })
    .await;
    let v = verdict(&log, 0, 0).await;
    assert_eq!(v.action, Action::Passed, "{v:?}");
    assert!(v.checks >= 18 && v.failed.is_empty(), "{v:?}");
    net.warp_to((r0.finalizable_at + 1).max(executable_at))
        .await;
    wait_for("epoch 0 finalized", 60, || async {
        record(&w, 0)
            .await
            .filter(|r| r.status == EpochStatus::Finalized)
    })
    .await;
    let ds0 = Dataset::from_bytes(
        &OracleClient::new(&urls[2])
            .expect("client")
            .dataset(0)
            .await
            .expect("epoch 0's dataset"),
    )
    .expect("decodes");
    let victim = operators[1].pubkey();
    let earned = ds0
        .rewards
        .leaves
        .iter()
        .find(|l| l.operator == victim.to_string())
        .expect("the victim earned in epoch 0")
        .cumulative;
    assert!(earned > 0);

    // The bond applies; every oracle bonds.
    backhaul_cli::admin::apply(&admin, change)
        .await
        .expect("apply the bond");
    let c: Config = net.account(&w.d.config).await.expect("config");
    assert_eq!(c.oracle_bond_lamports, BOND);
    for o in &w.oracles {
        bond(&w, o, BOND).await;
    }

    // Epoch 1: the colluders' oracles are stopped (their operators vote by hand); the honest
    // oracle closes the epoch and votes alone.
    for slot in oracles.iter_mut().take(2) {
        if let Some(o) = slot.take() {
            o.stop().await;
        }
    }
    net.warp_to(START + 2 * EPOCH_SECS as i64 + 1).await;
    let honest_vote = wait_for("the honest oracle's vote on epoch 1", 60, || async {
        record(&w, 1)
            .await
            .filter(|r| r.votes.iter().any(|v| v.oracle == w.oracles[2].pubkey()))
    })
    .await;
    assert_eq!(honest_vote.status, EpochStatus::Voting);
    let honest_bytes = OracleClient::new(&urls[2])
        .expect("client")
        .dataset(1)
        .await
        .expect("epoch 1's dataset");
    let honest = Dataset::from_bytes(&honest_bytes).expect("decodes");

    // The colluders publish the theft and vote it: quorum.
    let thief = Keypair::new();
    let fraud = steal(&honest, &w.d.config, &victim, &thief.pubkey());
    let fraud_bytes = fraud.to_bytes();
    std::fs::write(served.join("epoch-1.json"), &fraud_bytes).expect("publish");
    let proposal = backhaul_oracle::submit::proposal_of(&fraud).expect("proposal");
    assert_eq!(proposal.dataset_hash, sha256v(&[&fraud_bytes]));
    let balances_before = (
        net.lamports(&w.guardian.pubkey()).await,
        net.lamports(&w.d.config).await,
    );
    w.vote(0, 1, proposal).await;
    w.vote(1, 1, proposal).await;
    let refuted = record(&w, 1).await.expect("record");
    assert_eq!(
        (refuted.status, refuted.proposal.dataset_hash),
        (EpochStatus::Proposed, proposal.dataset_hash)
    );
    let fraud_digest = refuted.proposal_digest;

    // The watcher proves the decrease within the challenge period.
    let v = verdict(&log, 1, 0).await;
    assert_eq!(
        (v.action, v.fraud.as_deref()),
        (Action::Proved, Some("decrease")),
        "{v:?}"
    );
    assert!(v.reason.contains(&victim.to_string()), "{v:?}");
    assert!(
        v.dataset_source
            .as_deref()
            .is_some_and(|s| s.ends_with("epoch-1.json")),
        "{v:?}"
    );
    let r = record(&w, 1).await.expect("record");
    assert_eq!(r.status, EpochStatus::Vetoed);
    assert!(r.is_refuted(&fraud_digest));
    assert_eq!(r.vetoes, 0, "a fraud proof uses no guardian veto");
    assert!(net.now().await < refuted.finalizable_at);

    // Both colluders lost their whole bond; half went to the guardian, half to the config.
    for o in &w.oracles[..2] {
        let b: OracleBond = net
            .account(&w.d.bond(&o.pubkey()))
            .await
            .expect("bond account");
        assert_eq!(b.slashed, BOND, "{}", o.pubkey());
    }
    let honest_bond: OracleBond = net
        .account(&w.d.bond(&w.oracles[2].pubkey()))
        .await
        .expect("bond");
    assert_eq!(honest_bond.slashed, 0);
    let (guardian_after, config_after) = (
        net.lamports(&w.guardian.pubkey()).await,
        net.lamports(&w.d.config).await,
    );
    assert_eq!(config_after - balances_before.1, BOND);
    let gained = guardian_after as i128 - balances_before.0 as i128;
    // The bounty, less the fees of its few transactions (the buffer's rent came back).
    assert!(
        gained <= BOND as i128 && gained > BOND as i128 - 100_000,
        "the guardian gained {gained}"
    );
    // The proof buffer is gone.
    let buffer = w.d.proof_buffer(
        &w.guardian.pubkey(),
        backhaul_cli::guardian::act::buffer_id(1, 0),
    );
    assert!(net
        .rpc
        .get_account_with_commitment(&buffer, CommitmentConfig::confirmed())
        .await
        .expect("rpc")
        .value
        .is_none());

    // The colluders' oracles come back, bonded again; all three vote the honest dataset in
    // the next round; the watcher lets it pass; it finalizes.
    for o in &w.oracles[..2] {
        bond(&w, o, BOND).await;
    }
    for (i, slot) in oracles.iter_mut().enumerate().take(2) {
        *slot = Some(start_oracle(&w, i, addrs[i]).await);
    }
    let honest_round = wait_for("quorum on epoch 1's honest proposal", 90, || async {
        record(&w, 1)
            .await
            .filter(|r| r.status == EpochStatus::Proposed && r.round == 1)
    })
    .await;
    assert_eq!(
        honest_round.proposal.dataset_hash,
        sha256v(&[&honest_bytes])
    );
    let v = verdict(&log, 1, 1).await;
    assert_eq!(v.action, Action::Passed, "{v:?}");
    net.warp_to(honest_round.finalizable_at + 1).await;
    wait_for("epoch 1 finalized", 60, || async {
        record(&w, 1)
            .await
            .filter(|r| r.status == EpochStatus::Finalized)
    })
    .await;
    let r = record(&w, 1).await.expect("record");
    assert!(r.votes.len() >= 2 && r.votes.iter().all(|v| v.digest == r.proposal_digest));

    // The honest operator claims all it earned; the thief has nothing to claim, and its leaf
    // of the refuted tree proves nothing against the finalized epoch.
    let claimed = operator::claim(&w.ctx(&operators[1], &urls), None)
        .await
        .expect("claim");
    assert_eq!(claimed.cumulative, earned);
    assert_eq!(net.token_balance(&w.d.ata(&victim)).await, earned);
    net.fund(&thief.pubkey()).await;
    assert!(operator::claim(&w.ctx(&thief, &urls), None).await.is_err());
    let stolen = fraud_tree_proof(&fraud, &w.d, &thief.pubkey());
    let ata = w.d.ata(&thief.pubkey());
    let refused = try_send(
        net,
        &[
            spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
                &thief.pubkey(),
                &thief.pubkey(),
                &w.d.mint,
                &spl_token_interface::ID,
            ),
            ix::claim(
                &w.d,
                &thief.pubkey(),
                1,
                &thief.pubkey(),
                &ata,
                stolen.leaf.amount,
                stolen.index,
                &stolen.siblings,
            ),
        ],
        &thief,
    )
    .await;
    assert!(refused.is_err(), "the thief's claim landed");
    assert_eq!(net.token_balance(&ata).await, 0);

    let _ = stop.send(());
    let _ = watcher.await;
    for o in oracles.into_iter().flatten() {
        o.stop().await;
    }
}

/// The thief's proof in the refuted (fraudulent) reward tree.
fn fraud_tree_proof(
    fraud: &Dataset,
    d: &Deployment,
    thief: &Pubkey,
) -> backhaul_core::sum_tree::OwnedProof {
    let entries = fraud
        .rewards
        .leaves
        .iter()
        .map(|l| Entry {
            account: key_from_b58(&l.operator).expect("key"),
            cumulative: l.cumulative,
        })
        .collect();
    EpochTree::build(TreeKind::Reward, &d.config.to_bytes(), 1, entries)
        .expect("tree")
        .proof_for(&thief.to_bytes())
        .expect("the thief's leaf")
}
