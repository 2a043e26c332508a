// The Backhaul dashboard: reads the dashboard's JSON API and draws the pages. Data from the
// chain or a dataset only ever becomes text (textContent), never markup. Amounts arrive as
// decimal strings and are handled as BigInt, so no figure is rounded.
"use strict";

const main = document.getElementById("main");
const statusBar = document.getElementById("audit-status");
const footer = document.getElementById("footer");

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// Replaces the page's content; absent parts (null) are left out.
function show(...children) {
  main.replaceChildren(...children.flat().filter(c => c !== null && c !== undefined));
}

async function api(path) {
  const r = await fetch(path, { headers: { accept: "application/json" } });
  let body;
  try { body = await r.json(); } catch { body = { error: `${path}: not JSON (HTTP ${r.status})` }; }
  if (!r.ok) {
    const err = new Error(body.error || `${path}: HTTP ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return body;
}

// Base units to a decimal string with `decimals` places, trailing zeros dropped.
function units(value, decimals) {
  const v = BigInt(value);
  const d = BigInt(decimals);
  const scale = 10n ** d;
  const whole = v / scale;
  let frac = (v % scale).toString().padStart(Number(d), "0").replace(/0+$/, "");
  const w = whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return frac ? `${w}.${frac}` : w;
}
function count(value) {
  return BigInt(value).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
function bytes(value) {
  const v = Number(value);
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0, x = v;
  while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
  return i === 0 ? `${v} B` : `${x.toFixed(2)} ${u[i]}`;
}

function utc(unix) {
  return new Date(unix * 1000).toISOString().replace("T", " ").replace(/\.000Z$/, " UTC");
}
function local(unix) {
  return new Date(unix * 1000).toLocaleString();
}
// A time in UTC with the viewer's local time beside it.
function when(unix) {
  return el("span", {}, el("time", { datetime: new Date(unix * 1000).toISOString(), text: utc(unix) }),
    el("span", { class: "muted", text: ` (${local(unix)} local)` }));
}
function duration(secs) {
  secs = Number(secs);
  if (secs <= 0) return "now";
  const d = Math.floor(secs / 86400), h = Math.floor(secs % 86400 / 3600), m = Math.floor(secs % 3600 / 60), s = secs % 60;
  return [d && `${d}d`, h && `${h}h`, m && `${m}m`, (!d && !h) && `${s}s`].filter(Boolean).join(" ");
}

// A figure: its value (raw in data-value), and a link to the checks that verified it, or a mark
// that nothing did.
function fig(name, f, format) {
  const text = format ? format(f.value) : count(f.value);
  const ids = f.checks.join(",");
  const badge = f.verified
    ? el("a", { class: "badge ok", href: `#/checks/${encodeURIComponent(ids)}`, title: `verified by ${f.checks.join(", ")}`, text: "verified" })
    : el("a", { class: "badge bad", href: `#/checks/${encodeURIComponent(ids)}`, title: f.checks.length ? `not verified: ${f.checks.join(", ")}` : "no check covers this figure", text: "unverified" });
  return el("span", { class: "fig-wrap" },
    el("span", { class: "fig", "data-figure": name, "data-value": f.value, "data-verified": f.verified, text }), badge);
}
function card(label, content) {
  return el("div", { class: "card" }, el("div", { class: "label", text: label }), content);
}
function statusCell(status) {
  return el("td", { class: `text status-${status}`, "data-col": "status", text: status });
}

let network = null;
async function loadNetwork() {
  network = await api("/api/network");
  statusBar.dataset.passed = network.audit_passed;
  statusBar.textContent = network.audit_passed
    ? `Audit passed: ${network.checks} checks over ${network.epochs.length} epochs, every figure below verified unless marked.`
    : `Audit FAILED: ${network.failed.length} of ${network.checks} checks failed (${network.failed.join(", ")}). Figures resting on them are marked unverified.`;
  const st = await api("/api/status");
  clockAt = { chain: network.now, wall: Date.now() };
  footer.textContent = `Read at ${utc(st.read_at)} (chain clock ${utc(st.chain_time)}, took ${st.took_ms} ms). ` +
    `Epochs are ${network.epoch_length_secs} s long from genesis ${utc(network.genesis_ts)}; times are UTC with your local time beside.` +
    (st.last_error ? ` The last read failed: ${st.last_error}` : "");
  return network;
}

function tokens(v) { return units(v, network.decimals); }

function svgEl(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}
// A chart of `series` ([{name, color, values, kind: "bar"|"line"}]) over `xs`.
function chart(title, id, xs, series) {
  const W = 600, H = 200, P = 30;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, id, role: "img", "aria-label": title });
  const max = Math.max(1, ...series.flatMap(s => s.values.map(Number)));
  const n = Math.max(1, xs.length);
  const x = i => P + (W - 2 * P) * (i + 0.5) / n;
  const y = v => H - P - (H - 2 * P) * Number(v) / max;
  svg.append(svgEl("line", { x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#8c959f" }));
  const bars = series.filter(s => s.kind === "bar");
  const bw = (W - 2 * P) / n / (bars.length + 1);
  bars.forEach((s, j) => s.values.forEach((v, i) => {
    const r = svgEl("rect", { x: x(i) - bw * bars.length / 2 + j * bw, y: y(v), width: Math.max(1, bw - 1), height: H - P - y(v), fill: s.color });
    const t = svgEl("title", {}); t.textContent = `${s.name}, epoch ${xs[i]}: ${v}`; r.append(t);
    svg.append(r);
  }));
  series.filter(s => s.kind === "line").forEach(s => {
    const pts = s.values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
    svg.append(svgEl("polyline", { points: pts, fill: "none", stroke: s.color, "stroke-width": 2, "stroke-dasharray": s.dash || "" }));
  });
  xs.forEach((e, i) => {
    if (n > 20 && i % Math.ceil(n / 20)) return;
    const t = svgEl("text", { x: x(i), y: H - P + 14, "font-size": 10, "text-anchor": "middle", fill: "#57606a" });
    t.textContent = e; svg.append(t);
  });
  const legend = el("div", { class: "legend" }, series.map(s => {
    const key = svgEl("svg", { width: 10, height: 10, viewBox: "0 0 10 10" });
    key.append(svgEl("rect", { width: 10, height: 10, fill: s.color }));
    return el("span", {}, key, ` ${s.name}`);
  }));
  return el("div", { class: "chart" }, el("div", { text: title }), svg, legend);
}

async function pageNetwork() {
  const n = await loadNetwork();
  const t = n.totals;
  show(
    el("h1", { text: "Network" }),
    el("p", { class: "muted" }, `Program ${n.program_id}, config ${n.config}, mint ${n.mint}. ${n.oracles} oracles, quorum ${n.threshold}; ${n.guardians} guardians; challenge period ${duration(n.challenge_period_secs)}.`,
      n.paused_until > n.now ? el("span", { class: "error", text: ` Paused until ${utc(n.paused_until)}.` }) : ""),
    el("div", { class: "cards" },
      card("Minted for rewards", fig("totals.minted", t.minted, tokens)),
      card("Burned for credits", fig("totals.burned", t.burned, tokens)),
      card("Claimed by operators", fig("totals.claimed", t.claimed, tokens)),
      card("Lifetime cap", el("span", { class: "fig", "data-figure": "totals.lifetime_cap", "data-value": t.lifetime_cap, text: tokens(t.lifetime_cap) })),
      t.supply ? card("Token supply", fig("totals.supply", t.supply, tokens)) : null,
      card("Posted price", el("span", { class: "fig", text: t.credits_per_token == null ? "none posted" : `${count(t.credits_per_token)} credits per token` }),
        t.price_posted_at ? el("div", { class: "muted" }, "posted ", when(t.price_posted_at)) : null)),
    el("h2", { text: "Charts" }),
    el("div", { class: "charts" },
      chart("Burned against minted per epoch (base units)", "chart-burn-mint", n.series.epochs, [
        { name: "burned", color: "#cf222e", kind: "bar", values: n.series.burned },
        { name: "minted", color: "#0969da", kind: "bar", values: n.series.minted }]),
      chart("Cumulative emission against the schedule and the lifetime cap", "chart-emission", n.series.epochs, [
        { name: "minted", color: "#0969da", kind: "line", values: n.series.cumulative_minted },
        { name: "schedule", color: "#8250df", kind: "line", dash: "4 3", values: n.series.cumulative_scheduled },
        { name: "lifetime cap", color: "#cf222e", kind: "line", dash: "2 2", values: n.series.epochs.map(() => n.series.lifetime_cap) }]),
      chart("Posted price (credits per token) by epoch", "chart-price", n.series.epochs, [
        { name: "credits per token", color: "#1a7f37", kind: "line", values: n.series.credits_per_token }])),
    el("h2", { text: "Epochs" }),
    el("div", { class: "scroll" }, epochsTable(n)),
    el("h2", { text: "Operators" }), el("div", { id: "operators" }),
    el("h2", { text: "Firms" }), el("div", { id: "firms" }));
  await listing("operators", "/api/operators", 0);
  await listing("firms", "/api/firms", 0);
}

function epochsTable(n) {
  const head = ["epoch", "start (UTC)", "status", "votes", "challenge ends", "allocation", "burned", "minted", "claimed", "credits used", "settled", "unpaid", "operators", "bytes"];
  return el("table", { id: "epochs" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i < 3 ? "text" : "", text: h })))),
    el("tbody", {}, n.epochs.map(e => el("tr", { "data-epoch": e.epoch, class: e.dataset_error && e.status !== "voting" ? "failed" : "" },
      el("td", { class: "text", "data-col": "epoch", text: e.epoch }),
      el("td", { class: "text", "data-col": "start", title: `${utc(e.start)} to ${utc(e.end)}` }, utc(e.start), el("div", { class: "muted local", text: `${local(e.start)} local` })),
      statusCell(e.status),
      el("td", { "data-col": "votes", title: `${e.votes} votes in round ${e.round}; ${e.threshold} make a quorum`, text: `${e.votes} (${e.threshold} needed)` }),
      e.status === "proposed"
        ? el("td", { "data-col": "challenge", "data-deadline": e.finalizable_at, title: `finalizable at ${utc(e.finalizable_at)}`, text: `in ${duration(e.seconds_left)}` })
        : el("td", { "data-col": "challenge", text: e.finalizable_at == null ? "" : utc(e.finalizable_at) }),
      ...["allocation", "burned", "minted", "claimed"].map(k => el("td", { "data-col": k }, fig(`epoch-${e.epoch}.${k}`, e[k], tokens))),
      ...["credits_consumed", "settled", "unpaid"].map(k => el("td", { "data-col": k }, fig(`epoch-${e.epoch}.${k}`, e[k]))),
      el("td", { "data-col": "operators", text: count(e.operators) }),
      el("td", { "data-col": "bytes", title: `${e.bytes} bytes`, text: bytes(e.bytes) })))));
}

