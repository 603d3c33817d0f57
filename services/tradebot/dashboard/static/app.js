// TradeBot dashboard: live frames over one WebSocket (reconnecting by itself), history from /api.
"use strict";

const INTERVAL_SECONDS = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400 };
const FEED_LENGTH = 60;
const TOP_MOVERS = 5;

const state = {
  source: "synthetic",
  prices: {},       // symbol -> latest price update
  references: {},   // symbol -> price 24 h ago (from the API's summary)
  rows: {},         // symbol -> table row
  selected: null,
  interval: "1m",
  lastBar: null,
  retries: 0,
  chart: null,
  series: null,
  volume: null,
  markers: null,     // the candles' buy/sell markers (fills of the selected symbol)
  fills: [],         // those fills
  overlays: {},      // "strategy.reading" -> line series over the candles
  strategies: {},    // name -> {summary, input, params, overlays}
  equityChart: null,
  paused: false,
  firstFrame: null,
  frameArrived: () => {},
};
state.firstFrame = new Promise((resolve) => { state.frameArrived = resolve; });
const OVERLAY_COLOURS = ["#f2cc60", "#a371f7", "#58a6ff", "#ff7b72", "#7ee787", "#ffa657"];

const money = (v) => (v < 0 ? "-" : "") + "$" + Math.abs(v).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const num = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const pct = (v) => (v > 0 ? "+" : "") + v.toFixed(2) + "%";
const clock = (t) => new Date(typeof t === "number" ? t * 1000 : t).toLocaleTimeString([], { hour12: false });
const signClass = (v) => (v > 0 ? "up" : v < 0 ? "down" : "");
const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;
const held = (s) => (s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);


// ---- session ---------------------------------------------------------------------------------

// Every call of this page carries its session cookie (same origin); a 401 means the session has
// ended (expired, logged out elsewhere, or the token rotated), so the login page takes over.
async function call(url, options = {}) {
  const answer = await fetch(url, { credentials: "same-origin", ...options });
  if (answer.status === 401) location.assign("/login?note=expired");
  return answer;
}

// ---- live connection -------------------------------------------------------------------------

function setConnection(value) {
  const badge = $("#ws-state");
  badge.dataset.state = value;
  badge.textContent = value === "open" ? "live" : value === "connecting" ? "connecting…" : "disconnected — retrying";
}

