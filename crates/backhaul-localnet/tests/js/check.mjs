// Unmodified @solana/web3.js 1.x and @coral-xyz/anchor 0.32 clients against backhaul-localnet:
// sendAndConfirmTransaction and Anchor's .rpc() (which confirm over the websocket, at the RPC port
// + 1 as web3.js derives it), Anchor's .simulate() (which parses the program's logs), and the
// websocket subscriptions web3.js offers.
//
//   cargo build -p backhaul-localnet && (cd crates/backhaul-localnet/tests/js && npm ci && npm test)
//
// BACKHAUL_LOCALNET_BIN overrides the binary (default: the workspace's target/debug one).

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import * as web3 from "@solana/web3.js";
import anchor from "@coral-xyz/anchor";

const here = dirname(fileURLToPath(import.meta.url));
const bin =
  process.env.BACKHAUL_LOCALNET_BIN ?? resolve(here, "../../../../target/debug/backhaul-localnet");
const idl = JSON.parse(
  readFileSync(resolve(here, "../../../../programs/backhaul/idl/backhaul.json"), "utf8"),
);
const TOKEN_PROGRAM = new web3.PublicKey("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA");
const WAIT_MS = 20_000;

function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Starts the binary on an ephemeral port; resolves with its printed URLs. */
function startLocalnet(faucetFile) {
  const child = spawn(
    bin,
    ["--listen", "127.0.0.1:0", "--write-faucet-keypair", faucetFile, "--unix-timestamp", "1700000000"],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "error" } },
  );
  const urls = new Promise((resolveUrls, reject) => {
    const found = {};
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`backhaul-localnet exited early (${code})`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const rpc = line.match(/^JSON RPC URL: (.*)$/);
      const ws = line.match(/^WebSocket PubSub URL: (.*)$/);
      if (rpc) found.rpc = rpc[1];
      if (ws) found.ws = ws[1];
      if (found.rpc && found.ws) resolveUrls(found);
    });
  });
  return { child, urls: within(urls, "the endpoint's URLs") };
}

