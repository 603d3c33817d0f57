// TradeBot backtests: the stored runs, one run's report, two runs compared (through /api).
"use strict";

const COLOURS = ["#58a6ff", "#f2cc60"];
const SHOWN = ["return_pct", "benchmark_return_pct", "cagr_pct", "sharpe", "sortino", "max_drawdown_pct",
  "win_rate_pct", "profit_factor", "exposure_pct", "trades", "fees", "events", "final_equity"];
const state = { runs: [], chosen: [], chart: null, lines: [] };

const shown = (v) => (v === null || v === undefined ? "–" : typeof v === "number" ? String(Math.round(v * 100) / 100) : String(v));
const day = (t) => new Date(t).toISOString().slice(0, 16).replace("T", " ");

async function loadRuns() {
  const answer = await api("backtests?limit=200");
  if (!answer.ok) return;
  state.runs = await answer.json();
  $("#run-count").textContent = `${state.runs.length} stored`;
  $("#runs tbody").replaceChildren(...state.runs.map((run) => {
    const m = run.metrics || {};
    const pick = el("input", { type: "checkbox", checked: state.chosen.includes(run.id), title: "choose to compare" });
    pick.onclick = (event) => { event.stopPropagation(); choose(run.id, pick.checked); };
    const row = el("tr", { "data-run": String(run.id), "data-status": run.status },
      el("td", {}, pick), el("td", {}, run.id), el("td", {}, run.strategy),
      el("td", { title: run.error || "" }, run.status), el("td", {}, run.symbols.join(", ") || "all"),
      el("td", {}, `${day(run.start_time)} → ${day(run.end_time)}`), ...["return_pct", "sharpe", "max_drawdown_pct", "trades",
        "win_rate_pct"].map((k) => el("td", {}, shown(m[k]))));
    row.onclick = () => showReports([run.id]);
    return row;
  }));
}

function choose(id, on) {
  state.chosen = on ? [...state.chosen.filter((c) => c !== id), id].slice(-2) : state.chosen.filter((c) => c !== id);
  $("#compare").disabled = state.chosen.length !== 2;
  for (const box of document.querySelectorAll("#runs input[type=checkbox]")) {
    box.checked = state.chosen.includes(Number(box.closest("tr").dataset.run));
  }
}

async function showReports(ids) {
  const reports = await Promise.all(ids.map(async (id) => (await api(`backtests/${id}`)).json()));
  $("#report-title").textContent = reports.length === 1 ? `Run ${reports[0].id} · ${reports[0].strategy}`
    : `Runs ${reports.map((r) => r.id).join(" vs ")}`;
  $("#report-panel").dataset.runs = ids.join(",");
  for (const line of state.lines) state.chart.removeSeries(line);
  state.lines = reports.map((report, index) => {
    const line = state.chart.addSeries(LightweightCharts.LineSeries, { color: COLOURS[index], lineWidth: 2, title: `#${report.id}` });
    const seen = new Map(report.equity.map(([time, value]) => [Math.floor(Date.parse(time) / 1000), value]));
    line.setData([...seen].map(([time, value]) => ({ time, value })));
    return line;
  });
  state.chart.timeScale().fitContent();
  $("#report-metrics thead").replaceChildren(el("tr", {}, el("th", {}, "metric"), ...reports.map((r) => el("th", {}, `#${r.id}`))));
  const params = el("tr", {}, el("td", {}, "params"), ...reports.map((r) => el("td", { class: "params" }, JSON.stringify(r.params))));
  $("#report-metrics tbody").replaceChildren(params, ...SHOWN.map((key) => el("tr", { "data-metric": key },
    el("td", {}, key), ...reports.map((r) => el("td", {}, shown(r.metrics[key]))))));
  $("#report-trades tbody").replaceChildren(...reports[0].trades.slice(0, 500).map((t) => el("tr", {},
    el("td", {}, t.symbol), el("td", {}, `${shown(t.entry_price)} ${day(t.entry_time)}`),
    el("td", {}, `${shown(t.exit_price)} ${day(t.exit_time)}`), el("td", {}, shown(t.quantity)),
    el("td", { class: t.pnl >= 0 ? "up" : "down" }, shown(t.pnl)), el("td", {}, t.exit_reason))));
}

async function startRun(event) {
  event.preventDefault();
  const token = $("#new-token").value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  const end = new Date();
  const start = new Date(end.getTime() - Number($("#new-hours").value) * 3600 * 1000);
  const symbols = $("#new-symbols").value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = { strategy: $("#new-strategy").value.trim(), start: start.toISOString(), end: end.toISOString(),
    ...(symbols.length ? { symbols } : {}) };
  const answer = await api("backtests", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const reply = await answer.json().catch(() => ({}));
  $("#run-message").textContent = answer.ok ? `run ${reply.id} started` : `refused: ${JSON.stringify(reply.detail)}`;
  loadRuns();
}

function start() {
  state.chart = LightweightCharts.createChart($("#report-chart"), {
    autoSize: true,
    layout: { background: { color: "#161b22" }, textColor: "#c9d1d9", attributionLogo: true },
    grid: { vertLines: { color: "#21262d" }, horzLines: { color: "#21262d" } },
    timeScale: { timeVisible: true, borderColor: "#30363d" },
  });
  $("#compare").onclick = () => showReports(state.chosen);
  $("#new-run").onsubmit = startRun;
  $("#new-token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  loadRuns();
  setInterval(loadRuns, 5000);
}

start();