function connect() {
  setConnection("connecting");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws`);
  socket.onopen = () => { state.retries = 0; setConnection("open"); };
  socket.onmessage = (message) => applyFrame(JSON.parse(message.data));
  socket.onclose = async () => {
    setConnection("closed");
    const delay = Math.min(5000, 500 * 2 ** state.retries++);
    try {
      await call("/config"); // a refused socket says nothing; this finds out whether the session ended
    } catch (error) {
      // the dashboard itself is away: keep retrying
    }
    setTimeout(connect, delay);
  };
  socket.onerror = () => socket.close();
}

function applyFrame(frame) {
  state.frameArrived();
  if (frame.type === "snapshot") {
    $("#signals").replaceChildren();
    $("#trades").replaceChildren();
  }
  if (frame.prices) updatePrices(frame.prices);
  for (const event of frame.events || []) addEvent(event);
  if (frame.health) renderHealth(frame.health);
  if (frame.account) renderAccount(frame.account);
}

// ---- prices and market summary ----------------------------------------------------------------

function changeOf(symbol) {
  const reference = state.references[symbol];
  const price = state.prices[symbol].price;
  return reference ? (100 * (price - reference)) / reference : 0;
}

// The Web Animations API restarts a flash without a forced layout per cell (which, for every price
// of every frame, froze the page at a few hundred symbols).
const FLASH = { up: "rgba(38, 166, 154, 0.45)", down: "rgba(239, 83, 80, 0.45)" };
function flash(cell, up) {
  cell.animate([{ background: up ? FLASH.up : FLASH.down }, { background: "transparent" }], { duration: 600 });
}

function updatePrices(updates) {
  const body = $("#prices tbody");
  let added = false;
  for (const [symbol, update] of Object.entries(updates)) {
    const previous = state.prices[symbol];
    state.prices[symbol] = update;
    if (!(symbol in state.references)) state.references[symbol] = update.price;
    let row = state.rows[symbol];
    if (!row) {
      row = el("tr", { "data-symbol": symbol },
        el("td", { class: "symbol" }, symbol), el("td", { class: "price" }), el("td", { class: "change" }),
        el("td", { class: "bid" }), el("td", { class: "ask" }), el("td", { class: "time" }));
      row.onclick = () => selectSymbol(symbol);
      state.rows[symbol] = row;
      body.append(row);
      added = true;
    }
    const cells = row.children;
    cells[1].textContent = num(update.price);
    if (previous && previous.price !== update.price) flash(cells[1], update.price > previous.price);
    const change = changeOf(symbol);
    cells[2].textContent = pct(change);
    cells[2].className = "change " + signClass(change);
    cells[3].textContent = num(update.bid);
    cells[4].textContent = num(update.ask);
    cells[5].textContent = clock(update.time);
    if (symbol === state.selected) updateLastBar(update);
  }
  if (added) {
    [...body.children].sort((a, b) => a.dataset.symbol.localeCompare(b.dataset.symbol)).forEach((r) => body.append(r));
    $("#price-count").textContent = plural(Object.keys(state.prices).length, "symbol");
    if (!state.selected) selectSymbol(Object.keys(state.rows).sort()[0]);
  }
  renderMovers();
}

function renderMovers() {
  const symbols = Object.keys(state.prices);
  const changes = symbols.map((s) => [s, changeOf(s)]).sort((a, b) => b[1] - a[1]);
  const item = ([symbol, change]) => el("li", {}, el("span", { class: "mover" },
    el("span", { class: "what" }, `${symbol} ${num(state.prices[symbol].price)}`),
    el("span", { class: `pct ${signClass(change)}` }, pct(change))));
  $("#gainers").replaceChildren(...changes.filter((c) => c[1] > 0).slice(0, TOP_MOVERS).map(item));
  $("#losers").replaceChildren(...changes.filter((c) => c[1] < 0).reverse().slice(0, TOP_MOVERS).map(item));
  const up = changes.filter((c) => c[1] > 0).length;
  const down = changes.filter((c) => c[1] < 0).length;
  $("#breadth").textContent = `${up} up · ${down} down · vs 24 h ago`;
}

async function loadReferences() {
  try {
    const answer = await call(`/api/sources/${state.source}/summary`);
    if (!answer.ok) return;
    for (const mover of (await answer.json()).symbols) state.references[mover.symbol] = mover.reference_price;
    renderMovers();
  } catch (error) {
    console.warn("summary unavailable", error);
  }
}

// ---- events, account, positions -------------------------------------------------------------

function prepend(list, item) {
  list.prepend(item);
  while (list.children.length > FEED_LENGTH) list.lastChild.remove();
}

function addEvent(event) {
  const side = (s) => el("span", { class: `side-${s}` }, s.toUpperCase());
  if (event.kind === "signal") {
    prepend($("#signals"), el("li", { title: event.reason }, `${clock(event.time)} `, side(event.side),
      ` ${event.symbol} @ ${num(event.price)} · ${event.strategy} (${num(event.strength)})`));
  } else if (event.kind === "fill") {
    prepend($("#trades"), el("li", {}, `${clock(event.time)} fill `, side(event.side),
      ` ${num(event.quantity, 0)} ${event.symbol} @ ${num(event.price)} · fee ${money(event.fee)}`));
    if (event.symbol === state.selected && event.id && !state.fills.some((f) => f.id === event.id)) {
      state.fills.push(event);
      drawMarkers();
    }
  } else if (event.kind === "order" && event.status === "rejected") {
    prepend($("#trades"), el("li", { class: "rejected", title: event.reason },
      `${clock(event.time)} order ${event.side} ${event.symbol} rejected: ${event.reason}`));
  }
}

function renderAccount(account) {
  const figures = [
    ["Equity", money(account.equity)], ["Cash", money(account.cash)],
    ["Total P&L", money(account.total_pnl), account.total_pnl], ["Day P&L", money(account.day_pnl), account.day_pnl],
    ["Realised", money(account.realized_pnl), account.realized_pnl],
    ["Unrealised", money(account.unrealized_pnl), account.unrealized_pnl],
    ["Fees", money(account.fees_paid)], ["Orders", `${account.orders_filled} filled · ${account.orders_rejected} rejected`],
  ];
  $("#account").replaceChildren(...figures.flatMap(([label, text, value]) =>
    [el("dt", {}, label), el("dd", { class: value === undefined ? "" : signClass(value) }, text)]));
  $("#positions tbody").replaceChildren(...account.positions.map((p) => {
    const close = el("button", { class: "close", type: "button", title: `sell ${p.symbol} at its next trade` }, "Close");
    close.onclick = () => sendControl(`close/${encodeURIComponent(p.symbol)}`, `close ${p.symbol}`);
    return el("tr", { "data-symbol": p.symbol },
      el("td", {}, p.symbol), el("td", {}, num(p.quantity, 0)), el("td", {}, num(p.average_price)),
      el("td", {}, num(p.market_price)), el("td", { class: signClass(p.unrealized_pnl) }, money(p.unrealized_pnl)),
      el("td", { class: signClass(p.realized_pnl) }, money(p.realized_pnl)), el("td", {}, close));
  }));
  const pill = $("#trading-state");
  pill.dataset.paused = String(Boolean(account.paused));
  pill.textContent = account.paused ? "paused: no new positions" : "trading";
}

// ---- controls --------------------------------------------------------------------------------

async function sendControl(action, what) {
  const message = $("#control-message");
  const reason = `from the dashboard (${what})`;
  const answer = await api(`controls/${action}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ reason }),
  });
  const body = await answer.json().catch(() => ({}));
  if (answer.status === 401) message.textContent = "sign in: enter the API token (AUTH_TOKEN) above";
  else if (!answer.ok) message.textContent = `${what} refused: ${typeof body.detail === "string" ? body.detail : answer.status}`;
  else message.textContent = `${what} queued (${body.id.slice(0, 8)}): execution applies it with its next batch`;
  message.dataset.status = String(answer.status);
  loadAudit();
  setTimeout(loadAudit, 1500); // by then execution has applied it
}