async function listing(id, path, page) {
  const box = document.getElementById(id);
  if (!box) return;
  const p = await api(`${path}?page=${page}&per_page=50`);
  const pages = Math.max(1, Math.ceil(p.total / p.per_page));
  const isOp = id === "operators";
  box.replaceChildren(
    el("div", { class: "pager" },
      el("span", { class: "muted", text: `${count(p.total)} in epoch ${p.epoch ?? "–"}'s dataset, page ${p.page + 1} of ${pages}` }),
      el("button", { disabled: p.page === 0 ? "" : null, onclick: () => listing(id, path, p.page - 1), text: "previous" }),
      el("button", { disabled: p.page + 1 >= pages ? "" : null, onclick: () => listing(id, path, p.page + 1), text: "next" })),
    el("table", { id: `${id}-table` },
      el("thead", {}, el("tr", {}, (isOp ? ["operator", "cumulative reward", "this epoch", "bytes"] : ["firm", "credits consumed in all", "this epoch", "bytes"]).map((h, i) => el("th", { class: i ? "" : "text", text: h })))),
      el("tbody", {}, p.rows.map(r => el("tr", {},
        el("td", { class: "text mono" }, el("a", { href: `#/${isOp ? "operator" : "firm"}/${isOp ? r.operator : r.buyer}`, text: isOp ? r.operator : r.buyer })),
        el("td", { text: isOp ? tokens(r.cumulative) : count(r.cumulative) }),
        el("td", { text: isOp ? tokens(r.reward) : count(r.credits) }),
        el("td", { text: bytes(r.bytes) }))))));
}

