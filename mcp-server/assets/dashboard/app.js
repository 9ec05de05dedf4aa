// tollgate dashboard: reads /admin/stats with the admin key and draws it. No libraries, no
// requests to any other host; the charts are SVG drawn here.
"use strict";

const KEY_STORAGE = "tollgate.adminKey";
const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
// Series colours that keep their contrast on light and dark backgrounds.
const PALETTE = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626"];
const numbers = new Intl.NumberFormat("en");

const $ = (id) => document.getElementById(id);
let timer = null;
let lastStats = null;

function readKey() {
  const match = /(?:^|[#&])key=([^&]*)/.exec(location.hash);
  if (match) {
    const key = decodeURIComponent(match[1]);
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    // Keep the key out of the address bar and the history.
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY_STORAGE);
}

function askForKey(message) {
  clearTimeout(timer);
  $("figures").hidden = true;
  $("forget-key").hidden = true;
  $("key-form").hidden = false;
  $("key-error").textContent = message || "";
  $("key-input").focus();
}

function setStatus(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

async function refresh() {
  clearTimeout(timer);
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (!key) return askForKey();
  let response;
  try {
    response = await fetch("/admin/stats", {
      headers: { Authorization: "Bearer " + key, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    setStatus("Cannot reach the server; retrying.", true);
    timer = setTimeout(refresh, REFRESH_MS);
    return;
  }
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem(KEY_STORAGE);
    let message = "That key was refused.";
    try { message = (await response.json()).error.message || message; } catch (_) { /* keep */ }
    return askForKey(message);
  }
  if (!response.ok) {
    setStatus("The server answered " + response.status + "; retrying.", true);
    timer = setTimeout(refresh, REFRESH_MS);
    return;
  }
  const stats = await response.json();
  lastStats = stats;
  render(stats);
  setStatus("");
  timer = setTimeout(refresh, REFRESH_MS);
}

function render(stats) {
  $("key-form").hidden = true;
  $("figures").hidden = false;
  $("forget-key").hidden = false;
  $("instance-id").textContent = stats.instance_id;
  const updated = $("updated");
  updated.textContent = new Date(stats.generated_at).toLocaleTimeString();
  updated.dateTime = stats.generated_at;
  $("source").textContent = stats.source === "redis"
    ? stats.instances.length + " instances (shared through Redis)"
    : "this instance only";
  const labels = stats.minute_starts.map((iso) => {
    const d = new Date(iso);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  });
  renderCache(stats.cache, labels);
  renderTokens(stats, labels);
  renderRefusals(stats.refusals);
  renderBackends(stats.backends, labels);
  renderTools(stats.mcp, stats.agent_turns_total, stats.agent_sessions_live);
  renderQuota(stats.quota);
  renderInstances(stats.instances, stats.instance_id);
  $("empty").hidden = !isEmpty(stats);
  document.body.dataset.loaded = "true";
}

function isEmpty(stats) {
  const c = stats.cache;
  return c.total_hits + c.total_misses + c.total_bypasses === 0
    && stats.tokens.length === 0
    && stats.backends.every((b) => b.total_calls === 0)
    && stats.mcp.tools.length === 0
    && stats.agent_turns_total === 0
    && Object.values(stats.refusals.totals).every((n) => n === 0);
}

function renderCache(cache, labels) {
  $("cache-hits").textContent = numbers.format(cache.total_hits);
  $("cache-misses").textContent = numbers.format(cache.total_misses);
  $("cache-bypasses").textContent = numbers.format(cache.total_bypasses);
  $("cache-saved").textContent = numbers.format(cache.total_tokens_saved);
  $("cache-ratio").textContent = cache.hit_ratio === null ? "–" : (cache.hit_ratio * 100).toFixed(1) + "%";
  columnChart($("cache-chart"), "cache", labels, [
    { name: "hits", values: cache.hits, className: "bar-hit" },
    { name: "misses", values: cache.misses, className: "bar-miss" },
  ], "Cache hits and misses per minute over the last hour: " + cache.total_hits + " hits, "
    + cache.total_misses + " misses.");
}

function renderTokens(stats, labels) {
  const series = stats.tokens.map((t, i) => ({
    name: t.subscription,
    values: t.input.map((n, m) => n + t.output[m]),
    color: PALETTE[i % PALETTE.length],
  }));
  lineChart($("tokens-chart"), "tokens", labels, series,
    "Tokens per minute by subscription over the last hour.");
  legend($("tokens-legend"), series.map((s, i) => ({
    name: s.name + ": " + numbers.format(stats.tokens[i].total_input) + " in, "
      + numbers.format(stats.tokens[i].total_output) + " out",
    color: s.color,
  })));
  const budgets = $("budgets");
  budgets.replaceChildren();
  const limit = stats.budget.tokens_per_minute;
  if (stats.budget.subscriptions.length === 0) {
    budgets.append(noneItem("No tokens spent yet."));
  }
  for (const b of stats.budget.subscriptions) {
    const meter = document.createElement("meter");
    meter.min = 0; meter.max = limit; meter.value = b.used;
    meter.low = limit * 0.7; meter.high = limit * 0.9; meter.optimum = 0;
    meter.setAttribute("aria-label", b.subscription + " budget used this minute");
    budgets.append(barItem(b.subscription, meter,
      numbers.format(b.used) + " / " + numbers.format(limit) + " (" + numbers.format(b.remaining) + " left)"));
  }
}

function renderRefusals(refusals) {
  const list = $("refusals");
  list.replaceChildren();
  const reasons = [["budget", "Token budget"], ["quota", "Quota"], ["rate_limit", "Rate limit"],
    ["content", "Content safety"], ["auth", "Key refused"]];
  const max = Math.max(1, ...reasons.map(([k]) => refusals.totals[k]));
  for (const [key, label] of reasons) {
    list.append(barItem(label, hbar(refusals.totals[key], max, label), numbers.format(refusals.totals[key])));
  }
}

function renderBackends(backends, labels) {
  const rows = $("backends");
  rows.replaceChildren();
  if (backends.length === 0) {
    const row = rows.insertRow();
    const cell = row.insertCell();
    cell.colSpan = 5;
    cell.textContent = "No model backend configured or called yet.";
  }
  for (const b of backends) {
    const row = rows.insertRow();
    row.insertCell().textContent = b.backend;
    const state = document.createElement("span");
    state.className = "state " + b.breaker;
    state.textContent = b.breaker.replace("_", "-");
    row.insertCell().append(state);
    row.insertCell().textContent = numbers.format(b.total_calls);
    row.insertCell().textContent = numbers.format(b.total_errors);
    // Bucket bounds: the latency is at most this.
    row.insertCell().textContent = b.p50_ms_hour === null ? "–"
      : "≤" + numbers.format(b.p50_ms_hour) + " / ≤" + numbers.format(b.p95_ms_hour) + " ms";
  }
  const series = backends.map((b, i) => ({
    name: b.backend, values: b.p95_ms.map((v) => v === null ? null : v), color: PALETTE[i % PALETTE.length],
  }));
  lineChart($("latency-chart"), "latency", labels, series,
    "p95 latency per minute by backend over the last hour, in milliseconds.");
  legend($("latency-legend"), series.map((s, i) => ({
    name: s.name + " p95 (" + numbers.format(backends[i].total_errors) + " errors)", color: s.color,
  })));
}

function renderTools(mcp, agentTurns, sessionsLive) {
  const list = $("tools");
  list.replaceChildren();
  if (mcp.tools.length === 0) list.append(noneItem("No tool calls yet."));
  const max = Math.max(1, ...mcp.tools.map((t) => t.total));
  for (const t of mcp.tools) list.append(barItem(t.tool, hbar(t.total, max, t.tool), numbers.format(t.total)));
  $("mcp-limited").textContent = numbers.format(mcp.total_rate_limited);
  $("agent-turns").textContent = numbers.format(agentTurns);
  $("sessions-live").textContent = sessionsLive == null ? "unknown" : numbers.format(sessionsLive);
}

function renderQuota(quota) {
  $("quota-period").textContent = quota.period.replace(/ly$/, "").replace("dai", "day");
  const rows = $("quota");
  rows.replaceChildren();
  if (quota.subscriptions.length === 0) {
    const cell = rows.insertRow().insertCell();
    cell.colSpan = 3;
    cell.textContent = "No usage recorded in this period.";
  }
  for (const s of quota.subscriptions) {
    const row = rows.insertRow();
    row.insertCell().textContent = s.name;
    row.insertCell().textContent = numbers.format(s.total_tokens);
    row.insertCell().textContent = s.cost_usd.toFixed(6);
  }
}

function renderInstances(instances, self) {
  const rows = $("instances");
  rows.replaceChildren();
  for (const i of instances) {
    const row = rows.insertRow();
    const name = row.insertCell();
    const code = document.createElement("code");
    code.textContent = i.instance_id;
    name.append(code);
    if (i.instance_id === self) name.append(" (this one)");
    row.insertCell().textContent = i.seconds_ago === 0 ? "now" : i.seconds_ago + " s ago";
  }
}

// --- drawing ---------------------------------------------------------------------------------

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Charts are drawn at their container's width, so text keeps its size on a phone and a wide
// screen alike; they are redrawn on every refresh and when the window is resized.
let W = 640;
const H = 200, PAD = { left: 44, right: 8, top: 10, bottom: 24 };

function frame(container, name, description, max, labels) {
  W = Math.max(280, Math.round(container.clientWidth || 640));
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "data-chart": name });
  svg.append(el("title", {}, description));
  const plotH = H - PAD.top - PAD.bottom;
  for (const fraction of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - fraction);
    svg.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "axis" }));
    svg.append(el("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, compact(max * fraction)));
  }
  const step = (W - PAD.left - PAD.right) / labels.length;
  labels.forEach((label, i) => {
    const last = i === labels.length - 1;
    if (last || (i % 15 === 0 && i < labels.length - 8)) {
      const x = last ? W - PAD.right : PAD.left + step * (i + 0.5);
      svg.append(el("text", { x, y: H - 6, "text-anchor": last ? "end" : "middle" }, label));
    }
  });
  container.replaceChildren(svg);
  return { svg, step, plotH };
}

function columnChart(container, name, labels, series, description) {
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const { svg, step, plotH } = frame(container, name, description, max, labels);
  const width = Math.max(1, (step - 2) / series.length);
  labels.forEach((label, i) => {
    series.forEach((s, k) => {
      const value = s.values[i] || 0;
      if (value === 0) return;
      const h = Math.max(1, (value / max) * plotH);
      const bar = el("rect", {
        x: PAD.left + step * i + 1 + k * width, y: PAD.top + plotH - h, width, height: h,
        class: "bar " + s.className,
      });
      bar.append(el("title", {}, `${label}: ${value} ${s.name}`));
      svg.append(bar);
    });
  });
  if (series.every((s) => s.values.every((v) => !v))) noData(svg);
}

function lineChart(container, name, labels, series, description) {
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null))));
  const { svg, step, plotH } = frame(container, name, description, max, labels);
  for (const s of series) {
    let path = "";
    let pen = "M";
    s.values.forEach((value, i) => {
      if (value === null) { pen = "M"; return; }
      const x = PAD.left + step * (i + 0.5);
      const y = PAD.top + plotH - (value / max) * plotH;
      path += `${pen}${x.toFixed(1)},${y.toFixed(1)} `;
      pen = "L";
    });
    if (path) {
      const line = el("path", { d: path, fill: "none", stroke: s.color, "stroke-width": 2, class: "series" });
      line.append(el("title", {}, s.name));
      svg.append(line);
      s.values.forEach((value, i) => {
        if (value) svg.append(el("circle", { cx: PAD.left + step * (i + 0.5), cy: PAD.top + plotH - (value / max) * plotH, r: 2.5, fill: s.color }));
      });
    }
  }
  if (series.every((s) => s.values.every((v) => !v))) noData(svg);
}