async function loadAudit() {
  try {
    const rows = await apiJson("audit?limit=30");
    $("#audit").replaceChildren(...rows.map((r) => el("li", { title: r.reason, "data-action": r.action },
      `${clock(r.time)} ${r.action}${r.symbol ? " " + r.symbol : ""} · ${r.actor}${r.reason ? " · " + r.reason : ""}`,
      el("span", { class: r.result ? "result" : "queued" }, r.result ? ` → ${r.result}` : " (queued)"))));
  } catch (error) {
    console.warn("audit unavailable", error);
  }
}

function setupControls() {
  $("#token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("#token-form").onsubmit = (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    $("#control-message").textContent = "token kept for this tab";
  };
  const asks = { flatten: "Sell every position at its next trade?", reset: "Reset the paper account to its starting cash?" };
  for (const button of document.querySelectorAll("[data-control]")) {
    button.onclick = () => {
      const action = button.dataset.control;
      if (asks[action] && !confirm(asks[action])) return;
      sendControl(action, action);
    };
  }
}

// ---- performance: equity, drawdown, closed trades, per symbol and strategy -----------------------

function createEquityChart() {
  const chart = LightweightCharts.createChart($("#equity-chart"), {
    autoSize: true,
    layout: { background: { color: "#161b22" }, textColor: "#c9d1d9", attributionLogo: true },
    grid: { vertLines: { color: "#21262d" }, horzLines: { color: "#21262d" } },
    timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#30363d" },
  });
  const equity = chart.addSeries(LightweightCharts.LineSeries, { color: "#58a6ff", lineWidth: 2, title: "equity" });
  const drawdown = chart.addSeries(LightweightCharts.AreaSeries, {
    lineColor: "#ef5350", topColor: "rgba(239, 83, 80, 0.05)", bottomColor: "rgba(239, 83, 80, 0.4)",
    title: "drawdown %", invertFilledArea: true,
  }, 1);
  chart.panes()[1]?.setHeight(70);
  state.equityChart = { chart, equity, drawdown };
}

