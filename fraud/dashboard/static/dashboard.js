// Live dashboard: polls the JSON endpoints and redraws. Every value from the data is set with
// textContent or as an SVG attribute, never as HTML.
"use strict";

const REFRESH_MS = Number(document.body.dataset.refreshMs) || 5000;
const SVG = "http://www.w3.org/2000/svg";
const COLORS = { count: "#3a7bd5", amount: "#2e9d6a", approve: "#3a7bd5", review: "#e0a100", block: "#d64545",
                 fraud: "#d64545", genuine: "#3a7bd5", precision: "#7a4cc2", recall: "#2e9d6a",
                 delivery: "#8a93a6", decision: "#3a7bd5" };

function element(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

const number = (v, digits = 0) => (v === null || v === undefined || Number.isNaN(v)) ? "–"
  : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const percent = (v) => (v === null || v === undefined) ? "–" : `${(100 * v).toFixed(1)}%`;
const shortTime = (iso) => iso ? iso.replace("T", " ").slice(5, 16) : "";

// One chart: labels on x, one or more series; kind "line", "bars" (grouped) or "stacked".
function drawChart(container, labels, series, kind = "line") {
  container.replaceChildren();
  const points = series.reduce((n, s) => n + s.values.filter((v) => v).length, 0);  // non-zero values drawn
  container.dataset.points = String(points);
  if (!labels.length || !points) {
    container.append(element("div", "no data yet", { class: "empty" }));
    return;
  }
  const W = 560, H = 210, L = 52, R = 10, T = 22, B = 34;
  const plotW = W - L - R, plotH = H - T - B;
  const totals = labels.map((_, i) => kind === "stacked"
    ? series.reduce((sum, s) => sum + (s.values[i] || 0), 0)
    : Math.max(...series.map((s) => s.values[i] || 0)));
  const top = Math.max(...totals) || 1;
  const y = (v) => T + plotH - (v / top) * plotH;
  const step = plotW / labels.length;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  root.append(svg("line", { x1: L, y1: T + plotH, x2: W - R, y2: T + plotH, class: "axis" }));
  root.append(svg("line", { x1: L, y1: T, x2: L, y2: T + plotH, class: "axis" }));
  for (const v of [0, top / 2, top]) {
    root.append(svg("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end", class: "tick" },
                    top < 10 ? number(v, 2) : number(v)));
  }
  const every = Math.max(1, Math.ceil(labels.length / 6));
  labels.forEach((label, i) => {
    if (i % every === 0) {
      root.append(svg("text", { x: L + step * (i + 0.5), y: H - B + 14, "text-anchor": "middle", class: "tick" }, label));
    }
  });
  series.forEach((s, k) => {
    const color = COLORS[s.key] || "#555";
    root.append(svg("rect", { x: L + 4 + k * 90, y: 4, width: 10, height: 10, fill: color }));
    root.append(svg("text", { x: L + 18 + k * 90, y: 13, class: "legend" }, s.name));
    if (kind === "line") {
      const coords = s.values.map((v, i) => (v === null || v === undefined) ? null : `${L + step * (i + 0.5)},${y(v)}`);
      root.append(svg("polyline", { points: coords.filter(Boolean).join(" "), fill: "none", stroke: color,
                                    "stroke-width": 2 }));
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) return;
        const dot = svg("circle", { cx: L + step * (i + 0.5), cy: y(v), r: 2.5, fill: color });
        dot.append(svg("title", {}, `${labels[i]}: ${s.name} ${number(v, top < 10 ? 3 : 0)}`));
        root.append(dot);
      });
    }
  });
  if (kind !== "line") {
    labels.forEach((label, i) => {
      let base = 0;
      series.forEach((s, k) => {
        const v = s.values[i] || 0;
        const width = kind === "stacked" ? step * 0.8 : (step * 0.8) / series.length;
        const x = L + step * i + step * 0.1 + (kind === "stacked" ? 0 : k * width);
        const y0 = kind === "stacked" ? base : 0;
        const bar = svg("rect", { x, y: y(y0 + v), width: Math.max(1, width), height: Math.max(0, y(y0) - y(y0 + v)),
                                  fill: COLORS[s.key] || "#555" });
        bar.append(svg("title", {}, `${label}: ${s.name} ${number(v, top < 10 ? 3 : 0)}`));
        root.append(bar);
        if (kind === "stacked") base += v;
      });
    });
  }
  container.append(root);
}