async function pageOperator(key) {
  await loadNetwork();
  const v = await api(`/api/operators/${encodeURIComponent(key)}`);
  show(
    el("h1", {}, "Operator ", el("span", { class: "mono", id: "subject", text: v.operator })),
    el("div", { class: "cards" },
      card(`Earned (through finalized epoch ${v.claimable_epoch ?? "–"})`, fig("operator.earned", v.earned, tokens)),
      card("Claimed", fig("operator.claimed", v.claimed, tokens)),
      card("Claimable now", fig("operator.claimable", v.claimable, tokens)),
      card(v.pending_epoch == null ? "Pending finalization" : `Pending (epoch ${v.pending_epoch}, in its challenge period)`,
        v.pending == null ? el("span", { class: "fig muted", "data-figure": "operator.pending", "data-value": "0", text: "nothing pending" }) : fig("operator.pending", v.pending, tokens))),
    el("p", {},
      el("a", { id: "csv", href: `/api/operators/${v.operator}/history.csv`, download: "", text: "Download the history (CSV)" }), " · ",
      v.claimable_epoch == null ? el("span", { class: "muted", text: "no finalized reward to prove yet" })
        : el("a", { id: "proof", href: `/api/operators/${v.operator}/proof`, download: "", text: `Download the Merkle proof (epoch ${v.claimable_epoch})` }),
      v.last_claim_epoch == null ? "" : el("span", { class: "muted", text: ` · last claim against epoch ${v.last_claim_epoch}` })),
    el("h2", { text: "History" }),
    historyTable(v.history, [
      ["bytes", r => bytes(r.bytes)], ["reward", r => tokens(r.reward)], ["cumulative", r => tokens(r.cumulative)]]));
}