function performanceRows(rows) {
  return rows.map((r) => el("tr", { "data-name": r.name }, el("td", {}, r.name), el("td", {}, r.trades),
    el("td", {}, r.win_rate_pct === null ? "–" : num(r.win_rate_pct, 1)),
    el("td", { class: signClass(r.pnl) }, money(r.pnl)), el("td", {}, money(r.fees))));
}

async function loadPerformance() {
  try {
    const [points, performance, trades] = await Promise.all([apiJson("equity"), apiJson("performance"), apiJson("trades?limit=200")]);
    const { chart, equity, drawdown } = state.equityChart;
    const at = (p) => Math.floor(Date.parse(p.time) / 1000);
    equity.setData(points.map((p) => ({ time: at(p), value: p.equity })));
    drawdown.setData(points.map((p) => ({ time: at(p), value: p.drawdown_pct })));
    if (points.length) chart.timeScale().fitContent();
    $("#equity-chart").dataset.points = String(points.length);
    const worst = points.reduce((low, p) => Math.min(low, p.drawdown_pct), 0);
    $("#equity-summary").textContent = points.length
      ? `${plural(points.length, "snapshot")} · max drawdown ${num(worst)}%` : "no snapshots yet";
    $("#by-symbol tbody").replaceChildren(...performanceRows(performance.by_symbol));
    $("#by-strategy tbody").replaceChildren(...performanceRows(performance.by_strategy));
    $("#closed-count").textContent = `${plural(performance.trades, "trade")} · ${money(performance.pnl)}`;
    $("#closed-trades tbody").replaceChildren(...trades.map((t) => el("tr", { "data-symbol": t.symbol },
      el("td", {}, t.symbol), el("td", {}, t.strategy), el("td", { title: t.entry_time }, `${num(t.entry_price)} ${clock(t.entry_time)}`),
      el("td", { title: t.exit_time }, `${num(t.exit_price)} ${clock(t.exit_time)}`), el("td", {}, num(t.quantity, 0)),
      el("td", { class: `pnl ${signClass(t.pnl)}` }, money(t.pnl)), el("td", {}, held(t.holding_seconds)),
      el("td", { class: "reason" }, t.exit_reason))));
  } catch (error) {
    console.warn("performance unavailable", error);
  }
}

// ---- strategies ------------------------------------------------------------------------------

async function loadStrategyConfig() {
  try {
    const list = await apiJson("strategies");
    state.strategies = Object.fromEntries(list.map((s) => [s.name, s]));
  } catch (error) {
    console.warn("strategies unavailable", error);
  }
}

function readingText(values) {
  return Object.entries(values).map(([k, v]) => `${k} ${v === null ? "–" : num(v)}`).join(" · ");
}

