/// The streaming page served at `/`: one self-contained HTML document (no external scripts, styles or fonts) that
/// polls `/api/status`, `/api/batches` and `/api/top` every second and draws its charts as inline SVG, like the
/// Streaming tab of Spark's web UI.
enum StreamingPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sluice · streaming</title>
<style>
  :root { --fg:#1d2733; --muted:#6b7785; --line:#dfe4ea; --accent:#2f6fde; --warn:#c4462c; --ok:#2e8b57; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #f6f8fa; }
  header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px; background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { margin: 0; font-size: 20px; }
  header .meta { color: var(--muted); }
  #health { padding: 2px 10px; border-radius: 10px; color: #fff; background: var(--muted); font-weight: 600; }
  #health.ok { background: var(--ok); } #health.bad { background: var(--warn); }
  main { padding: 16px 24px; display: grid; gap: 16px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
  .card .label { color: var(--muted); font-size: 12px; }
  .card .value { font-size: 18px; font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 10px; }
  .panel { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
  .panel h2 { margin: 0 0 6px; font-size: 14px; }
  .panel h2 span { color: var(--muted); font-weight: normal; }
  svg { width: 100%; height: 150px; display: block; }
  svg .axis { stroke: var(--line); } svg text { fill: var(--muted); font-size: 10px; }
  svg polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; }
  svg .point { fill: var(--accent); } svg .point.replay { fill: var(--muted); }
  svg .limit { stroke: var(--warn); stroke-dasharray: 4 3; }
  .tables { display: grid; grid-template-columns: 2fr 1fr 1fr; gap: 10px; }
  table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align: right; padding: 3px 6px; border-bottom: 1px solid var(--line); }
  th:first-child, td:first-child { text-align: left; }
  th { color: var(--muted); font-weight: 600; font-size: 12px; }
  #error { color: var(--warn); }
</style>
</head>
<body>
<header>
  <h1>sluice</h1>
  <span id="health">…</span>
  <span class="meta" id="meta"></span>
  <span class="meta" id="updated"></span>
  <span id="error"></span>
</header>
<main>
  <section class="cards" id="cards"></section>
  <section class="charts">
    <div class="panel"><h2>Input rate <span>records/s per batch</span></h2><svg id="chart-rate"></svg></div>
    <div class="panel"><h2>Processing time <span>ms per batch; dashed: interval</span></h2><svg id="chart-processing"></svg></div>
    <div class="panel"><h2>Scheduling delay <span>ms per batch</span></h2><svg id="chart-delay"></svg></div>
  </section>
  <section class="tables">
    <div class="panel"><h2>Recent batches <span>newest first</span></h2>
      <table><thead><tr><th>batch time</th><th>records</th><th>processing ms</th><th>delay ms</th><th>output</th><th>malformed</th><th>late</th></tr></thead>
      <tbody id="batches"></tbody></table></div>
    <div class="panel"><h2>Partitions <span>consumer lag</span></h2>
      <table><thead><tr><th>partition</th><th>lag</th></tr></thead><tbody id="partitions"></tbody></table></div>
    <div class="panel"><h2>Top words <span>running totals</span></h2>
      <table><thead><tr><th>word</th><th>count</th></tr></thead><tbody id="top"></tbody></table></div>
  </section>
</main>
<script>
"use strict";
const fmt = new Intl.NumberFormat("en");
const time = ms => ms == null ? "–" : new Date(ms).toISOString().replace("T", " ").replace("Z", "");
const bytes = n => n == null ? "off" : n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
const esc = s => String(s).replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

function chart(id, batches, value, limit) {
  const svg = document.getElementById(id);
  const width = svg.clientWidth || 400, height = 150, left = 44, bottom = 16, top = 8;
  const values = batches.map(value);
  const max = Math.max(1, limit || 0, ...values) * 1.1;
  const x = i => left + (batches.length < 2 ? 0 : i * (width - left - 6) / (batches.length - 1));
  const y = v => top + (height - top - bottom) * (1 - v / max);
  let out = `<line class="axis" x1="${left}" y1="${y(0)}" x2="${width}" y2="${y(0)}"/>`;
  out += `<text x="${left - 4}" y="${y(max / 1.1) + 3}" text-anchor="end">${fmt.format(Math.round(max / 1.1))}</text>`;
  out += `<text x="${left - 4}" y="${y(0) + 3}" text-anchor="end">0</text>`;
  if (limit) out += `<line class="limit" x1="${left}" y1="${y(limit)}" x2="${width}" y2="${y(limit)}"/>`;
  out += `<polyline points="${values.map((v, i) => x(i) + "," + y(v)).join(" ")}"/>`;
  values.forEach((v, i) => {
    out += `<circle class="point${batches[i].isReplay ? " replay" : ""}" cx="${x(i)}" cy="${y(v)}" r="2.5"><title>${time(batches[i].batchTime)}: ${fmt.format(Math.round(v))}</title></circle>`;
  });
  if (batches.length) out += `<text x="${width - 4}" y="${height - 3}" text-anchor="end">${time(batches[batches.length - 1].batchTime).slice(11, 19)}</text>`;
  svg.innerHTML = out;
  svg.setAttribute("data-points", values.length);
}

function render(status, batches, top) {
  const interval = batches.batchIntervalMs;
  const list = batches.batches;
  const health = document.getElementById("health");
  health.textContent = status.healthy ? (status.ready ? "healthy · ready" : "healthy · not ready") : "unhealthy";
  health.className = status.healthy ? "ok" : "bad";
  document.getElementById("meta").textContent = `${status.mode} · group ${status.group} · input ${status.inputTopics.join(", ")} · batch ${interval} ms`;
  document.getElementById("updated").textContent = "updated " + time(status.time).slice(11, 19);
  document.getElementById("error").textContent = status.failure || "";
  const t = status.totals, cp = status.lastCheckpoint;
  const cards = [
    ["Input rate", fmt.format(Math.round(status.inputRecordsPerSecond)) + " rec/s"],
    ["Batches", fmt.format(t.batches)],
    ["Records", fmt.format(t.records)],
    ["Output records", fmt.format(t.outputRecords)],
    ["Watermark (UTC)", status.watermark == null ? "–" : status.watermark > 8e15 ? "end of input" : time(status.watermark).slice(11)],
    ["Last checkpoint", cp ? `${Math.max(0, Math.round((status.time - cp.writtenAt) / 1000))} s ago` : "none yet", cp ? `batch ${time(cp.batchTime)}` : ""],
    ["Backlog", bytes(status.backlogBytes)],
    ["Input held", bytes(status.heldInputBytes), "backlog and unread blocks"],
    ["WAL on disk", bytes(status.walBytes)],
    ["Assigned partitions", status.partitions.length],
    ["Late records", fmt.format(t.lateRecords)],
    ["Malformed records", fmt.format(t.malformedRecords)],
    ["Future records", fmt.format(t.futureRecords)],
    ["Distinct words", fmt.format(status.distinctWords)],
  ];
  document.getElementById("cards").innerHTML = cards.map(([label, value, detail]) =>
    `<div class="card"><div class="label">${label}</div><div class="value" title="${esc(detail || value)}">${esc(value)}</div></div>`).join("");
  chart("chart-rate", list, b => b.records * 1000 / interval);
  chart("chart-processing", list, b => b.processingMilliseconds, interval);
  chart("chart-delay", list, b => b.schedulingDelayMilliseconds);
  document.getElementById("batches").innerHTML = list.slice(-20).reverse().map(b =>
    `<tr><td>${time(b.batchTime)}${b.isReplay ? " (replay)" : ""}</td><td>${fmt.format(b.records)}</td><td>${b.processingMilliseconds.toFixed(1)}</td>` +
    `<td>${fmt.format(b.schedulingDelayMilliseconds)}</td><td>${fmt.format(b.outputRecords)}</td><td>${b.malformedRecords}</td><td>${b.lateRecords}</td></tr>`).join("");
  document.getElementById("partitions").innerHTML = status.partitions.map(p =>
    `<tr><td>${esc(p.topic)}-${p.partition}</td><td>${p.lag == null ? "–" : fmt.format(p.lag)}</td></tr>`).join("");
  document.getElementById("top").innerHTML = top.top.map(w =>
    `<tr><td>${esc(w.word)}</td><td>${fmt.format(w.count)}</td></tr>`).join("");
}

async function refresh() {
  try {
    const [status, batches, top] = await Promise.all(["/api/status", "/api/batches", "/api/top?n=15"].map(async path => {
      const response = await fetch(path, { cache: "no-store" });
      if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
      return response.json();
    }));
    render(status, batches, top);
  } catch (error) {
    document.getElementById("error").textContent = "cannot reach sluice: " + error.message;
  }
  setTimeout(refresh, 1000);
}
refresh();
</script>
</body>
</html>
"""#
}
