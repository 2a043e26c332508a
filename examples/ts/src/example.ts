// Backhaul from TypeScript, with nothing but the standard Anchor client and the program's IDL:
// derives every address from the IDL's seeds, decodes every account type the IDL lists, buys
// credits for a buyer, claims an operator's finalized reward with a proof from an oracle (checked
// against the chain's root first), and reads the events each transaction emitted.
//
//   node dist/example.js --url http://127.0.0.1:8899 --mint <MINT> --oracle http://oracle:8080 \
//     --buyer buyer.json --operator operator.json [--tokens 1.5]
//
// Prints one JSON document on stdout (progress goes to stderr) and exits non-zero when a step
// fails or an expected event is missing. See README.md.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { AnchorProvider, BN, Program, Wallet, utils, type Idl } from "@coral-xyz/anchor";
import {
  Connection,
  Keypair,
  PublicKey,
  SYSVAR_CLOCK_PUBKEY,
  SystemProgram,
  TransactionInstruction,
  type ConfirmedTransactionMeta,
  type VersionedTransactionResponse,
} from "@solana/web3.js";

const TOKEN_PROGRAM = new PublicKey("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA");
const ASSOCIATED_TOKEN_PROGRAM = new PublicKey("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL");
/** The first 8 bytes of an `emit_cpi!` instruction: Anchor's `EVENT_IX_TAG`, little-endian. */
const EVENT_IX_TAG = Buffer.alloc(8);
EVENT_IX_TAG.writeBigUInt64LE(0x1d9acb512ea545e4n);
/** Domain tag of the reward tree's leaves (docs/merkle.md). */
const REWARD_TAG = Buffer.from("backhaul:reward:v2");
const DEFAULT_IDL = resolve(__dirname, "../../../programs/backhaul/idl/backhaul.json");

const USAGE = `usage: node dist/example.js --url <rpc url> --mint <mint> --oracle <url> [--oracle <url>…]
    --buyer <keypair.json> --operator <keypair.json>
    [--tokens <whole tokens, default 1>] [--max-slippage-bps <bps, default 100>]
    [--buyer-tokens <token account, default the buyer's associated one>]
    [--ws-url <websocket url, default the RPC port + 1>] [--idl <file>] [--program-id <key>]`;

class Failure extends Error {}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

function readKeypair(path: string, what: string): Keypair {
  let bytes: unknown;
  try {
    bytes = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Failure(`${what}: cannot read the keypair file ${path}: ${(e as Error).message}`);
  }
  if (!Array.isArray(bytes) || bytes.length !== 64) {
    throw new Failure(`${what}: ${path} is not a Solana CLI keypair file (64 numbers)`);
  }
  return Keypair.fromSecretKey(Uint8Array.from(bytes as number[]));
}

function publicKey(text: string, what: string): PublicKey {
  try {
    return new PublicKey(text);
  } catch {
    throw new Failure(`${what}: ${JSON.stringify(text)} is not a base58 public key`);
  }
}

/** `text` whole tokens ("12.5") in base units of a mint with `decimals`. */
function parseTokens(text: string, decimals: number): BN {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!m) throw new Failure(`--tokens: ${JSON.stringify(text)} is not a number of tokens`);
  const fraction = m[2] ?? "";
  if (fraction.length > decimals) {
    throw new Failure(`--tokens: ${text} has more than the mint's ${decimals} decimals`);
  }
  return new BN(m[1] + fraction.padEnd(decimals, "0"));
}