function noData(svg) {
  svg.append(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "nodata" }, "Nothing in the last hour yet"));
}

function hbar(value, max, label) {
  const svg = el("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none", role: "img", height: 12, width: "100%" });
  svg.append(el("title", {}, `${label}: ${value}`));
  svg.append(el("rect", { x: 0, y: 0, width: 100, height: 10, fill: "currentColor", opacity: 0.1 }));
  if (value > 0) svg.append(el("rect", { x: 0, y: 0, width: Math.max(1, (value / max) * 100), height: 10, fill: PALETTE[0] }));
  return svg;
}

function barItem(name, graphic, value) {
  const item = document.createElement("li");
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = name;
  label.title = name;
  const figure = document.createElement("span");
  figure.className = "value";
  figure.textContent = value;
  item.append(label, graphic, figure);
  return item;
}

function noneItem(text) {
  const item = document.createElement("li");
  item.className = "none";
  item.textContent = text;
  return item;
}

function legend(container, items) {
  container.replaceChildren();
  for (const { name, color } of items) {
    const item = document.createElement("span");
    item.className = "item";
    const swatch = el("svg", { width: 12, height: 12, "aria-hidden": "true" });
    swatch.append(el("rect", { width: 12, height: 12, rx: 2, fill: color }));
    item.append(swatch, " " + name);
    container.append(item);
  }
}

function niceMax(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (value <= m * magnitude) return m * magnitude;
  return 10 * magnitude;
}

function compact(value) {
  if (value >= 1e6) return (value / 1e6).toFixed(value % 1e6 ? 1 : 0) + "M";
  if (value >= 1e3) return (value / 1e3).toFixed(value % 1e3 ? 1 : 0) + "k";
  return String(Math.round(value * 10) / 10);
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("key-input").value = "";
    refresh();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    askForKey("The key is forgotten.");
  });
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { if (lastStats && !$("figures").hidden) render(lastStats); }, 150);
  });
  if (readKey()) refresh(); else askForKey();
});