async function loadReadings() {
  let readings;
  try {
    readings = await apiJson("strategies/readings");
  } catch (error) {
    console.warn("readings unavailable", error);
    return;
  }
  $("#strategies").replaceChildren(...Object.values(state.strategies).map((s) => {
    const params = Object.entries(s.params).map(([k, v]) => `${k}=${v}`).join(", ");
    const rows = readings.filter((r) => r.strategies[s.name]).map((r) => {
      const reading = r.strategies[s.name];
      const last = reading.last_signal;
      return el("tr", { "data-symbol": r.symbol }, el("td", {}, r.symbol), el("td", { class: "values" }, readingText(reading.values)),
        el("td", { title: last ? last.reason : "" }, last ? `${last.side} ${clock(last.time)}` : "–"));
    });
    return el("div", { class: "strategy", "data-strategy": s.name },
      el("h3", {}, `${s.name} · ${s.input}`), el("div", { class: "params" }, `${s.summary}. ${params}`),
      el("div", { class: "wide scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, el("th", {}, "Symbol"), el("th", {}, "Indicators now"), el("th", {}, "Last signal"))),
        el("tbody", {}, ...rows))));
  }));
}

// ---- streams ---------------------------------------------------------------------------------

async function loadStreams() {
  try {
    const streams = await apiJson("streams");
    $("#streams tbody").replaceChildren(...streams.map((s) => el("tr", { "data-stream": s.stream },
      el("td", {}, s.stream), el("td", {}, s.length.toLocaleString()),
      el("td", { class: s.dead_letters ? "down" : "" }, s.dead_letters.toLocaleString()),
      el("td", { class: "groups" }, s.groups.map((g) =>
        `${g.group}: ${g.pending} pending · ${g.lag === null ? "" : g.lag + " entries, "}${(g.lag_ms / 1000).toFixed(1)} s behind`).join("; ") || "–"))));
  } catch (error) {
    console.warn("streams unavailable", error);
  }
}

// ---- system health ---------------------------------------------------------------------------

function age(seconds) {
  if (seconds === null || seconds === undefined) return "no heartbeat";
  return seconds < 90 ? `${Math.round(seconds)} s ago` : `${(seconds / 60).toFixed(1)} min ago`;
}

async function resetErrors(service) {
  const answer = await call(`/services/${encodeURIComponent(service)}/reset-errors`, { method: "POST" });
  if (!answer.ok) console.warn("reset failed", service, answer.status);
}

// What failed, in the service's words: the reason of its newest counted error (a dead letter, a
// provider's refusal) while errors are counted, and whatever it says of its state.
function reasons(s) {
  const said = [];
  if (s.error_count > 0 && s.last_error) {
    const when = s.last_error_at ? ` (${age((Date.now() - Date.parse(s.last_error_at)) / 1000)})` : "";
    said.push(`last error${when}: ${s.last_error}`);
  }
  if (s.message && s.message !== s.last_error) said.push(s.message);
  return said.map((text) => el("div", { class: "detail reason", title: text }, text));
}

function renderHealth(services) {
  $("#health").replaceChildren(...services.map((s) => {
    const card = el("div", { class: `service state-${s.state}`, "data-service": s.service, "data-state": s.state },
      el("div", { class: "name" }, s.name, ...(s.active_market_data ? [el("span", { class: "active" }, "active")] : [])),
      el("div", { class: "detail" }, `${s.state} · ${age(s.heartbeat_age)}`),
      el("div", { class: "detail" }, `errors: ${s.error_count}${s.status ? " · " + s.status : ""}`),
      ...reasons(s));
    if (s.error_count > 0) {
      const button = el("button", { class: "reset", type: "button" }, "reset errors");
      button.onclick = () => resetErrors(s.service);
      card.append(button);
    }
    return card;
  }));
}

// ---- candlestick chart -----------------------------------------------------------------------