/** Decoded account data as plain JSON: integers as decimal strings, keys in base58, bytes in hex. */
function plain(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (BN.isBN(value)) return (value as BN).toString();
  if (value instanceof PublicKey) return value.toBase58();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
  if (Array.isArray(value)) {
    const bytes = value.length > 0 && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255);
    return bytes ? Buffer.from(value as number[]).toString("hex") : value.map(plain);
  }
  if (typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

type IdlInstruction = Idl["instructions"][number];
type IdlAccountItem = IdlInstruction["accounts"][number];
type IdlSeed =
  | { kind: "const"; value: number[] }
  | { kind: "account"; path: string }
  | { kind: "arg"; path: string };
type IdlPda = { seeds: IdlSeed[]; program?: IdlSeed };

/**
 * The address of account `account` of instruction `instruction`, from the seeds the IDL gives
 * it: constants, other accounts of the instruction (`accounts`) and the instruction's arguments
 * (`args`, serialized as their IDL type).
 */
function pdaFromIdl(
  program: Program,
  instruction: string,
  account: string,
  accounts: Record<string, PublicKey>,
  args: Record<string, unknown>,
): PublicKey {
  const ix = program.idl.instructions.find((i) => i.name === instruction);
  if (!ix) throw new Failure(`the IDL has no instruction ${instruction}`);
  const item = ix.accounts.find((a: IdlAccountItem) => a.name === account) as
    | { name: string; pda?: IdlPda }
    | undefined;
  if (!item?.pda) throw new Failure(`the IDL gives no seeds for ${instruction}.${account}`);
  const seedBytes = (seed: IdlSeed): Buffer => {
    switch (seed.kind) {
      case "const":
        return Buffer.from(seed.value);
      case "account": {
        const key = accounts[seed.path];
        if (!key) throw new Failure(`seed of ${instruction}.${account}: no account ${seed.path}`);
        return key.toBuffer();
      }
      case "arg": {
        const arg = ix.args.find((a) => a.name === seed.path);
        if (!arg) throw new Failure(`seed of ${instruction}.${account}: no argument ${seed.path}`);
        const value = args[seed.path];
        if (arg.type === "pubkey") return (value as PublicKey).toBuffer();
        if (arg.type === "u64") return (value as BN).toArrayLike(Buffer, "le", 8);
        throw new Failure(
          `seed of ${instruction}.${account}: argument type ${JSON.stringify(arg.type)}`,
        );
      }
    }
  };
  const programId = item.pda.program
    ? new PublicKey(seedBytes(item.pda.program))
    : program.programId;
  return PublicKey.findProgramAddressSync(item.pda.seeds.map(seedBytes), programId)[0];
}

function ata(owner: PublicKey, mint: PublicKey): PublicKey {
  return PublicKey.findProgramAddressSync(
    [owner.toBuffer(), TOKEN_PROGRAM.toBuffer(), mint.toBuffer()],
    ASSOCIATED_TOKEN_PROGRAM,
  )[0];
}

/** The associated token program's `CreateIdempotent`: a no-op when the account exists. */
function createAtaIdempotent(
  payer: PublicKey,
  owner: PublicKey,
  mint: PublicKey,
): TransactionInstruction {
  return new TransactionInstruction({
    programId: ASSOCIATED_TOKEN_PROGRAM,
    keys: [
      { pubkey: payer, isSigner: true, isWritable: true },
      { pubkey: ata(owner, mint), isSigner: false, isWritable: true },
      { pubkey: owner, isSigner: false, isWritable: false },
      { pubkey: mint, isSigner: false, isWritable: false },
      { pubkey: SystemProgram.programId, isSigner: false, isWritable: false },
      { pubkey: TOKEN_PROGRAM, isSigner: false, isWritable: false },
    ],
    data: Buffer.from([1]),
  });
}

/** The chain's clock (unix seconds), from the Clock sysvar. */
async function chainTime(connection: Connection): Promise<number> {
  const clock = await connection.getAccountInfo(SYSVAR_CLOCK_PUBKEY, "confirmed");
  if (!clock) throw new Failure("the cluster serves no Clock sysvar");
  // slot u64, epoch_start_timestamp i64, epoch u64, leader_schedule_epoch u64, unix_timestamp i64
  return Number(clock.data.readBigInt64LE(32));
}

/** The epoch a unix time falls in, as the program computes it (0 before genesis). */
function epochAt(config: { genesisTs: BN; epochLengthSecs: BN }, now: number): BN {
  const elapsed = new BN(now).sub(config.genesisTs);
  if (elapsed.isNeg() || config.epochLengthSecs.isZero()) return new BN(0);
  return elapsed.div(config.epochLengthSecs);
}

type DecodedEvent = { name: string; data: unknown };

/**
 * The program's events in a confirmed transaction: its `emit_cpi!` self-invocations (inner
 * instructions of the program, signed by its event authority), whose data is the event-CPI tag,
 * then the event's discriminator and borsh body.
 */
async function transactionEvents(
  program: Program,
  eventAuthority: PublicKey,
  signature: string,
): Promise<DecodedEvent[]> {
  let tx: VersionedTransactionResponse | null = null;
  for (let i = 0; i < 20 && !tx; i++) {
    tx = await program.provider.connection.getTransaction(signature, {
      commitment: "confirmed",
      maxSupportedTransactionVersion: 0,
    });
    if (!tx) await new Promise((r) => setTimeout(r, 250));
  }
  if (!tx) throw new Failure(`getTransaction found no transaction ${signature}`);
  const meta: ConfirmedTransactionMeta | null = tx.meta;
  if (!meta) throw new Failure(`transaction ${signature} has no status meta`);
  if (meta.err) throw new Failure(`transaction ${signature} failed: ${JSON.stringify(meta.err)}`);
  if (!meta.innerInstructions) {
    throw new Failure(`the cluster returned no inner instructions for ${signature}`);
  }
  const keys = tx.transaction.message.getAccountKeys({
    accountKeysFromLookups: meta.loadedAddresses,
  });
  const events: DecodedEvent[] = [];
  for (const group of meta.innerInstructions) {
    for (const ix of group.instructions) {
      if (!keys.get(ix.programIdIndex)?.equals(program.programId)) continue;
      const data = Buffer.from(utils.bytes.bs58.decode(ix.data));
      if (!data.subarray(0, 8).equals(EVENT_IX_TAG)) continue;
      const authority = keys.get(ix.accounts[0]);
      if (!authority?.equals(eventAuthority)) continue;
      const event = program.coder.events.decode(data.subarray(8).toString("base64"));
      if (!event) throw new Failure(`an event in ${signature} does not decode with the IDL`);
      events.push({ name: event.name, data: plain(event.data) });
    }
  }
  return events;
}

function expectEvent(events: DecodedEvent[], name: string, what: string): Record<string, unknown> {
  const found = events.find((e) => e.name === name);
  if (!found) {
    throw new Failure(
      `${what}: no ${name} event in the transaction (events: ${events.map((e) => e.name).join(", ") || "none"})`,
    );
  }
  return found.data as Record<string, unknown>;
}

/** A node of a Merkle-sum tree (docs/merkle.md): its hash and the sum of the amounts below it. */
type SumNode = { hash: Buffer; sum: bigint };

const U64_MAX = (1n << 64n) - 1n;
const sha = (...parts: Buffer[]) => createHash("sha256").update(Buffer.concat(parts)).digest();
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
};
const EMPTY_NODE: SumNode = { hash: sha(Buffer.from([4])), sum: 0n };

