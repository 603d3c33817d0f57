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
};

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

const money = (v) => (v < 0 ? "-" : "") + "$" + Math.abs(v).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const num = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const pct = (v) => (v > 0 ? "+" : "") + v.toFixed(2) + "%";
const clock = (t) => new Date(typeof t === "number" ? t * 1000 : t).toLocaleTimeString([], { hour12: false });
const signClass = (v) => (v > 0 ? "up" : v < 0 ? "down" : "");
const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;

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
  $("#positions tbody").replaceChildren(...account.positions.map((p) => el("tr", {},
    el("td", {}, p.symbol), el("td", {}, num(p.quantity, 0)), el("td", {}, num(p.average_price)),
    el("td", {}, num(p.market_price)), el("td", { class: signClass(p.unrealized_pnl) }, money(p.unrealized_pnl)),
    el("td", { class: signClass(p.realized_pnl) }, money(p.realized_pnl)))));
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
}

function selectSymbol(symbol) {
  if (state.selected) state.rows[state.selected]?.classList.remove("selected");
  state.selected = symbol;
  state.rows[symbol]?.classList.add("selected");
  loadBars();
}

async function loadBars() {
  const symbol = state.selected;
  if (!symbol) return;
  $("#chart-symbol").textContent = `${symbol} · ${state.interval}`;
  const message = $("#chart-message");
  try {
    const answer = await call(`/api/sources/${state.source}/symbols/${encodeURIComponent(symbol)}/bars?interval=${state.interval}`);
    const body = await answer.json();
    if (symbol !== state.selected) return;
    if (!answer.ok) {
      message.textContent = typeof body.detail === "string" ? body.detail : "no bars yet";
      state.series.setData([]);
      state.lastBar = null;
      return;
    }
    const bars = body.bars.map((b) => ({
      time: Date.parse(b.time) / 1000, open: b.open, high: b.high, low: b.low, close: b.close,
    }));
    state.series.setData(bars);
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
  if (bucket === last.time) {
    Object.assign(last, { high: Math.max(last.high, update.price), low: Math.min(last.low, update.price), close: update.price });
  } else {
    state.lastBar = { time: bucket, open: update.price, high: update.price, low: update.price, close: update.price };
  }
  state.series.update({ ...state.lastBar });
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
  connect();
  loadReferences();
  setInterval(loadReferences, 30000);
  setInterval(loadBars, 60000); // refresh history so closed bars match the stored ones
}

start();