async function pageFirm(key) {
  await loadNetwork();
  const v = await api(`/api/firms/${encodeURIComponent(key)}`);
  show(
    el("h1", {}, "Firm ", el("span", { class: "mono", id: "subject", text: v.buyer })),
    el("div", { class: "cards" },
      card("Credits left", fig("firm.balance", v.balance)),
      card("Credits bought", fig("firm.issued", v.issued)),
      card("Tokens burned for them", fig("firm.tokens_burned", v.tokens_burned, tokens)),
      card(`Consumed (through finalized epoch ${v.consumed_epoch ?? "–"})`, fig("firm.consumed", v.consumed)),
      card("Settled", fig("firm.settled", v.settled)),
      card("Unpaid (no credits left)", fig("firm.unpaid", v.unpaid)),
      card("Unsettled usage", fig("firm.unsettled", v.unsettled)),
      card(`Runway at ${count(v.rate_per_epoch)} credits per epoch`, el("span", { class: "fig", "data-figure": "firm.runway_epochs", "data-value": v.runway_epochs ?? "", text: v.runway_epochs == null ? "no recent consumption" : `${count(v.runway_epochs)} epochs (${duration(v.runway_secs)})` }))),
    el("p", {}, el("a", { id: "csv", href: `/api/firms/${v.buyer}/history.csv`, download: "", text: "Download the history (CSV)" })),
    el("h2", { text: "Consumption" }),
    historyTable(v.history, [
      ["credits", r => count(r.credits)], ["bytes", r => bytes(r.bytes)], ["cost", r => tokens(r.cost)], ["cumulative", r => count(r.cumulative)]]));
}