/** The reward-tree leaf of `(config, epoch, operator, cumulative)`. */
function rewardLeaf(config: PublicKey, epoch: BN, operator: PublicKey, cumulative: BN): SumNode {
  const inner = sha(
    REWARD_TAG,
    config.toBuffer(),
    epoch.toArrayLike(Buffer, "le", 8),
    operator.toBuffer(),
    cumulative.toArrayLike(Buffer, "le", 8),
  );
  return { hash: sha(Buffer.from([2]), inner), sum: BigInt(cumulative.toString()) };
}

/** The parent of `left` and `right`, or null if the sum overflows a u64. */
function parent(left: SumNode, right: SumNode): SumNode | null {
  const sum = left.sum + right.sum;
  if (sum > U64_MAX) return null;
  return { hash: sha(Buffer.from([3]), left.hash, u64(left.sum), right.hash, u64(right.sum)), sum };
}

/**
 * Whether `leaf` at `index`, with `siblings` from the leaf level up, is in the tree whose root,
 * declared total and leaf count the chain holds (docs/merkle.md, "Proofs").
 */
function verifyProof(
  leaf: SumNode,
  index: bigint,
  siblings: SumNode[],
  root: Buffer,
  total: bigint,
  leafCount: bigint,
): boolean {
  if (index >= leafCount || leafCount > 1n << 32n) return false;
  let depth = 0;
  while (1n << BigInt(depth) < leafCount) depth += 1;
  if (siblings.length !== depth) return false;
  let node: SumNode | null = leaf;
  let position = index;
  let width = leafCount;
  for (const sibling of siblings) {
    if (position % 2n === 1n) node = parent(sibling, node);
    else if (position + 1n === width) {
      if (!sibling.hash.equals(EMPTY_NODE.hash) || sibling.sum !== 0n) return false;
      node = parent(node, EMPTY_NODE);
    } else node = parent(node, sibling);
    if (!node) return false;
    position /= 2n;
    width = (width + 1n) / 2n;
  }
  return (
    node.sum === total &&
    sha(Buffer.from([5]), REWARD_TAG, node.hash, u64(total), u64(leafCount)).equals(root)
  );
}