function createChart() {
  const container = $("#chart");
  state.chart = LightweightCharts.createChart(container, {
    autoSize: true,
    layout: { background: { color: "#161b22" }, textColor: "#c9d1d9", attributionLogo: true },
    grid: { vertLines: { color: "#21262d" }, horzLines: { color: "#21262d" } },
    timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#30363d" },
    rightPriceScale: { borderColor: "#30363d" },
  });
  state.series = state.chart.addSeries(LightweightCharts.CandlestickSeries, {
    upColor: "#26a69a", downColor: "#ef5350", borderVisible: false, wickUpColor: "#26a69a", wickDownColor: "#ef5350",
  });
  state.volume = state.chart.addSeries(LightweightCharts.HistogramSeries, {
    priceFormat: { type: "volume" }, color: "rgba(139, 148, 158, 0.5)", title: "volume",
  }, 1);
  state.chart.panes()[1]?.setHeight(70);
  state.markers = LightweightCharts.createSeriesMarkers(state.series, []);
}

// ---- chart overlays: fills as markers, the strategies' own indicator lines ------------------------

const bucketOf = (seconds) => Math.floor(seconds / INTERVAL_SECONDS[state.interval]) * INTERVAL_SECONDS[state.interval];

function drawMarkers() {
  const markers = state.fills.map((f) => {
    const buy = f.side === "buy";
    return {
      time: bucketOf(typeof f.time === "number" ? f.time : Date.parse(f.time) / 1000),
      position: buy ? "belowBar" : "aboveBar", color: buy ? "#26a69a" : "#ef5350",
      shape: buy ? "arrowUp" : "arrowDown", text: `${buy ? "B" : "S"} ${num(f.quantity, 0)} @ ${num(f.price)}`,
    };
  }).sort((a, b) => a.time - b.time);
  state.markers.setMarkers(markers);
  $("#chart").dataset.markers = String(markers.length);
}

async function loadFills(symbol) {
  try {
    const fills = await apiJson(`fills?symbol=${encodeURIComponent(symbol)}&limit=500`);
    if (symbol !== state.selected) return;
    const stored = new Set(fills.map((f) => f.id));
    state.fills = [...fills, ...state.fills.filter((f) => !stored.has(f.id))]; // and live ones not stored yet
    drawMarkers();
  } catch (error) {
    console.warn("fills unavailable", error);
  }
}

function overlaySeries(key, colour) {
  if (!state.overlays[key]) {
    state.overlays[key] = state.chart.addSeries(LightweightCharts.LineSeries, {
      color: colour, lineWidth: 1, priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false,
    }, 0);
  }
  return state.overlays[key];
}

async function loadOverlays() {
  const symbol = state.selected;
  if (!symbol) return;
  let points;
  try {
    points = await apiJson(`strategies/readings/${encodeURIComponent(symbol)}/history`);
  } catch (error) {
    console.warn("readings unavailable", error);
    return;
  }
  if (symbol !== state.selected) return;
  const lines = {};
  let colour = 0;
  const legend = [];
  for (const [name, strategy] of Object.entries(state.strategies)) {
    for (const reading of strategy.overlays) {
      const key = `${name}.${reading}`;
      const swatch = OVERLAY_COLOURS[colour++ % OVERLAY_COLOURS.length];
      const byTime = new Map();
      for (const point of points) {
        const value = point.strategies[name]?.[reading];
        if (value !== null && value !== undefined) byTime.set(Math.floor(point.time), value);
      }
      lines[key] = [...byTime].map(([time, value]) => ({ time, value }));
      overlaySeries(key, swatch).setData(lines[key]);
      legend.push(el("span", { style: `--swatch: ${swatch}`, "data-overlay": key }, `${name} ${reading}`));
    }
  }
  $("#chart-legend").replaceChildren(...legend);
  $("#chart").dataset.overlayPoints = String(Object.values(lines).reduce((n, line) => n + line.length, 0));
}

function selectSymbol(symbol) {
  if (state.selected) state.rows[state.selected]?.classList.remove("selected");
  state.selected = symbol;
  state.rows[symbol]?.classList.add("selected");
  state.fills = [];
  loadBars();
}