function kpis(container, items) {
  container.replaceChildren(...items.map(([label, value]) => {
    const box = element("div", null, { class: "kpi" });
    box.append(element("b", value), element("span", label));
    return box;
  }));
}

async function load(section, url, render) {
  const box = document.querySelector(`#${section} .error`);
  try {
    const response = await fetch(url, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    box.hidden = true;
    render(body);
    return true;
  } catch (error) {
    box.textContent = error.message.startsWith("Failed to fetch")
      ? "the dashboard server does not answer" : error.message;
    box.hidden = false;
    return false;
  }
}

function renderPatterns(data) {
  document.querySelector("#patterns .window").textContent =
    data.window_end ? `event time up to ${data.window_end.replace("T", " ").slice(0, 19)}` : "";
  const labels = data.timeline.map((b) => shortTime(b.time));
  drawChart(document.getElementById("chart-rate"), labels,
            [{ key: "count", name: "transactions", values: data.timeline.map((b) => b.count) }]);
  drawChart(document.getElementById("chart-amount"), labels,
            [{ key: "amount", name: "amount", values: data.timeline.map((b) => b.amount) }]);
  drawChart(document.getElementById("chart-hour"), data.by_hour.map((b) => `${b.hour}h`),
            [{ key: "count", name: "transactions", values: data.by_hour.map((b) => b.count) }], "bars");
  drawChart(document.getElementById("chart-decisions"), data.decisions.map((b) => shortTime(b.time)),
            ["review", "block"].map((d) => ({ key: d, name: d, values: data.decisions.map((b) => b[d]) })), "stacked");
}

const seenAlerts = new Set();
function renderAlerts(data) {
  document.getElementById("alert-count").textContent = `${number(data.total)} matching`;
  const rows = data.alerts.map((a) => {
    const row = element("tr", null, { "data-transaction-id": a.transaction_id });
    if (seenAlerts.size && !seenAlerts.has(a.transaction_id)) row.className = "new";
    const cells = [shortTime(a.scored_at), a.transaction_id, (a.tx_datetime || "").replace("T", " ").slice(0, 19),
                   a.customer_id, a.terminal_id, number(a.tx_amount, 2), number(a.fraud_score, 3), a.decision,
                   a.reason_codes, a.tx_fraud === undefined || a.tx_fraud === null ? "pending"
                     : (a.tx_fraud ? "fraud" : "genuine")];
    cells.forEach((value, i) => {
      const cell = element("td", value);
      if (i === 7) cell.className = `decision-${a.decision}`;
      if (i === 8) cell.className = "reasons";
      row.append(cell);
    });
    return row;
  });
  data.alerts.forEach((a) => seenAlerts.add(a.transaction_id));
  document.querySelector("#alerts tbody").replaceChildren(...rows);
}

function renderPerformance(data) {
  document.querySelector("#performance .window").textContent = data.window_end
    ? `last ${data.days} days of labelled transactions, up to ${data.window_end.slice(0, 10)}` : "";
  kpis(document.getElementById("kpi-performance"), [
    ["labelled transactions", number(data.labelled)], ["precision (review + block)", percent(data.precision)],
    ["recall (review + block)", percent(data.recall)], ["average precision", number(data.average_precision, 3)],
    ["frauds caught", number(data.caught)], ["frauds missed", number(data.missed)]]);
  const days = data.daily.map((d) => d.day.slice(5));
  drawChart(document.getElementById("chart-pr"), days,
            ["precision", "recall"].map((k) => ({ key: k, name: k, values: data.daily.map((d) => d[k]) })));
  const totals = { fraud: 0, genuine: 0 };
  data.distribution.forEach((b) => { totals.fraud += b.fraud; totals.genuine += b.genuine; });
  drawChart(document.getElementById("chart-scores"), data.distribution.map((b) => b.score_from.toFixed(2)),
            ["genuine", "fraud"].map((k) => ({ key: k, name: k,
              values: data.distribution.map((b) => totals[k] ? b[k] / totals[k] : 0) })), "bars");
  const matrix = document.getElementById("matrix");
  const head = element("tr");
  head.append(element("th", "decision"), element("th", "fraud"), element("th", "genuine"));
  const rows = ["block", "review", "approve"].filter((d) => data.matrix[d]).map((d) => {
    const row = element("tr");
    row.append(element("th", d), element("td", number(data.matrix[d].fraud || 0)),
               element("td", number(data.matrix[d].genuine || 0)));
    return row;
  });
  matrix.replaceChildren(head, ...rows);
  matrix.dataset.points = String(rows.length);
}

function renderHealth(data) {
  const decision = data.latest["fraud-decision"] || {};
  const busy = data.latest_with_data["fraud-decision"] || {};
  kpis(document.getElementById("kpi-health"), [
    ["consumer lag (records)", number(decision.offsets_behind)],
    ["last decision batch with data", busy.duration_ms === undefined ? "–" : `${number(busy.duration_ms / 1000, 1)} s`],
    ["records/s in it", number(busy.processed_rows_per_second)],
    ["state: cards and terminals", number(decision.state_keys)],
    ["state: transactions kept", number(decision.state_records)],
    ["state size (MB)", decision.state_bytes === undefined || decision.state_bytes === null ? "–"
      : number(decision.state_bytes / 1e6, 1)],
    ["dead letters", number(data.dead_letters)]]);
  const queries = ["fraud-decision", "fraud-delivery"];
  const times = [...new Set(data.batches.map((b) => b.reported_at))].sort();
  const series = (field, scale = 1) => queries.map((q) => {
    const byTime = new Map(data.batches.filter((b) => b.query_name === q).map((b) => [b.reported_at, b[field]]));
    return { key: q.replace("fraud-", ""), name: q.replace("fraud-", ""),
             values: times.map((t) => byTime.has(t) ? byTime.get(t) / scale : null) };
  });
  drawChart(document.getElementById("chart-duration"), times.map((t) => t.slice(11, 19)), series("duration_ms", 1000));
  drawChart(document.getElementById("chart-throughput"), times.map((t) => t.slice(11, 19)),
            series("processed_rows_per_second"));
  const reasons = document.getElementById("dead-letter-reasons");
  reasons.replaceChildren(...(data.dead_letter_reasons.length
    ? data.dead_letter_reasons.map((r) => element("li", `${number(r.n)} × ${r.reason}`))
    : [element("li", "none")]));
}

let scoringStatus = {};
function renderStatus() {
  const s = scoringStatus;
  const latency = s.latency_s ? `Kafka → decision p50 ${number(s.latency_s.p50, 1)} s, p99 ${number(s.latency_s.p99, 1)} s`
    : "no latency yet";
  document.getElementById("status").textContent = [
    `updated ${new Date().toLocaleTimeString()}`, `model ${s.model_version || "–"}`,
    `${number(s.scored)} scored`, latency].join(" · ");
}

function alertsUrl() {
  const params = new URLSearchParams(new FormData(document.getElementById("alert-filters")));
  return `api/alerts?${params}`;
}

async function refresh() {
  await Promise.all([
    load("patterns", "api/patterns", renderPatterns),
    load("detection", alertsUrl(), renderAlerts),
    load("performance", "api/performance", renderPerformance),
    load("health", "api/health", renderHealth),
    fetch("api/scoring", { cache: "no-store" }).then((r) => r.ok ? r.json() : {}).then((s) => { scoringStatus = s; })
      .catch(() => { scoringStatus = {}; }),
  ]);
  renderStatus();
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
}

let timer = null;
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => { await refresh(); schedule(); }, REFRESH_MS);
}

document.getElementById("alert-filters").addEventListener("input", () => {
  seenAlerts.clear();
  load("detection", alertsUrl(), renderAlerts);
});
document.getElementById("alert-filters").addEventListener("submit", (event) => event.preventDefault());
refresh().then(schedule);
