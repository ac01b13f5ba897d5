// quorumkv dashboard: polls this node's /v1/status and /v1/stats and draws
// them. No framework and no network beyond this node. Every value from the
// cluster goes into the page as text (never as HTML): member ids and
// addresses come from gossip.
"use strict";

const REFRESH_MS = 1500;
const PALETTE = ["#4f9cf9", "#3fb950", "#d2a8ff", "#f0883e", "#56d4dd", "#e3b341", "#ff7b72", "#a5d6ff", "#7ee787", "#ffa198", "#bc8cff", "#79c0ff"];

const $ = (id) => document.getElementById(id);

// h builds an element: h("td", {class: "num"}, "text", childNode, ...).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "style") el.style.cssText = v;
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function fmtNum(n, digits) {
  if (n === undefined || n === null || isNaN(n)) return "–";
  if (digits === undefined) digits = Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2;
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number(n).toFixed(digits).replace(/\.0+$/, "").replace(/(\.\d*[1-9])0+$/, "$1");
}
function fmtInt(n) { return n === undefined || n === null ? "–" : Math.round(n).toLocaleString("en-US"); }
function fmtMs(ms) {
  if (!ms) return "–";
  if (ms < 1) return (ms * 1000).toFixed(0) + " µs";
  if (ms < 100) return ms.toFixed(ms < 10 ? 2 : 1) + " ms";
  if (ms < 1000) return ms.toFixed(0) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}
function fmtBytes(b) {
  if (b === undefined || b === null) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i === 0 ? b.toFixed(0) : b.toFixed(b >= 100 ? 0 : 1)) + " " + u[i];
}
function fmtAgo(iso) {
  if (!iso) return "–";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return (s / 3600).toFixed(1) + " h ago";
  return (s / 86400).toFixed(1) + " d ago";
}
function fmtDuration(sec) {
  if (!sec || sec <= 0) return "–";
  if (sec < 60) return Math.round(sec) + " s";
  if (sec < 3600) return Math.round(sec / 60) + " min";
  return (sec / 3600).toFixed(1) + " h";
}

function setKPI(id, value, unit, sub, cls) {
  const v = $(id);
  v.replaceChildren(value, ...(unit ? [h("small", {}, unit)] : []));
  if (sub !== undefined) $(id + "-sub").textContent = sub;
  v.parentElement.classList.remove("warn", "bad");
  if (cls) v.parentElement.classList.add(cls);
}

function fillBody(table, rows, cols, empty) {
  const tb = $(table).tBodies[0];
  if (rows.length === 0) {
    tb.replaceChildren(h("tr", {}, h("td", { class: "empty", colspan: cols }, empty)));
    return;
  }
  tb.replaceChildren(...rows);
}

// Colors are stable per member id across refreshes.
const colors = new Map();
function colorOf(id) {
  if (!colors.has(id)) colors.set(id, PALETTE[colors.size % PALETTE.length]);
  return colors.get(id);
}

function memberURL(self, m) {
  if (!m.http || m.state === "left" || m.state === "dead") return null;
  const host = m.http.startsWith("0.0.0.0:") || m.http.startsWith("[::]:") ? location.hostname + m.http.slice(m.http.lastIndexOf(":")) : m.http;
  return location.protocol + "//" + host + "/";
}