type Proof = { oracle: string; epoch: BN; cumulative: BN; index: bigint; proof: SumNode[] };

/** The operator's leaf and proof from one oracle (`GET /v1/proofs/operator/{key}`), or why not. */
async function oracleProof(oracle: string, operator: PublicKey): Promise<Proof | string> {
  const url = `${oracle.replace(/\/+$/, "")}/v1/proofs/operator/${operator.toBase58()}`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    return `${oracle}: ${(e as Error).message}`;
  }
  if (response.status === 404) return `${oracle}: no reward leaf for ${operator.toBase58()}`;
  if (!response.ok) return `${oracle}: HTTP ${response.status}`;
  const text = await response.text();
  let body: { account?: unknown; proof?: unknown };
  try {
    // The siblings' u64 sums, as strings, so that none loses precision.
    body = JSON.parse(text.replace(/("sum"\s*:\s*)(\d+)/g, '$1"$2"'));
  } catch {
    return `${oracle}: the answer is not JSON`;
  }
  // u64 amounts can exceed what a JavaScript number holds exactly: read them from the text.
  const integer = (field: string) => new RegExp(`"${field}"\\s*:\\s*(\\d+)`).exec(text)?.[1];
  const epoch = integer("epoch");
  const cumulative = integer("cumulative");
  const index = integer("index");
  if (
    body.account !== operator.toBase58() ||
    !epoch ||
    !cumulative ||
    !index ||
    !Array.isArray(body.proof)
  ) {
    return `${oracle}: the answer is not a proof for ${operator.toBase58()}`;
  }
  const proof = (body.proof as { hash?: unknown; sum?: unknown }[]).map((s) =>
    typeof s?.hash === "string" &&
    /^[0-9a-fA-F]{64}$/.test(s.hash) &&
    typeof s.sum === "string" &&
    BigInt(s.sum) <= U64_MAX
      ? { hash: Buffer.from(s.hash, "hex"), sum: BigInt(s.sum) }
      : null,
  );
  if (proof.some((s) => s === null)) {
    return `${oracle}: a proof sibling is not 32 bytes of hex and a u64 sum`;
  }
  return {
    oracle,
    epoch: new BN(epoch),
    cumulative: new BN(cumulative),
    index: BigInt(index),
    proof: proof as SumNode[],
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      "ws-url": { type: "string" },
      mint: { type: "string" },
      oracle: { type: "string", multiple: true },
      buyer: { type: "string" },
      "buyer-tokens": { type: "string" },
      operator: { type: "string" },
      tokens: { type: "string", default: "1" },
      "max-slippage-bps": { type: "string", default: "100" },
      idl: { type: "string", default: DEFAULT_IDL },
      "program-id": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    log(USAGE);
    return;
  }
  for (const required of ["url", "mint", "buyer", "operator"] as const) {
    if (!values[required]) throw new Failure(`--${required} is required\n${USAGE}`);
  }
  const oracles = values.oracle ?? [];
  if (oracles.length === 0) throw new Failure(`--oracle is required\n${USAGE}`);
  const slippageBps = Number(values["max-slippage-bps"]);
  if (!Number.isInteger(slippageBps) || slippageBps < 0 || slippageBps > 10_000) {
    throw new Failure("--max-slippage-bps must be an integer from 0 to 10000");
  }

  const idl = JSON.parse(readFileSync(values.idl!, "utf8")) as Idl;
  if (values["program-id"])
    idl.address = publicKey(values["program-id"], "--program-id").toBase58();
  const mint = publicKey(values.mint!, "--mint");
  const buyer = readKeypair(values.buyer!, "--buyer");
  const operator = readKeypair(values.operator!, "--operator");
  const connection = new Connection(values.url!, {
    commitment: "confirmed",
    wsEndpoint: values["ws-url"],
  });
  // One client per signer: .rpc() signs with the provider's wallet and confirms over the websocket.
  const providerFor = (k: Keypair) =>
    new AnchorProvider(connection, new Wallet(k), { commitment: "confirmed" });
  const asBuyer = new Program(idl, providerFor(buyer));
  const asOperator = new Program(idl, providerFor(operator));
  const program = asBuyer;
  const programId = program.programId;
  const fetchers = program.account as unknown as Record<
    string,
    {
      fetch(a: PublicKey): Promise<any>;
      fetchNullable(a: PublicKey): Promise<any>;
      all(filters: unknown[]): Promise<{ publicKey: PublicKey; account: any }[]>;
    }
  >;

  // Every address from the IDL's seeds.
  const config = pdaFromIdl(program, "initialize", "config", { mint }, {});
  const eventAuthority = pdaFromIdl(program, "buyCredits", "eventAuthority", {}, {});
  const priceFeed = pdaFromIdl(program, "buyCredits", "priceFeed", { config }, {});
  const vault = pdaFromIdl(program, "claim", "vault", { config }, {});
  const creditAccount = pdaFromIdl(
    program,
    "buyCredits",
    "creditAccount",
    { config },
    {
      beneficiary: buyer.publicKey,
    },
  );
  const operatorClaim = pdaFromIdl(
    program,
    "claim",
    "operatorClaim",
    {
      config,
      operator: operator.publicKey,
    },
    {},
  );

  const configState = await fetchers.config.fetchNullable(config);
  if (!configState) {
    throw new Failure(
      `no Backhaul deployment for mint ${mint.toBase58()} (config ${config.toBase58()}) on ${values.url}`,
    );
  }
  if (!configState.mint.equals(mint))
    throw new Failure(`config ${config.toBase58()} names another mint`);
  if (!configState.priceFeed.equals(priceFeed) || !configState.vault.equals(vault)) {
    throw new Failure("the config's price feed or vault differ from the IDL's seeds");
  }
  if (configState.pausedUntil.toNumber() > (await chainTime(connection))) {
    throw new Failure(
      `the deployment is paused until ${new Date(configState.pausedUntil.toNumber() * 1000).toISOString()}: nothing was sent`,
    );
  }
  const decimals: number = configState.decimals;
  const creditsBefore = await fetchers.creditAccount.fetchNullable(creditAccount);
  const claimBefore = await fetchers.operatorClaim.fetchNullable(operatorClaim);
  log(`deployment ${config.toBase58()} (program ${programId.toBase58()}), ${decimals} decimals`);

  // The operator's newest finalized reward whose proof verifies against the chain's root,
  // found before anything is sent.
  const claimed: BN = claimBefore ? claimBefore.claimed : new BN(0);
  const reasons: string[] = [];
  let chosen: { proof: Proof; epochRecord: PublicKey } | undefined;
  for (const oracle of oracles) {
    const p = await oracleProof(oracle, operator.publicKey);
    if (typeof p === "string") {
      reasons.push(p);
      continue;
    }
    const epochRecord = pdaFromIdl(program, "claim", "epochRecord", { config }, { epoch: p.epoch });
    const record = await fetchers.epochRecord.fetchNullable(epochRecord);
    if (!record || !("finalized" in record.status)) {
      reasons.push(`${oracle}: epoch ${p.epoch.toString()} is not finalized yet`);
      continue;
    }
    const root = Buffer.from(record.proposal.rewardRoot as number[]);
    const total = BigInt(record.proposal.rewardTotal.toString());
    const leafCount = BigInt(record.proposal.rewardLeafCount.toString());
    const leaf = rewardLeaf(config, p.epoch, operator.publicKey, p.cumulative);
    if (!verifyProof(leaf, p.index, p.proof, root, total, leafCount)) {
      reasons.push(
        `${oracle}: the proof does not verify against epoch ${p.epoch.toString()}'s root`,
      );
      continue;
    }
    if (!chosen || p.epoch.gt(chosen.proof.epoch)) chosen = { proof: p, epochRecord };
  }
  if (!chosen) throw new Failure(`no claimable proof: ${reasons.join("; ")}; nothing was sent`);
  const { proof, epochRecord } = chosen;
  if (proof.cumulative.lte(claimed)) {
    throw new Failure(
      `nothing to claim: epoch ${proof.epoch.toString()}'s cumulative ${proof.cumulative.toString()} is already claimed; nothing was sent`,
    );
  }
  const expectedAmount = proof.cumulative.sub(claimed);

  // Purchase: burn the buyer's tokens for credits at the posted price.
  const tokens = parseTokens(values.tokens!, decimals);
  if (tokens.isZero()) throw new Failure("--tokens must be more than zero");
  const feed = await fetchers.priceFeed.fetch(priceFeed);
  const now = await chainTime(connection);
  if (feed.creditsPerToken.isZero())
    throw new Failure("no price has been posted yet: nothing was sent");
  const age = now - feed.postedAt.toNumber();
  if (age > configState.economics.priceMaxAgeSecs.toNumber()) {
    throw new Failure(
      `the posted price is ${age} s old, over the deployment's maximum: nothing was sent`,
    );
  }
  const quote = tokens.mul(feed.creditsPerToken).div(new BN(10).pow(new BN(decimals)));
  const minCredits = quote.muln(10_000 - slippageBps).divn(10_000);
  const epoch = epochAt(configState, now);
  const ledger = pdaFromIdl(program, "buyCredits", "ledger", { config }, { epoch });
  const buyerTokens = values["buyer-tokens"]
    ? publicKey(values["buyer-tokens"], "--buyer-tokens")
    : ata(buyer.publicKey, mint);
  if (!(await connection.getAccountInfo(buyerTokens))) {
    throw new Failure(`the buyer has no token account ${buyerTokens.toBase58()}: nothing was sent`);
  }
  log(
    `buying ${quote.toString()} credits for ${tokens.toString()} base units (epoch ${epoch.toString()})`,
  );
  const purchaseSignature = await asBuyer.methods
    .buyCredits(tokens, minCredits, buyer.publicKey, epoch)
    .accountsStrict({
      payer: buyer.publicKey,
      config,
      priceFeed,
      mint,
      payerTokens: buyerTokens,
      creditAccount,
      ledger,
      tokenProgram: TOKEN_PROGRAM,
      systemProgram: SystemProgram.programId,
      eventAuthority,
      program: programId,
    })
    .rpc();
  const purchaseEvents = await transactionEvents(program, eventAuthority, purchaseSignature);
  const purchased = expectEvent(purchaseEvents, "creditsPurchased", "the purchase");
  if (
    purchased.buyer !== buyer.publicKey.toBase58() ||
    purchased.tokensBurned !== tokens.toString()
  ) {
    throw new Failure(`the purchase's event does not match it: ${JSON.stringify(purchased)}`);
  }
  log(`purchase ${purchaseSignature}: ${String(purchased.credits)} credits`);

  // Claim: pays the proof's cumulative amount minus what was already claimed.
  const recipient = ata(operator.publicKey, mint);
  log(
    `claiming ${expectedAmount.toString()} for ${operator.publicKey.toBase58()} (epoch ${proof.epoch.toString()}, proof from ${proof.oracle})`,
  );
  const claimSignature = await asOperator.methods
    .claim(
      proof.epoch,
      proof.cumulative,
      new BN(proof.index.toString()),
      proof.proof.map((s) => ({ hash: Array.from(s.hash), sum: new BN(s.sum.toString()) })),
    )
    .accountsStrict({
      payer: operator.publicKey,
      config,
      epochRecord,
      operator: operator.publicKey,
      operatorClaim,
      vault,
      recipient,
      tokenProgram: TOKEN_PROGRAM,
      systemProgram: SystemProgram.programId,
      eventAuthority,
      program: programId,
    })
    .preInstructions([createAtaIdempotent(operator.publicKey, operator.publicKey, mint)])
    .rpc();
  const claimEvents = await transactionEvents(program, eventAuthority, claimSignature);
  const rewarded = expectEvent(claimEvents, "rewardClaimed", "the claim");
  if (
    rewarded.operator !== operator.publicKey.toBase58() ||
    rewarded.amount !== expectedAmount.toString()
  ) {
    throw new Failure(`the claim's event does not match it: ${JSON.stringify(rewarded)}`);
  }
  log(`claim ${claimSignature}: ${String(rewarded.amount)} paid`);

  // Governance changes queued and not yet applied or cancelled: every account of a deployment
  // names its config right after the discriminator, so one memcmp finds them. Each one's address
  // is checked against the IDL's seeds.
  const queued = (
    await fetchers.pendingChange.all([{ memcmp: { offset: 8, bytes: config.toBase58() } }])
  ).sort((a, b) => a.account.id.cmp(b.account.id));
  for (const { publicKey, account } of queued) {
    const expected = pdaFromIdl(
      program,
      "queueChange",
      "pendingChange",
      { config },
      { id: account.id },
    );
    if (!publicKey.equals(expected))
      throw new Failure(`pending change ${publicKey.toBase58()} is not at its seeds' address`);
    const at = new Date(account.executableAt.toNumber() * 1000).toISOString();
    const kind = Object.keys(account.change)[0];
    log(`queued change ${account.id.toString()} (${kind}): applicable from ${at}`);
  }
  if (queued.length === 0) log("no governance change is queued");

  // Oracle bonds and open proof buffers, found the same way; each at its seeds' address.
  const byConfig = [{ memcmp: { offset: 8, bytes: config.toBase58() } }];
  const bonds = await fetchers.oracleBond.all(byConfig);
  for (const { publicKey, account } of bonds) {
    const expected = pdaFromIdl(
      program,
      "depositBond",
      "bond",
      { config, oracle: account.oracle },
      {},
    );
    if (!publicKey.equals(expected))
      throw new Failure(`oracle bond ${publicKey.toBase58()} is not at its seeds' address`);
    const slashed = account.slashed.toString();
    log(`oracle ${account.oracle.toBase58()} has a bond (slashed so far: ${slashed})`);
  }
  const buffers = await fetchers.proofBuffer.all(byConfig);
  for (const { publicKey, account } of buffers) {
    const expected = pdaFromIdl(
      program,
      "openProofBuffer",
      "buffer",
      { config, owner: account.owner },
      { id: account.id },
    );
    if (!publicKey.equals(expected))
      throw new Failure(`proof buffer ${publicKey.toBase58()} is not at its seeds' address`);
    const owner = account.owner.toBase58();
    log(`proof buffer ${account.id.toString()} of ${owner}: ${account.len} bytes`);
  }

  // Every account type the IDL lists, decoded after both transactions.
  const addresses: Record<string, PublicKey> = {
    config,
    priceFeed,
    epochRecord,
    epochLedger: ledger,
    creditAccount,
    operatorClaim,
  };
  if (queued.length > 0) addresses.pendingChange = queued[0].publicKey;
  if (bonds.length > 0) addresses.oracleBond = bonds[0].publicKey;
  if (buffers.length > 0) addresses.proofBuffer = buffers[0].publicKey;
  const accounts: Record<string, { address: string; data: unknown }> = {};
  // A deployment may have nothing queued, no bonds and no open proof buffer.
  const optional = ["pendingChange", "oracleBond", "proofBuffer"];
  for (const { name } of program.idl.accounts ?? []) {
    const address = addresses[name];
    if (!address && optional.includes(name)) continue;
    if (!address)
      throw new Failure(`the example has no address for the IDL's account type ${name}`);
    accounts[name] = {
      address: address.toBase58(),
      data: plain(await fetchers[name].fetch(address)),
    };
  }

  const output = {
    cluster: values.url,
    programId: programId.toBase58(),
    mint: mint.toBase58(),
    addresses: Object.fromEntries(
      Object.entries({ ...addresses, vault, eventAuthority, buyerTokens, recipient }).map(
        ([k, v]) => [k, v.toBase58()],
      ),
    ),
    before: { creditAccount: plain(creditsBefore), operatorClaim: plain(claimBefore) },
    purchase: {
      signature: purchaseSignature,
      epoch: epoch.toString(),
      tokens: tokens.toString(),
      quotedCredits: quote.toString(),
      minCredits: minCredits.toString(),
      events: purchaseEvents,
    },
    claim: {
      signature: claimSignature,
      epoch: proof.epoch.toString(),
      cumulative: proof.cumulative.toString(),
      amount: expectedAmount.toString(),
      proofDepth: proof.proof.length,
      oracle: proof.oracle,
      events: claimEvents,
    },
    accounts,
  };
  process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    if (e instanceof Failure) {
      log(`error: ${e.message}`);
    } else {
      log(`error: ${(e as Error)?.stack ?? String(e)}`);
      const logs = (e as { logs?: string[] })?.logs;
      if (logs) log(logs.join("\n"));
    }
    process.exit(1);
  },
);