function count(logs, line) {
  return logs.filter((l) => l === line).length;
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "backhaul-localnet-js-"));
  const faucetFile = join(dir, "faucet.json");
  const { child, urls } = startLocalnet(faucetFile);
  try {
    const { rpc, ws } = await urls;
    const port = (u) => Number(new URL(u).port);
    assert.equal(port(ws), port(rpc) + 1, "the websocket endpoint is on the RPC port + 1");
    const faucet = web3.Keypair.fromSecretKey(
      Uint8Array.from(JSON.parse(readFileSync(faucetFile, "utf8"))),
    );
    // No wsEndpoint: web3.js derives ws://host:port+1 itself.
    const conn = new web3.Connection(rpc, "confirmed");
    const programId = new web3.PublicKey(idl.address);

    // sendAndConfirmTransaction confirms through signatureSubscribe.
    const alice = web3.Keypair.generate();
    let slotSeen;
    const slotSub = conn.onSlotChange((info) => {
      slotSeen ??= info;
    });
    const aliceChanged = new Promise((res) => {
      conn.onAccountChange(alice.publicKey, (account, ctx) => res({ account, ctx }), "confirmed");
    });
    // Subscriptions are set up lazily; give them a round trip before the transfer lands.
    await new Promise((r) => setTimeout(r, 200));
    const transfer = new web3.Transaction().add(
      web3.SystemProgram.transfer({
        fromPubkey: faucet.publicKey,
        toPubkey: alice.publicKey,
        lamports: 2 * web3.LAMPORTS_PER_SOL,
      }),
    );
    const started = Date.now();
    const sig = await within(
      web3.sendAndConfirmTransaction(conn, transfer, [faucet], { commitment: "confirmed" }),
      "sendAndConfirmTransaction",
    );
    const confirmMs = Date.now() - started;
    const changed = await within(aliceChanged, "onAccountChange");
    assert.equal(changed.account.lamports, 2 * web3.LAMPORTS_PER_SOL);
    const status = await conn.getSignatureStatus(sig);
    assert.equal(status.value.err, null);
    assert.ok(slotSeen, "onSlotChange fired");
    assert.equal(slotSeen.parent + 1, slotSeen.slot);
    await conn.removeSlotChangeListener(slotSub);

    // Anchor: .rpc() (confirmation over the websocket) and .simulate() (log parsing).
    const provider = new anchor.AnchorProvider(conn, new anchor.Wallet(faucet), {
      commitment: "confirmed",
    });
    const program = new anchor.Program(idl, provider);
    const mint = web3.Keypair.generate();
    const pda = (seeds) => web3.PublicKey.findProgramAddressSync(seeds, programId)[0];
    const config = pda([Buffer.from("config"), mint.publicKey.toBuffer()]);
    // A mint whose authority is already the config PDA, no freeze authority.
    const initializeMint2 = new web3.TransactionInstruction({
      programId: TOKEN_PROGRAM,
      keys: [{ pubkey: mint.publicKey, isSigner: false, isWritable: true }],
      data: Buffer.concat([Buffer.from([20, 6]), config.toBuffer(), Buffer.from([0])]),
    });
    const mintTx = new web3.Transaction().add(
      web3.SystemProgram.createAccount({
        fromPubkey: faucet.publicKey,
        newAccountPubkey: mint.publicKey,
        lamports: await conn.getMinimumBalanceForRentExemption(82),
        space: 82,
        programId: TOKEN_PROGRAM,
      }),
      initializeMint2,
    );
    await within(
      web3.sendAndConfirmTransaction(conn, mintTx, [faucet, mint]),
      "the mint's transaction",
    );

    const admin = web3.Keypair.generate();
    const guardian = web3.Keypair.generate();
    const oracles = [0, 1, 2].map(() => web3.Keypair.generate().publicKey);
    const BN = anchor.BN;
    const eventAuthority = pda([Buffer.from("__event_authority")]);
    const programData = web3.PublicKey.findProgramAddressSync(
      [programId.toBuffer()],
      new web3.PublicKey("BPFLoaderUpgradeab1e11111111111111111111111"),
    )[0];
    const priceFeed = pda([Buffer.from("price"), config.toBuffer()]);
    const vault = pda([Buffer.from("vault"), config.toBuffer()]);
    const params = {
      admin: admin.publicKey,
      guardians: [guardian.publicKey],
      oracles,
      threshold: 2,
      genesisTs: new BN(1_700_000_000),
      epochLengthSecs: new BN(86_400),
      challengePeriodSecs: new BN(6 * 3_600),
      governanceDelaySecs: new BN(2 * 86_400),
      emission: {
        initialPerEpoch: new BN(1_000_000_000),
        decayBps: 5_000,
        decayPeriodEpochs: new BN(30),
        floorPerEpoch: new BN(10_000_000),
        lifetimeCap: new BN(50_000_000_000),
      },
      rateWindowSecs: new BN(86_400),
      rateCapacity: new BN(2_000_000_000),
      economics: {
        priceMaxAgeSecs: new BN(3_600),
        priceMaxChangeBps: 2_000,
        netEmissionsCap: new BN(100_000_000),
        burnSmoothingEpochs: new BN(7),
        usageCapBps: 10_000,
      },
      consensus: {
        creditsPerGib: new BN(50_000),
        pairCapBytes: new BN(100 * 2 ** 30),
        maxRateBytesPerSec: new BN(2 ** 30),
        graceSecs: new BN(300),
      },
    };
    await within(
      program.methods
        .initialize(params)
        .accountsStrict({
          initializer: faucet.publicKey,
          programData,
          config,
          mint: mint.publicKey,
          priceFeed,
          vault,
          tokenProgram: TOKEN_PROGRAM,
          systemProgram: web3.SystemProgram.programId,
          eventAuthority,
          program: programId,
        })
        .rpc(),
      "initialize .rpc()",
    );

    const pause = () =>
      program.methods
        .setPaused(true)
        .accountsStrict({ authority: admin.publicKey, config, eventAuthority, program: programId });
    // Simulated unsigned (sigVerify off), as wallets do: Anchor's .simulate() with .signers()
    // other than the fee payer re-signs without the wallet and fails signature verification on
    // any validator.
    const simulated = await within(pause().simulate(), "set_paused .simulate()");
    const logs = simulated.raw;
    assert.equal(count(logs, `Program ${programId} invoke [1]`), 1, logs.join("\n"));
    assert.equal(count(logs, `Program ${programId} invoke [2]`), 1, logs.join("\n"));
    assert.equal(count(logs, `Program ${programId} success`), 2, logs.join("\n"));
    assert.ok(Array.isArray(simulated.events));

    const programLogs = new Promise((res) => {
      conn.onLogs(programId, (l) => res(l), "confirmed");
    });
    const configChanged = new Promise((res) => {
      conn.onAccountChange(config, (account) => res(account), "confirmed");
    });
    await new Promise((r) => setTimeout(r, 200));
    const pauseSig = await within(pause().signers([admin]).rpc(), "set_paused .rpc()");
    const seenLogs = await within(programLogs, "onLogs");
    assert.equal(seenLogs.signature, pauseSig);
    assert.equal(seenLogs.err, null);
    assert.deepEqual(seenLogs.logs, logs);
    const configAccount = await within(configChanged, "onAccountChange (config)");
    assert.ok(configAccount.owner.equals(programId));
    const state = await program.account.config.fetch(config);
    // Paused for a day, and not again for a day after that.
    assert.ok(state.pausedUntil.toNumber() > 0, String(state.pausedUntil));
    assert.equal(state.pauseAvailableAt.sub(state.pausedUntil).toNumber(), 86_400);

    // The guardian may not unpause: the preflight failure carries the program's error. (An
    // AnchorError is only built from the program's "Program log: AnchorError …" lines, which a
    // host-built program prints to the endpoint's stdout instead; with the bytecode it is one.)
    const notAdmin = idl.errors.find((e) => e.name === "NotAdmin").code;
    await assert.rejects(
      program.methods
        .setPaused(false)
        .accountsStrict({ authority: guardian.publicKey, config, eventAuthority, program: programId })
        .signers([guardian])
        .rpc(),
      (err) => {
        const anchorCode = err.error?.errorCode?.number;
        if (anchorCode !== undefined) {
          assert.equal(anchorCode, notAdmin, String(err));
        } else {
          assert.match(String(err), new RegExp(`custom program error: 0x${notAdmin.toString(16)}`));
          assert.ok(
            err.logs.includes(
              `Program ${programId} failed: custom program error: 0x${notAdmin.toString(16)}`,
            ),
            err.logs.join("\n"),
          );
        }
        return true;
      },
    );
    console.log(
      `ok: sendAndConfirmTransaction confirmed in ${confirmMs} ms over ${ws}; Anchor .rpc(), ` +
        `.simulate() and web3.js subscriptions (slot, account, logs) work`,
    );
  } finally {
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