function renderStatus(st) {
  const members = (st.members || []).slice().sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }));
  $("node").replaceChildren(
    ...(st.cluster ? ["cluster ", h("b", {}, st.cluster), " · "] : []),
    "node ", h("b", {}, st.id), " · N = ", h("b", {}, st.n), " · ring of ", h("b", {}, fmtInt(st.ring_size)), " partitions · incarnation ",
    h("span", { class: "mono" }, Number(st.incarnation || 0).toString(36)));

  const alive = members.filter((m) => m.state === "alive").length;
  const down = members.filter((m) => m.state === "dead" || m.state === "suspect").length;
  setKPI("k-members", alive + " / " + members.length, "", down ? down + " suspect or dead" : "alive / known", down ? "warn" : "");

  const ringSize = st.ring_size || 1;
  // Each partition has up to N primaries, so shares are of every primary
  // slot in the ring, not of the partitions.
  const slots = Math.max(1, members.reduce((s, m) => s + (m.partitions || 0), 0));
  // Members.
  fillBody("members", members.map((m) => {
    const share = m.partitions / slots;
    const url = memberURL(st, m);
    return h("tr", { class: m.id === st.id ? "self" : "" },
      h("td", {}, url && m.id !== st.id ? h("a", { href: url }, m.id) : m.id, m.id === st.id ? h("span", { class: "pill self", style: "margin-left:8px" }, "this node") : null),
      h("td", {}, h("span", { class: "pill " + m.state }, m.state)),
      h("td", { class: "num" }, fmtInt(m.partitions)),
      h("td", {}, h("div", { class: "sharebar" }, h("div", { style: `width:${(share * 100).toFixed(2)}%;background:${colorOf(m.id)}` }))),
      h("td", {}, m.zone || "–"),
      h("td", { class: "mono" }, m.http || "–"),
      h("td", { class: "mono" }, m.rpc || "–"),
      h("td", { class: "mono" }, m.version || "–"),
      h("td", { title: m.since || "" }, m.since ? fmtAgo(m.since) : "–"));
  }), 9, "no members known yet");
  // Nodes that run but were not let in (another N, ring size, TLS or name).
  const refused = Object.entries(st.refused || {}).sort((a, b) => a[0].localeCompare(b[0]));
  $("refused").hidden = refused.length === 0;
  $("refused").replaceChildren(...refused.map(([id, why]) => h("p", {}, h("b", {}, id), " refused: ", why)));

  // Ring ownership.
  const owners = members.filter((m) => m.partitions > 0);
  $("ringbar").replaceChildren(...owners.map((m) => {
    const pct = (m.partitions / slots) * 100;
    return h("div", { style: `width:${pct}%;background:${colorOf(m.id)}`, title: `${m.id}: ${m.partitions} partitions` }, pct > 7 ? m.id : "");
  }));
  $("ring-hint").textContent = fmtInt(ringSize) + " partitions × " + Math.round(slots / ringSize) + " primaries · " + owners.length + " owner" + (owners.length === 1 ? "" : "s");
  fillBody("ring-table", owners.map((m) => h("tr", {},
    h("td", {}, h("span", { class: "swatch", style: "background:" + colorOf(m.id) }), m.id),
    h("td", { class: "num" }, fmtInt(m.partitions)),
    h("td", { class: "num" }, ((m.partitions / slots) * 100).toFixed(1) + " %"))), 3, "the ring is empty");

  // Hints.
  const hints = st.hints_pending || 0;
  setKPI("k-hints", fmtInt(hints), "", hints ? "waiting for " + Object.keys(st.hints_by_node || {}).length + " node(s)" : "held for other nodes", hints ? "warn" : "");
  const byNode = Object.entries(st.hints_by_node || {}).sort((a, b) => b[1] - a[1]);
  const maxHints = Math.max(1, ...byNode.map((e) => e[1]));
  $("hints-by-node").replaceChildren(...(byNode.length ? byNode.map(([id, n]) => h("div", { class: "row" },
    h("span", {}, id), h("div", { class: "bar" }, h("div", { style: `width:${(n / maxHints) * 100}%` })), h("span", { class: "num" }, fmtInt(n))))
    : [h("div", { class: "none" }, "none: every replica this node wrote for was reachable")]));

  // Transfers.
  const transfers = st.transfers || [];
  const active = transfers.filter((t) => !t.done);
  setKPI("k-transfers", fmtInt(active.length), "", active.length ? fmtInt(active.reduce((s, t) => s + t.keys, 0)) + " keys moved so far" : "partitions moving", "");
  fillBody("transfers", transfers.slice(0, 50).map((t) => h("tr", {},
    h("td", { class: "num" }, t.partition), h("td", {}, t.from), h("td", {}, t.to),
    h("td", { class: "num" }, fmtInt(t.keys)), h("td", { class: "num" }, fmtBytes(t.bytes)),
    h("td", { class: "num" }, t.done ? "done" : fmtNum(t.keys_per_sec)), h("td", { class: "num" }, t.done ? "–" : fmtDuration(t.eta_seconds)))),
    7, "no transfers in progress: ownership is settled");

  // Anti-entropy.
  const ae = st.anti_entropy || {};
  const held = ae.partitions_held || 0, covered = ae.partitions_covered || 0;
  const pct = held ? (covered / held) * 100 : 0;
  if (!ae.last_round_finished) {
    setKPI("k-ae", "–", "", ae.interval === "disabled" ? "disabled on this node" : "first round in progress", "");
  } else {
    setKPI("k-ae", held ? pct.toFixed(0) : "–", held ? "%" : "", held ? fmtInt(covered) + " of " + fmtInt(held) + " held" : "no partitions held", held && pct < 100 ? "warn" : "");
  }
  $("ae-progress").style.width = pct.toFixed(1) + "%";
  $("ae-progress-label").textContent = ae.last_round_finished
    ? `${fmtInt(covered)} of ${fmtInt(held)} held partitions compared with every other replica in the last round (finished ${fmtAgo(ae.last_round_finished)})`
    : "first round in progress";
  $("ae-hint").textContent = ae.interval === "disabled" ? "disabled on this node" : "a round every " + (ae.interval || "–");
  statGrid("ae", [
    ["rounds", fmtInt(ae.rounds)], ["exchanges", fmtInt(ae.exchanges)], ["keys compared", fmtInt(ae.keys_compared)],
    ["keys repaired", fmtInt(ae.keys_repaired)], ["bytes sent", fmtBytes(ae.bytes_sent)], ["partitions arriving", fmtInt(st.partitions_arriving || 0)],
  ]);
}

