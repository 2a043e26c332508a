// The dashboard in a real browser: headless Chromium (Debian's `chromium`, found at
// $CHROMIUM or /usr/bin/chromium) driven by playwright-core. The Rust test that runs this script
// starts a network, two dashboards (one over the true datasets, one over a tampered copy) and
// writes what the command line says (the audit report, `operator rewards`) to a JSON file
// named by argv[2]. Every assertion compares the page with those figures; screenshots of each
// page go to the folder the file names. Exits non-zero on the first failed assertion.
import assert from "node:assert/strict";
import { readFileSync, mkdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const expected = JSON.parse(readFileSync(process.argv[2], "utf8"));
const shots = expected.screenshots;
mkdirSync(shots, { recursive: true });
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!existsSync(executablePath)) {
  console.error(`no Chromium at ${executablePath}: install Debian's chromium package (apt-get install chromium) or set CHROMIUM`);
  process.exit(2);
}

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
const problems = [];
let passed = 0;
async function check(name, f) {
  try {
    await f();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    problems.push(`${name}: ${e.message}`);
    console.log(`not ok - ${name}\n  ${e.message.split("\n").join("\n  ")}`);
  }
}

// A page that records console errors and uncaught exceptions.
async function open(base, hash) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.errors = [];
  page.on("console", m => { if (m.type() === "error") page.errors.push(m.text()); });
  page.on("pageerror", e => page.errors.push(e.message));
  await goto(page, base, hash);
  return page;
}
async function goto(page, base, hash) {
  await page.goto(`${base}/${hash}`);
  await page.waitForFunction(() => document.body.dataset.loaded === "true" && !document.getElementById("page-error"), null, { timeout: 20000 })
    .catch(async e => { throw new Error(`${hash}: ${(await page.textContent("main")) || e.message}`); });
  // No page shows a value the script failed to fill in.
  const text = await page.evaluate(() => document.body.innerText);
  const bad = text.match(/\b(null|undefined|NaN)\b/);
  if (bad) throw new Error(`${hash} shows ${bad[0]}: ...${text.slice(Math.max(0, bad.index - 80), bad.index + 40)}...`);
}
const value = (page, sel) => page.getAttribute(sel, "data-value");
async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

function parseCsv(text) {
  const [head, ...lines] = text.trim().split("\n");
  const cols = head.split(",");
  return lines.map(l => Object.fromEntries(l.split(",").map((v, i) => [cols[i], v])));
}

const base = expected.url;
const audit = expected.audit;

await check("the network page loads without console errors and says the audit passed", async () => {
  const page = await open(base, "#/");
  assert.deepEqual(page.errors, []);
  assert.equal(await page.getAttribute("#audit-status", "data-passed"), String(audit.passed));
  await shot(page, "network");
  await page.close();
});

await check("every epoch's figures on the page equal the audit report's", async () => {
  const page = await open(base, "#/");
  const rows = await page.$$eval("#epochs tbody tr", trs => trs.map(tr => {
    const cell = c => tr.querySelector(`[data-col="${c}"]`);
    const fig = c => cell(c).querySelector("[data-value]");
    return {
      epoch: Number(tr.dataset.epoch),
      status: cell("status").textContent,
      burned: fig("burned").dataset.value,
      minted: fig("minted").dataset.value,
      credits_consumed: fig("credits_consumed").dataset.value,
      settled: fig("settled").dataset.value,
      unpaid: fig("unpaid").dataset.value,
      verified: [...tr.querySelectorAll("[data-verified]")].every(f => f.dataset.verified === "true"),
    };
  }));
  assert.equal(rows.length, audit.epochs.length, "one row per epoch the audit reports");
  for (const e of audit.epochs) {
    const r = rows.find(r => r.epoch === e.epoch);
    assert.ok(r, `epoch ${e.epoch} is on the page`);
    assert.deepEqual(
      { status: r.status, burned: r.burned, minted: r.minted, credits_consumed: r.credits_consumed, settled: r.settled, unpaid: r.unpaid },
      { status: e.status, burned: String(e.tokens_burned), minted: String(e.tokens_minted), credits_consumed: String(e.credits_consumed), settled: String(e.credits_settled), unpaid: String(e.credits_unpaid) },
      `epoch ${e.epoch}`);
    if (audit.passed) assert.ok(r.verified, `epoch ${e.epoch}'s figures are all marked verified`);
  }
  assert.deepEqual(page.errors, []);
  await page.close();
});

await check("an operator's claimable amount equals what `backhaul operator rewards` says", async () => {
  const r = expected.rewards;
  const page = await open(base, `#/operator/${r.operator}`);
  assert.equal(await value(page, '[data-figure="operator.claimable"]'), String(r.claimable_now));
  assert.equal(await value(page, '[data-figure="operator.claimed"]'), String(r.claimed));
  assert.equal(await page.getAttribute('[data-figure="operator.claimable"]', "data-verified"), "true");
  assert.deepEqual(page.errors, []);
  await shot(page, "operator");
  await page.close();
});