// A history table; each cell keeps its raw value in data-value (what the CSV holds).
function historyTable(rows, cols) {
  return el("table", { id: "history" },
    el("thead", {}, el("tr", {}, ["epoch", "start (UTC)", "end (UTC)", "status", ...cols.map(c => c[0]), "verified"].map((h, i) => el("th", { class: i < 4 ? "text" : "", text: h })))),
    el("tbody", {}, rows.map(r => el("tr", { "data-epoch": r.epoch },
      el("td", { class: "text", "data-col": "epoch", "data-value": r.epoch, text: r.epoch }),
      el("td", { class: "text", "data-col": "start", "data-value": r.start }, utc(r.start), el("div", { class: "muted local", text: `${local(r.start)} local` })),
      el("td", { class: "text", "data-col": "end", "data-value": r.end }, utc(r.end), el("div", { class: "muted local", text: `${local(r.end)} local` })),
      el("td", { class: `text status-${r.status}`, "data-col": "status", "data-value": r.status, text: r.status }),
      ...cols.map(([k, f]) => el("td", { "data-col": k, "data-value": r[k], text: f(r) })),
      el("td", { "data-col": "verified", "data-value": r.verified },
        el("a", { class: r.verified ? "badge ok" : "badge bad", href: `#/checks/${encodeURIComponent(r.checks.join(","))}`, text: r.verified ? "verified" : "unverified" }))))));
}

async function pageGuardian() {
  await loadNetwork();
  const g = await api("/api/guardian");
  show(
    el("h1", { text: "Guardian" }),
    el("p", { class: "muted", text: `Chain clock ${utc(g.now)}. Guardians: ${g.guardians.join(", ") || "none"}.` }),
    g.paused_until > g.now ? el("p", { class: "error", text: `Paused until ${utc(g.paused_until)}.` }) : null,
    el("h2", { text: "Proposals in their challenge period" }),
    g.challenged.length === 0 ? el("p", { class: "muted", id: "no-challenged", text: "No proposal is waiting to be finalized." }) :
      el("div", { id: "challenged" }, g.challenged.map(c => el("section", { "data-epoch": c.epoch, "data-passed": c.passed, class: "card" },
        el("h2", {}, `Epoch ${c.epoch}, round ${c.round}: `, el("span", { class: c.passed ? "badge ok" : "badge bad", text: c.passed ? "all checks pass" : "CHECKS FAIL: veto or prove fraud" })),
        el("p", {}, `Finalizable at `, when(c.finalizable_at), " — ",
          el("span", { "data-deadline": c.finalizable_at, "data-suffix": " left to act", text: c.seconds_left > 0 ? `${duration(c.seconds_left)} left to act` : "the challenge period is over" }),
          `. Vetoes used: ${c.vetoes_used}. Digest `, el("span", { class: "mono", text: c.digest })),
        c.dataset_error ? el("p", { class: "error", text: `Dataset: ${c.dataset_error}` }) : null,
        el("ul", {}, c.checks.map(k => el("li", { "data-check": k.id, "data-passed": k.passed },
          el("span", { class: k.passed ? "badge ok" : "badge bad", text: k.passed ? "pass" : "FAIL" }), ` ${k.name}: `, el("span", { class: "muted", text: k.evidence }))))))),
    el("h2", { text: "Queued governance changes" }),
    g.changes.length === 0 ? el("p", { class: "muted", text: "None queued." }) :
      el("table", { id: "changes" },
        el("thead", {}, el("tr", {}, ["id", "kind", "queued by", "queued at", "executable at", "time left", "change"].map(h => el("th", { class: "text", text: h })))),
        el("tbody", {}, g.changes.map(c => el("tr", { "data-change": c.id },
          el("td", { class: "text", text: c.id }), el("td", { class: "text", text: c.kind }), el("td", { class: "text mono", text: c.queued_by }),
          el("td", { class: "text", text: utc(c.queued_at) }), el("td", { class: "text", text: utc(c.executable_at) }),
          el("td", { class: "text", text: duration(c.seconds_left) }), el("td", { class: "text evidence mono", text: c.detail }))))));
}