function statGrid(id, items) {
  $(id).replaceChildren(...items.map(([label, value, cls]) => h("div", { class: "stat " + (cls || "") }, h("div", { class: "label" }, label), h("div", { class: "value" }, value))));
}

function renderStats(s) {
  const t = s.total || {};
  setKPI("k-rate", fmtNum(t.per_sec || 0), "/s", "last " + s.window_seconds + " s, this node", "");
  const errRate = t.per_sec ? (t.errors_per_sec / t.per_sec) * 100 : 0;
  setKPI("k-err", fmtNum(t.errors_per_sec || 0), "/s", t.errors ? (errRate < 0.1 ? "< 0.1" : errRate.toFixed(1)) + " % of requests" : "no errors", t.errors_per_sec > 0 ? "bad" : "");
  setKPI("k-p99", t.count ? fmtMs(t.p99_ms) : "–", "", "p50 " + fmtMs(t.p50_ms) + " · p95 " + fmtMs(t.p95_ms), "");

  fillBody("requests", (s.requests || []).map((r) => h("tr", {},
    h("td", {}, r.api), h("td", {}, r.op), h("td", {}, r.level),
    h("td", { class: "num" }, fmtNum(r.per_sec)), h("td", { class: "num" }, r.errors ? fmtNum(r.errors_per_sec) : "0"),
    h("td", { class: "num" }, fmtMs(r.p50_ms)), h("td", { class: "num" }, fmtMs(r.p95_ms)), h("td", { class: "num" }, fmtMs(r.p99_ms)))),
    8, "no requests in the last " + s.window_seconds + " s");

  const c = s.counters || {};
  statGrid("repair", [
    ["hints stored", fmtInt(c.hints_stored_total)], ["hints delivered", fmtInt(c.hints_delivered_total)], ["hints expired", fmtInt(c.hints_expired_total), c.hints_expired_total ? "bad" : ""],
    ["read repairs", fmtInt(c.read_repairs_total)], ["quorum failures", fmtInt(c.quorum_failures_total), c.quorum_failures_total ? "bad" : ""], ["timeouts", fmtInt(c.request_timeouts_total), c.request_timeouts_total ? "bad" : ""],
    ["strong write-backs", fmtInt(c.strong_write_backs_total)], ["store (LSM)", fmtBytes(c.store_lsm_bytes)], ["store (value log)", fmtBytes(c.store_vlog_bytes)],
  ]);
  drawChart(s.series || []);
}