async function loadBars() {
  const symbol = state.selected, interval = state.interval;
  if (!symbol) return;
  $("#chart-symbol").textContent = `${symbol} · ${interval}`;
  const message = $("#chart-message");
  // Until the answer comes, say so: the last chart's count must not read as this one's.
  message.textContent = `loading ${interval} bars…`;
  delete $("#chart").dataset.bars;
  try {
    const answer = await call(`/api/sources/${state.source}/symbols/${encodeURIComponent(symbol)}/bars?interval=${interval}`);
    const body = await answer.json();
    if (symbol !== state.selected || interval !== state.interval) return;  // a later choice owns the chart
    if (!answer.ok) {
      message.textContent = typeof body.detail === "string" ? body.detail : "no bars yet";
      state.series.setData([]);
      state.lastBar = null;
      return;
    }
    const bars = body.bars.map((b) => ({
      time: Date.parse(b.time) / 1000, open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume,
    }));
    state.series.setData(bars);
    state.volume.setData(bars.map((b) => ({
      time: b.time, value: b.volume, color: b.close >= b.open ? "rgba(38, 166, 154, 0.5)" : "rgba(239, 83, 80, 0.5)",
    })));
    loadFills(symbol);
    loadOverlays();
    state.lastBar = bars.length ? { ...bars[bars.length - 1] } : null;
    state.chart.timeScale().fitContent();
    message.textContent = `${plural(bars.length, "bar")} from the API; the last one follows live ticks`;
    $("#chart").dataset.bars = String(bars.length);
  } catch (error) {
    message.textContent = "the API is unreachable; retrying";
    setTimeout(loadBars, 5000);
  }
}

function updateLastBar(update) {
  const width = INTERVAL_SECONDS[state.interval];
  const bucket = Math.floor(update.time / width) * width;
  const last = state.lastBar;
  if (!last || bucket < last.time) return;
  const size = update.size || 0;
  if (bucket === last.time) {
    Object.assign(last, { high: Math.max(last.high, update.price), low: Math.min(last.low, update.price), close: update.price,
      volume: (last.volume || 0) + size });
  } else {
    state.lastBar = { time: bucket, open: update.price, high: update.price, low: update.price, close: update.price, volume: size };
  }
  const { volume, ...candle } = state.lastBar;
  state.series.update(candle);
  state.volume.update({ time: bucket, value: volume || 0 });
}

// ---- start -----------------------------------------------------------------------------------

async function start() {
  try {
    const config = await (await call("/config")).json();
    state.source = config.source;
    $("#logout").hidden = !config.authenticated;
    $("#login-link").hidden = config.authenticated;
  } catch (error) {
    console.warn("config unavailable", error);
  }
  $("#source").textContent = state.source;
  createChart();
  for (const button of document.querySelectorAll("#intervals button")) {
    button.onclick = () => {
      document.querySelectorAll("#intervals button").forEach((b) => b.classList.toggle("active", b === button));
      state.interval = button.dataset.interval;
      // Daily bars all sit at midnight: their axis shows dates, a clock would read "00:00".
      state.chart.applyOptions({ timeScale: { timeVisible: state.interval !== "1d" } });
      loadBars();
    };
  }
  createEquityChart();
  setupControls();
  connect();
  await state.firstFrame; // prices and the chart first, then the panels below them
  for (const [load, every] of [[loadPerformance, 10000], [loadStreams, 5000], [loadAudit, 15000]]) {
    load();
    setInterval(load, every);
  }
  loadReferences();
  await loadStrategyConfig(); // the overlays and the strategies panel need it
  loadOverlays();
  loadReadings();
  setInterval(loadReadings, 5000);
  setInterval(loadReferences, 30000);
  setInterval(loadBars, 60000); // refresh history so closed bars match the stored ones
  setInterval(() => { loadOverlays(); if (state.selected) loadFills(state.selected); }, 5000);
}

start();