async function pageChecks(highlight) {
  await loadNetwork();
  const r = await api("/api/checks");
  const wanted = new Set((highlight || "").split(",").filter(Boolean));
  show(
    el("h1", { text: `Checks (${r.checks.length}, ${r.failed.length} failed)` }),
    wanted.size ? el("p", { class: "muted", text: `The checks behind the figure you followed are outlined: ${[...wanted].join(", ")}.` }) : null,
    el("table", { id: "checks" },
      el("thead", {}, el("tr", {}, ["result", "check", "evidence"].map(h => el("th", { class: "text", text: h })))),
      el("tbody", {}, r.checks.map(c => el("tr", { id: `check-${c.id}`, "data-check": c.id, "data-passed": c.passed, class: [c.passed ? "" : "failed", wanted.has(c.id) ? "highlight" : ""].join(" ") },
        el("td", { class: "text" }, el("span", { class: c.passed ? "badge ok" : "badge bad", text: c.passed ? "pass" : "FAIL" })),
        el("td", { class: "text mono", text: c.id }),
        el("td", { class: "evidence", text: c.evidence }))))));
  const first = [...wanted].find(id => document.getElementById(`check-${id}`));
  if (first) document.getElementById(`check-${first}`).scrollIntoView();
  if (wanted.size && ![...wanted].every(id => document.getElementById(`check-${id}`))) {
    main.prepend(el("p", { class: "error", text: `Not run: ${[...wanted].filter(id => !document.getElementById(`check-${id}`)).join(", ")} (its data was not available).` }));
  }
}

// Challenge countdowns tick on the chain's clock as of the last read, advanced by the time since.
let clockAt = null;
function chainNow() {
  return clockAt ? clockAt.chain + Math.floor((Date.now() - clockAt.wall) / 1000) : null;
}
setInterval(() => {
  const now = chainNow();
  if (now == null) return;
  for (const e of document.querySelectorAll("[data-deadline]")) {
    const left = Number(e.dataset.deadline) - now;
    e.textContent = left > 0
      ? (e.dataset.suffix ? `${duration(left)}${e.dataset.suffix}` : `in ${duration(left)}`)
      : "the challenge period is over";
  }
}, 1000);

async function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  document.body.dataset.loaded = "false";
  try {
    if (parts[0] === "operator" && parts[1]) await pageOperator(decodeURIComponent(parts[1]));
    else if (parts[0] === "firm" && parts[1]) await pageFirm(decodeURIComponent(parts[1]));
    else if (parts[0] === "guardian") await pageGuardian();
    else if (parts[0] === "checks") await pageChecks(decodeURIComponent(parts[1] || ""));
    else await pageNetwork();
  } catch (e) {
    show(el("p", { class: "error", id: "page-error", text: e.message }),
      e.status === 503 ? el("p", { class: "muted", text: "This page reloads by itself once the first read is done." }) : null);
    if (e.status === 503) setTimeout(route, 2000);
  }
  document.body.dataset.loaded = "true";
}

document.getElementById("search").addEventListener("submit", ev => {
  ev.preventDefault();
  const key = document.getElementById("search-key").value.trim();
  const kind = ev.submitter ? ev.submitter.dataset.kind : "operator";
  if (key) location.hash = `#/${kind}/${encodeURIComponent(key)}`;
});
window.addEventListener("hashchange", route);
route();