// drawChart draws requests/s and errors/s as areas (left axis) and p99 as a
// dashed line (right axis) for the last minute.
function drawChart(series) {
  const svg = $("chart");
  const W = 640, H = 220, L = 40, R = 46, T = 10, B = 22;
  const pw = W - L - R, ph = H - T - B;
  const n = Math.max(series.length, 2);
  const maxOps = niceMax(Math.max(1, ...series.map((p) => p.count)));
  const maxMs = niceMax(Math.max(1, ...series.map((p) => p.p99_ms)));
  const x = (i) => L + (i / (n - 1)) * pw;
  const y = (v) => T + ph - (v / maxOps) * ph;
  const y2 = (v) => T + ph - (v / maxMs) * ph;
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const v = (maxOps / 4) * i, yy = y(v);
    parts.push(el("line", { class: "grid", x1: L, x2: W - R, y1: yy, y2: yy }));
    parts.push(el("text", { class: "axis", x: L - 6, y: yy + 3.5, "text-anchor": "end" }, fmtNum(v, 0)));
    parts.push(el("text", { class: "axis", x: W - R + 6, y: y2((maxMs / 4) * i) + 3.5 }, fmtNum((maxMs / 4) * i)));
  }
  for (const [i, label] of [[0, "-60 s"], [Math.floor((n - 1) / 2), "-30 s"], [n - 1, "now"]]) {
    parts.push(el("text", { class: "axis", x: x(i), y: H - 5, "text-anchor": i === 0 ? "start" : i === n - 1 ? "end" : "middle" }, label));
  }
  const area = (vals, cls) => {
    if (!vals.length) return;
    let d = `M ${x(0)} ${y(0)}`;
    vals.forEach((v, i) => { d += ` L ${x(i).toFixed(1)} ${y(v).toFixed(1)}`; });
    d += ` L ${x(vals.length - 1)} ${y(0)} Z`;
    parts.push(el("path", { class: cls, d }));
  };
  area(series.map((p) => p.count), "ops");
  area(series.map((p) => p.errors), "errs");
  if (series.some((p) => p.p99_ms > 0)) {
    let d = "", pen = false;
    series.forEach((p, i) => {
      if (!p.count) { pen = false; return; }
      d += `${pen ? "L" : "M"} ${x(i).toFixed(1)} ${y2(p.p99_ms).toFixed(1)} `;
      pen = true;
    });
    if (d) parts.push(el("path", { class: "p99", d }));
  }
  svg.replaceChildren(...parts);
}

function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

async function getJSON(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 4000);
  try {
    const r = await fetch(path, { credentials: "same-origin", cache: "no-store", signal: ctl.signal, headers: { Accept: "application/json" } });
    if (r.status === 401) throw new Error("this node requires the bearer token: reload the page and sign in with any user name and the token as the password");
    if (!r.ok) throw new Error(path + " answered " + r.status);
    return await r.json();
  } finally {
    clearTimeout(timer);
  }
}

let failures = 0;
async function refresh() {
  try {
    const [st, stats] = await Promise.all([getJSON("/v1/status"), getJSON("/v1/stats")]);
    renderStatus(st);
    renderStats(stats);
    failures = 0;
    $("live").className = "live ok";
    $("live-text").textContent = "live · " + new Date().toLocaleTimeString();
    $("banner").hidden = true;
  } catch (e) {
    failures++;
    $("live").className = "live bad";
    $("live-text").textContent = "disconnected";
    if (failures >= 2 || /token/.test(e.message)) {
      $("banner").textContent = "Cannot reach this node: " + e.message + ". Retrying…";
      $("banner").hidden = false;
    }
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