async function csvEqualsTable(hash, csvCols) {
  const page = await open(base, hash);
  const href = await page.getAttribute("#csv", "href");
  const res = await page.request.get(`${base}${href}`);
  assert.equal(res.status(), 200);
  assert.match(res.headers()["content-disposition"] || "", /attachment/);
  const csv = parseCsv(await res.text());
  const table = await page.$$eval("#history tbody tr", trs => trs.map(tr =>
    Object.fromEntries([...tr.querySelectorAll("[data-col]")].map(td => [td.dataset.col, td.dataset.value]))));
  assert.ok(table.length > 0, "the history has rows");
  assert.equal(csv.length, table.length, "as many CSV lines as table rows");
  table.forEach((row, i) => {
    for (const [tableCol, csvCol] of Object.entries(csvCols)) {
      assert.equal(csv[i][csvCol], row[tableCol], `row ${i}, ${tableCol} (CSV ${csvCol})`);
    }
    assert.equal(csv[i].start_utc, new Date(Number(row.start) * 1000).toISOString().replace(/\.000Z$/, "Z"), `row ${i} start in UTC`);
  });
  assert.deepEqual(page.errors, []);
  return page;
}

await check("an operator's CSV equals its history table", async () => {
  const page = await csvEqualsTable(`#/operator/${expected.rewards.operator}`, {
    epoch: "epoch", start: "start_unix", end: "end_unix", status: "status", bytes: "bytes",
    reward: "reward_base_units", cumulative: "cumulative_base_units", verified: "verified" });
  await page.close();
});

await check("a firm's page and CSV agree, and its figures are verified", async () => {
  const page = await csvEqualsTable(`#/firm/${expected.firm}`, {
    epoch: "epoch", start: "start_unix", end: "end_unix", status: "status", credits: "credits_consumed",
    bytes: "bytes", cost: "cost_base_units", cumulative: "cumulative_credits", verified: "verified" });
  assert.equal(await value(page, '[data-figure="firm.balance"]'), String(expected.firm_balance));
  assert.equal(await page.getAttribute('[data-figure="firm.consumed"]', "data-verified"), "true");
  await shot(page, "firm");
  await page.close();
});

await check("the guardian page shows the queued change, and the checks page every check of the audit", async () => {
  const page = await open(base, "#/guardian");
  const kinds = await page.$$eval("#changes tbody tr", trs => trs.map(tr => tr.children[1].textContent));
  assert.deepEqual(kinds, [expected.queued_change]);
  assert.equal(await page.$$eval("#challenged", s => s.length), 0, "no proposal waits: every epoch is finalized");
  await shot(page, "guardian");
  await goto(page, base, "#/checks");
  const listed = await page.$$eval("#checks tbody tr", trs => trs.map(tr => [tr.dataset.check, tr.dataset.passed]));
  assert.deepEqual(new Map(listed), new Map(audit.checks.map(c => [c.id, String(c.passed)])));
  assert.deepEqual(page.errors, []);
  await shot(page, "checks");
  await page.close();
});

await check("a figure links to the checks that verified it", async () => {
  const page = await open(base, "#/");
  const e = audit.epochs[audit.epochs.length - 1].epoch;
  await page.click(`#epochs tr[data-epoch="${e}"] [data-col="minted"] a.badge`);
  await page.waitForFunction(() => document.querySelector("#checks tr.highlight"));
  const highlighted = await page.$$eval("#checks tr.highlight", trs => trs.map(t => t.dataset.check));
  assert.ok(highlighted.includes(`epoch-${e}/budget.within`), `highlighted: ${highlighted}`);
  await page.close();
});

await check("a tampered dataset shows as failed on the page, and its markup as text", async () => {
  const t = expected.tampered;
  const page = await open(t.url, "#/");
  assert.equal(await page.getAttribute("#audit-status", "data-passed"), "false");
  const verified = await page.$$eval(`#epochs tr[data-epoch="${t.epoch}"] [data-verified]`, fs => fs.map(f => f.dataset.verified));
  assert.ok(verified.includes("false"), `epoch ${t.epoch} has an unverified figure`);
  // The markup a hostile dataset put in an operator's key is shown as text, never run.
  const cells = await page.$$eval("#operators-table td", tds => tds.map(td => td.textContent));
  assert.ok(cells.some(c => c.includes("<img")), "the hostile key is listed as text");
  assert.equal(await page.$$eval("#operators-table img", imgs => imgs.length), 0);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  await shot(page, "tampered-network");
  await goto(page, t.url, "#/checks");
  const failed = await page.$$eval('#checks tr[data-passed="false"]', trs => trs.map(t => t.dataset.check));
  assert.ok(failed.includes(`epoch-${t.epoch}/dataset.sha256`), `failed checks: ${failed}`);
  await shot(page, "tampered-checks");
  assert.deepEqual(page.errors, []);
  await page.close();
});

await browser.close();
console.log(`${passed} passed, ${problems.length} failed`);
process.exit(problems.length ? 1 : 0);
