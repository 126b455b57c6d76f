// Warren's management web UI: a client of the /api routes, no framework and no build step. It keeps the basic-auth
// credentials in sessionStorage (gone when the tab closes), polls /api/overview every 5 s for the charts, and builds
// every table with textContent so names from the broker are never parsed as HTML.
"use strict";

const POLL_MS = 5000;
const HISTORY = 120; // samples kept for the charts: 10 minutes at one per 5 s
const MIN_SLOTS = 13; // the charts' narrowest x axis: one minute
const AUTH_KEY = "warren-auth";
const USER_KEY = "warren-user";
const DASH = "\u2013";

const $ = (id) => document.getElementById(id);

// --- HTTP -----------------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.reason ? body.reason : "HTTP " + status);
    this.status = status;
    this.body = body;
  }
}

function basicToken(user, password) {
  // btoa takes Latin-1 only; encode as UTF-8 first, as RabbitMQ decodes it.
  const bytes = new TextEncoder().encode(user + ":" + password);
  let binary = "";
  bytes.forEach((b) => { binary += String.fromCharCode(b); });
  return "Basic " + btoa(binary);
}

// `credentials: "omit"` keeps the browser from popping its own login dialog on the API's 401 challenge: the page
// sends the Authorization header itself and shows the error in its own form.
async function api(method, path, body, auth, extraHeaders) {
  const headers = Object.assign({ Authorization: auth || sessionStorage.getItem(AUTH_KEY) || "" }, extraHeaders || {});
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch("api" + path, init);
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!response.ok) {
    const error = new ApiError(response.status, json);
    // Credentials that stopped working (a changed password, a deleted user) end the session; a missing tag
    // ("not_authorised") does not.
    if (response.status === 401 && json && json.error === "not_authorized" && !auth) {
      logout(error.message);
    }
    throw error;
  }
  return json;
}

const enc = encodeURIComponent;

const PAGE_SIZE = 500; // the API's largest page

// A list endpoint's first page, filtered by the name in the `filterId` input (the API's case-insensitive substring).
// A broker with more objects than one page says so under `table` rather than have every poll fetch them all.
async function listPage(path, table, filterId) {
  const filter = filterId ? $(filterId).value.trim() : "";
  const answer = await api("GET", path + "?page=1&page_size=" + PAGE_SIZE + (filter ? "&name=" + enc(filter) : ""));
  let note = $(table.id + "-note");
  if (!note) {
    note = el("p", { id: table.id + "-note", className: "note" });
    table.after(note);
  }
  note.textContent = answer.filtered_count > answer.item_count
    ? "Showing " + answer.item_count + " of " + answer.filtered_count + (filter ? " matching" : "") + "."
    : filter ? answer.filtered_count + " of " + answer.total_count + " match." : "";
  return answer.items;
}

// --- formatting ---------------------------------------------------------------------------------------------------

function fmtNum(n) {
  return typeof n === "number" ? n.toLocaleString("en") : DASH;
}

function fmtBytes(n) {
  if (typeof n !== "number") return DASH;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function rate(stats, key) {
  const details = stats && stats[key + "_details"];
  return details && typeof details.rate === "number" ? details.rate : null;
}

function fmtRate(r) {
  return r === null ? DASH : (Math.round(r * 10) / 10).toLocaleString("en") + "/s";
}

function fmtUptime(ms) {
  if (typeof ms !== "number") return DASH;
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m + "m " + (s % 60) + "s";
}

// --- DOM ----------------------------------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "onclick") node.addEventListener("click", value);
    else if (key === "className") node.className = value;
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Fills `table` with a header row and one row per item; `columns` are [title, item => cell content].
function fillTable(table, columns, items, rowAttrs) {
  table.replaceChildren();
  table.append(el("thead", {}, el("tr", {}, ...columns.map(([title]) => el("th", {}, title)))));
  const body = el("tbody");
  if (items.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: columns.length, className: "empty" }, "... no items ...")));
  }
  for (const item of items) {
    body.append(el("tr", rowAttrs ? rowAttrs(item) : {}, ...columns.map(([, cell]) => el("td", {}, cell(item)))));
  }
  table.append(body);
}

function fillKv(table, pairs) {
  table.replaceChildren(...pairs.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
}

function showStatus(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.className = isError ? "error" : "ok";
}

function reportError(error) {
  showStatus(error.message || String(error), true);
}

function parseJsonField(id) {
  const text = $(id).value.trim();
  if (!text) return {};
  try {
    const value = JSON.parse(text);
    if (value && typeof value === "object" && !Array.isArray(value)) return value;
  } catch (_) { /* reported below */ }
  throw new Error($(id).closest("label").firstChild.textContent.trim() + ": not a JSON object");
}

const bool = (id) => $(id).value === "true";

// Runs a form's action, reporting success or the API's error in the status line.
function onSubmit(id, action) {
  $(id).addEventListener("submit", async (event) => {
    event.preventDefault();
    showStatus("", false);
    try {
      const message = await action();
      if (message) showStatus(message, false);
    } catch (error) {
      reportError(error);
    }
  });
}

function actionButton(label, action, danger) {
  return el("button", {
    type: "button",
    className: danger ? "danger small" : "small",
    onclick: async () => {
      try {
        const message = await action();
        if (message) showStatus(message, false);
      } catch (error) {
        reportError(error);
      }
    },
  }, label);
}

// --- session ------------------------------------------------------------------------------------------------------

let pollTimer = null;
let currentPage = "overview";
let vhostNames = [];

async function login(user, password) {
  const auth = basicToken(user, password);
  const who = await api("GET", "/whoami", undefined, auth);
  sessionStorage.setItem(AUTH_KEY, auth);
  sessionStorage.setItem(USER_KEY, who.name);
  startSession(who);
}

function startSession(who) {
  $("whoami").textContent = who.name + (who.tags && who.tags.length ? " (" + [].concat(who.tags).join(", ") + ")" : "");
  $("login").hidden = true;
  $("app").hidden = false;
  $("session").hidden = false;
  showPage(location.hash.slice(1) || currentPage, true);
  loadVhosts().catch(reportError);
  poll();
  pollTimer = setInterval(poll, POLL_MS);
}

function logout(message) {
  sessionStorage.removeItem(AUTH_KEY);
  sessionStorage.removeItem(USER_KEY);
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = null;
  samples.length = 0;
  lastOverview = null;
  $("app").hidden = true;
  $("session").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-password").value = "";
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    await login($("login-user").value, $("login-password").value);
  } catch (error) {
    $("login-error").textContent =
      error instanceof ApiError ? error.message : "Cannot reach the broker: " + error.message;
  }
});
$("logout").addEventListener("click", () => logout(""));

// --- tabs ---------------------------------------------------------------------------------------------------------

const loaders = {};

// `quiet`: the caller refreshes the page itself.
function showPage(name, quiet) {
  if (!$("page-" + name)) name = "overview";
  currentPage = name;
  if (location.hash.slice(1) !== name) history.replaceState(null, "", "#" + name);
  document.querySelectorAll(".page").forEach((page) => { page.hidden = page.id !== "page-" + name; });
  document.querySelectorAll("#tabs button").forEach((tab) => {
    tab.classList.toggle("active", tab.dataset.page === name);
  });
  showStatus("", false);
  if (!quiet) refresh();
}

document.querySelectorAll("#tabs button").forEach((tab) => {
  tab.addEventListener("click", () => showPage(tab.dataset.page));
});

async function refresh() {
  const loader = loaders[currentPage];
  if (!loader) return;
  try {
    await loader();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401 && error.body && error.body.error === "not_authorized")) {
      reportError(error);
    }
  }
}

let lastOverview = null;

// Every 5 s: one overview sample for the charts, then the shown tab's tables.
async function poll() {
  try {
    lastOverview = await api("GET", "/overview");
    record(lastOverview);
    $("header-node").textContent = (lastOverview.product_name || "Warren") + " " +
      (lastOverview.product_version || "") + " on " + (lastOverview.node || "");
  } catch (_) {
    // A failed poll leaves a gap in the charts; the next one tries again.
    record(null);
  }
  // A tab in the background keeps its chart samples but fetches no tables.
  if (!document.hidden) await refresh();
}

async function loadVhosts() {
  const vhosts = await api("GET", "/vhosts");
  vhostNames = vhosts.map((v) => v.name);
  document.querySelectorAll(".vhost-select").forEach((select) => {
    const previous = select.value;
    select.replaceChildren(...vhostNames.map((name) => el("option", { value: name }, name)));
    if (vhostNames.includes(previous)) select.value = previous;
  });
  await loadPublishExchanges();
  return vhosts;
}

// --- overview: polling and charts ---------------------------------------------------------------------------------

const samples = [];

const QUEUED_SERIES = [
  ["Ready", "#e6a23c", (o) => o.queue_totals && o.queue_totals.messages_ready],
  ["Unacked", "#3c8dbc", (o) => o.queue_totals && o.queue_totals.messages_unacknowledged],
  ["Total", "#777777", (o) => o.queue_totals && o.queue_totals.messages],
];
const RATE_SERIES = [
  ["Publish", "#e6a23c", (o) => rate(o.message_stats, "publish")],
  ["Confirm", "#9b59b6", (o) => rate(o.message_stats, "confirm")],
  ["Deliver (get)", "#27ae60", (o) => rate(o.message_stats, "deliver_get")],
  ["Redelivered", "#c0392b", (o) => rate(o.message_stats, "redeliver")],
  ["Ack", "#3c8dbc", (o) => rate(o.message_stats, "ack")],
];

function record(overview) {
  const values = (series) => series.map(([, , pick]) => {
    const v = overview ? pick(overview) : null;
    return typeof v === "number" ? v : null;
  });
  samples.push({ t: Date.now(), queued: values(QUEUED_SERIES), rates: values(RATE_SERIES) });
  while (samples.length > HISTORY) samples.shift();
  if (currentPage === "overview") drawCharts();
}

function drawCharts() {
  drawChart($("chart-queued"), $("legend-queued"), QUEUED_SERIES, "queued", fmtNum);
  drawChart($("chart-rates"), $("legend-rates"), RATE_SERIES, "rates", fmtRate);
}

// A line chart of the last HISTORY samples: a gap where a value is missing (a failed poll, a broker without
// message_stats), the y axis from 0 to a rounded maximum, the latest value of each series in the legend.
function drawChart(canvas, legend, series, key, fmt) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const left = 56, right = 8, top = 8, bottom = 20;
  const plotW = width - left - right, plotH = height - top - bottom;

  let max = 0;
  for (const sample of samples) for (const v of sample[key]) if (v !== null && v > max) max = v;
  max = niceMax(max, key === "queued");

  ctx.font = "11px sans-serif";
  ctx.strokeStyle = "#ddd";
  ctx.fillStyle = "#666";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let i = 0; i <= 4; i += 1) {
    const y = top + plotH - (plotH * i) / 4;
    ctx.beginPath();
    ctx.moveTo(left, Math.round(y) + 0.5);
    ctx.lineTo(left + plotW, Math.round(y) + 0.5);
    ctx.stroke();
    const value = (max * i) / 4;
    ctx.fillText(Number(value.toFixed(2)).toLocaleString("en"), left - 4, y);
  }
  ctx.textAlign = "left";
  ctx.textBaseline = "alphabetic";
  // The x axis spans the samples kept, at least a minute, so a fresh page is not a line squeezed against "now".
  const slots = Math.max(MIN_SLOTS, samples.length);
  const span = ((slots - 1) * POLL_MS) / 1000;
  ctx.fillText("-" + (span >= 120 ? Math.round(span / 60) + " min" : Math.round(span) + " s"), left, height - 4);
  ctx.textAlign = "right";
  ctx.fillText("now", left + plotW, height - 4);

  const x = (i) => left + plotW - ((samples.length - 1 - i) * plotW) / (slots - 1);
  const y = (v) => top + plotH - (v / max) * plotH;
  // Drawn last to first, so the first series stays visible where lines coincide (Ready under Total).
  series.map((entry, s) => [entry, s]).reverse().forEach(([[, color], s]) => {
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = 2;
    let drawing = false;
    ctx.beginPath();
    samples.forEach((sample, i) => {
      const v = sample[key][s];
      if (v === null) { drawing = false; return; }
      if (drawing) ctx.lineTo(x(i), y(v)); else ctx.moveTo(x(i), y(v));
      drawing = true;
    });
    ctx.stroke();
    // A lone sample (the first poll, or one between gaps) shows as a dot.
    samples.forEach((sample, i) => {
      const v = sample[key][s];
      const prev = i > 0 ? samples[i - 1][key][s] : null;
      const next = i + 1 < samples.length ? samples[i + 1][key][s] : null;
      if (v !== null && prev === null && next === null) {
        ctx.beginPath();
        ctx.arc(x(i), y(v), 2.5, 0, 2 * Math.PI);
        ctx.fill();
      }
    });
  });

  const last = samples.length ? samples[samples.length - 1][key] : [];
  const shown = (s) => (last[s] === undefined || last[s] === null ? DASH : fmt(last[s]));
  legend.replaceChildren(...series.map(([name, color], s) => el("span", { className: "legend-item" },
    el("i", { style: "background:" + color }), name + " ", el("b", {}, shown(s)))));
}

// The y axis's top: four ticks of 1, 2, 2.5 or 5 times a power of ten; whole ticks for counts.
function niceMax(max, whole) {
  const tick = max / 4;
  if (tick <= 0) return whole ? 4 : 1;
  const magnitude = Math.pow(10, Math.floor(Math.log10(tick)));
  let step = 10 * magnitude;
  for (const m of [1, 2, 2.5, 5]) {
    if (m * magnitude >= tick) { step = m * magnitude; break; }
  }
  if (whole) step = Math.max(1, Math.ceil(step));
  return 4 * step;
}

function renderOverview(overview) {
  const totals = overview.object_totals || {};
  const queued = overview.queue_totals || {};
  fillKv($("object-totals"), [
    ["Connections", fmtNum(totals.connections)],
    ["Channels", fmtNum(totals.channels)],
    ["Exchanges", fmtNum(totals.exchanges)],
    ["Queues", fmtNum(totals.queues)],
    ["Consumers", fmtNum(totals.consumers)],
    ["Messages (ready / unacked)", fmtNum(queued.messages) + " (" + fmtNum(queued.messages_ready) + " / " +
      fmtNum(queued.messages_unacknowledged) + ")"],
  ]);
  drawCharts();
}

loaders.overview = async () => {
  if (!lastOverview) lastOverview = await api("GET", "/overview");
  renderOverview(lastOverview);
  let nodes;
  try {
    nodes = await api("GET", "/nodes");
  } catch (error) {
    if (error.status === 401) {
      fillTable($("nodes-table"), [["Nodes", () => "needs the monitoring tag"]], [{}]);
      return;
    }
    throw error;
  }
  const alarm = (on) => on ? el("span", { className: "alarm" }, "alarm") : el("span", { className: "fine" }, "ok");
  fillTable($("nodes-table"), [
    ["Name", (n) => n.name],
    ["Memory used / limit", (n) => el("span", {},
      fmtBytes(n.mem_used) + " / " + fmtBytes(n.mem_limit) + " ", alarm(n.mem_alarm))],
    ["Disk free / limit", (n) => el("span", {},
      fmtBytes(n.disk_free) + " / " + fmtBytes(n.disk_free_limit) + " ", alarm(n.disk_free_alarm))],
    ["File descriptors", (n) => fmtNum(n.fd_used) + " / " + fmtNum(n.fd_total)],
    ["Processors", (n) => fmtNum(n.processors)],
    ["Uptime", (n) => fmtUptime(n.uptime)],
  ], nodes, (n) => ({ "data-name": n.name }));
};

// --- connections and channels -------------------------------------------------------------------------------------

loaders.connections = async () => {
  const connections = await listPage("/connections", $("connections-table"));
  fillTable($("connections-table"), [
    ["Virtual host", (c) => c.vhost],
    ["Name", (c) => c.name],
    ["User", (c) => c.user],
    ["State", (c) => c.state],
    ["Protocol", (c) => c.protocol],
    ["Client", (c) => {
      const p = c.client_properties || {};
      return [p.product, p.version].filter(Boolean).join(" ") || DASH;
    }],
    ["Channels", (c) => fmtNum(c.channels)],
    ["", (c) => actionButton("Close", async () => {
      if (!confirm("Close connection " + c.name + "?")) return null;
      await api("DELETE", "/connections/" + enc(c.name), undefined, undefined,
        { "X-Reason": "Closed via management UI" });
      await refresh();
      return "Connection closed.";
    }, true)],
  ], connections, (c) => ({ "data-name": c.name }));
};

loaders.channels = async () => {
  let channels;
  try {
    channels = await api("GET", "/channels");
  } catch (error) {
    if (error.status === 404) {
      $("channels-unavailable").hidden = false;
      $("channels-table").replaceChildren();
      return;
    }
    throw error;
  }
  $("channels-unavailable").hidden = true;
  const mode = (c) => [c.confirm ? "C" : "", c.transactional ? "T" : ""].join("") || DASH;
  fillTable($("channels-table"), [
    ["Virtual host", (c) => c.vhost],
    ["Channel", (c) => c.name],
    ["User", (c) => c.user],
    ["Mode", mode],
    ["State", (c) => c.state],
    ["Prefetch", (c) => fmtNum(c.prefetch_count)],
    ["Unacked", (c) => fmtNum(c.messages_unacknowledged)],
    ["Unconfirmed", (c) => fmtNum(c.messages_unconfirmed)],
    ["Publish", (c) => fmtRate(rate(c.message_stats, "publish"))],
    ["Confirm", (c) => fmtRate(rate(c.message_stats, "confirm"))],
    ["Deliver / get", (c) => fmtRate(rate(c.message_stats, "deliver_get"))],
    ["Ack", (c) => fmtRate(rate(c.message_stats, "ack"))],
  ], channels, (c) => ({ "data-name": c.name }));
};

// --- exchanges ----------------------------------------------------------------------------------------------------

const exchangePath = (vhost, name) => "/exchanges/" + enc(vhost) + "/" + enc(name || "amq.default");

loaders.exchanges = async () => {
  const exchanges = await listPage("/exchanges", $("exchanges-table"), "exchanges-filter");
  fillTable($("exchanges-table"), [
    ["Virtual host", (x) => x.vhost],
    ["Name", (x) => x.name || "(AMQP default)"],
    ["Type", (x) => x.type],
    ["Features", (x) => features(x)],
    ["Policy", (x) => x.policy || ""],
    ["Rate in", (x) => fmtRate(rate(x.message_stats, "publish_in"))],
    ["Rate out", (x) => fmtRate(rate(x.message_stats, "publish_out"))],
    ["", (x) => x.name === "" || x.name.startsWith("amq.") ? "" : actionButton("Delete", async () => {
      if (!confirm("Delete exchange " + x.name + "?")) return null;
      await api("DELETE", exchangePath(x.vhost, x.name));
      await refresh();
      await loadPublishExchanges();
      return "Exchange " + x.name + " deleted.";
    }, true)],
  ], exchanges, (x) => ({ "data-vhost": x.vhost, "data-name": x.name }));
};

function features(item) {
  const out = [];
  if (item.durable) out.push("D");
  if (item.auto_delete) out.push("AD");
  if (item.exclusive) out.push("Excl");
  if (item.internal) out.push("I");
  if (item.arguments && Object.keys(item.arguments).length) out.push("Args");
  return out.join(" ");
}

// The publish form's exchange list follows its vhost; the default exchange is `amq.default` in paths.
async function loadPublishExchanges() {
  const vhost = $("publish-vhost").value;
  if (!vhost) return;
  const exchanges = await api("GET", "/exchanges/" + enc(vhost));
  const select = $("publish-exchange");
  const previous = select.value;
  select.replaceChildren(...exchanges.map((x) =>
    el("option", { value: x.name || "amq.default" }, x.name || "(AMQP default)")));
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}
$("publish-vhost").addEventListener("change", () => loadPublishExchanges().catch(reportError));

onSubmit("exchange-form", async () => {
  const vhost = $("exchange-vhost").value, name = $("exchange-name").value;
  await api("PUT", exchangePath(vhost, name), {
    type: $("exchange-type").value,
    durable: bool("exchange-durable"),
    auto_delete: bool("exchange-auto-delete"),
    internal: bool("exchange-internal"),
    arguments: parseJsonField("exchange-arguments"),
  });
  $("exchange-name").value = "";
  await refresh();
  await loadPublishExchanges();
  return "Exchange " + name + " declared.";
});

onSubmit("publish-form", async () => {
  $("publish-result").textContent = "";
  const properties = parseJsonField("publish-properties");
  properties.delivery_mode = Number($("publish-delivery-mode").value);
  const headers = parseJsonField("publish-headers");
  if (Object.keys(headers).length) properties.headers = headers;
  const answer = await api("POST", exchangePath($("publish-vhost").value, $("publish-exchange").value) + "/publish", {
    properties,
    routing_key: $("publish-routing-key").value,
    payload: $("publish-payload").value,
    payload_encoding: $("publish-encoding").value,
  });
  // RabbitMQ's wording for the two outcomes.
  $("publish-result").textContent =
    answer && answer.routed ? "Message published." : "Message published, but not routed.";
  return null;
});

// --- queues -------------------------------------------------------------------------------------------------------

let openQueue = null; // {vhost, name} of the queue whose detail is shown

const queuePath = (vhost, name) => "/queues/" + enc(vhost) + "/" + enc(name);

loaders.queues = async () => {
  const queues = await listPage("/queues", $("queues-table"), "queues-filter");
  fillTable($("queues-table"), [
    ["Virtual host", (q) => q.vhost],
    ["Name", (q) => el("a", {
      href: "#queues", className: "queue-link",
      onclick: (event) => { event.preventDefault(); showQueue(q.vhost, q.name).catch(reportError); },
    }, q.name)],
    ["Type", (q) => q.type || "classic"],
    ["Features", (q) => features(q)],
    ["Policy", (q) => q.policy || ""],
    ["State", (q) => q.state || DASH],
    ["Ready", (q) => fmtNum(q.messages_ready)],
    ["Unacked", (q) => fmtNum(q.messages_unacknowledged)],
    ["Total", (q) => fmtNum(q.messages)],
    ["Consumers", (q) => fmtNum(q.consumers)],
    ["Incoming", (q) => fmtRate(rate(q.message_stats, "publish"))],
    ["Deliver / get", (q) => fmtRate(rate(q.message_stats, "deliver_get"))],
    ["Ack", (q) => fmtRate(rate(q.message_stats, "ack"))],
  ], queues, (q) => ({ "data-vhost": q.vhost, "data-name": q.name }));
  if (openQueue) {
    const q = queues.find((x) => x.vhost === openQueue.vhost && x.name === openQueue.name);
    if (q) renderQueueInfo(q); else closeQueue();
  }
};

async function showQueue(vhost, name) {
  const q = await api("GET", queuePath(vhost, name));
  openQueue = { vhost, name };
  $("queue-detail-name").textContent = name;
  $("queue-detail-vhost").textContent = vhost;
  $("get-result").replaceChildren();
  renderQueueInfo(q);
  $("queue-detail").hidden = false;
  $("queue-detail").scrollIntoView({ block: "nearest" });
}

function renderQueueInfo(q) {
  fillKv($("queue-detail-info"), [
    ["Type", q.type || "classic"],
    ["Features", features(q) || DASH],
    ["Arguments", q.arguments && Object.keys(q.arguments).length ? JSON.stringify(q.arguments) : DASH],
    ["Policy", q.policy || DASH],
    ["Messages (ready / unacked)", fmtNum(q.messages) + " (" + fmtNum(q.messages_ready) + " / " +
      fmtNum(q.messages_unacknowledged) + ")"],
    ["Message bytes (ready)", fmtBytes(q.message_bytes_ready)],
    ["Consumers", fmtNum(q.consumers)],
  ]);
}

function closeQueue() {
  openQueue = null;
  $("queue-detail").hidden = true;
}
$("queue-detail-close").addEventListener("click", closeQueue);

onSubmit("queue-form", async () => {
  const vhost = $("queue-vhost").value, name = $("queue-name").value;
  await api("PUT", queuePath(vhost, name), {
    durable: bool("queue-durable"),
    auto_delete: bool("queue-auto-delete"),
    arguments: parseJsonField("queue-arguments"),
  });
  $("queue-name").value = "";
  await refresh();
  return "Queue " + name + " declared.";
});

onSubmit("get-form", async () => {
  if (!openQueue) return null;
  const messages = await api("POST", queuePath(openQueue.vhost, openQueue.name) + "/get", {
    count: Number($("get-count").value) || 1,
    ackmode: $("get-ackmode").value,
    encoding: $("get-encoding").value,
    truncate: Number($("get-truncate").value) || 50000,
  });
  const result = $("get-result");
  if (!messages.length) {
    result.replaceChildren(el("p", { id: "get-empty" }, "Queue is empty"));
  } else {
    result.replaceChildren(...messages.map((m, i) => {
      const table = el("table", { className: "kv message" });
      fillKv(table, [
        ["Exchange", m.exchange || "(AMQP default)"],
        ["Routing Key", m.routing_key],
        ["Redelivered", m.redelivered ? "\u25cf" : "\u25cb"],
        ["Properties", el("pre", {}, JSON.stringify(m.properties, null, 1))],
        ["Payload", el("span", {}, m.payload_bytes + " bytes, Encoding: " + m.payload_encoding,
          el("pre", { className: "payload" }, m.payload))],
      ]);
      return el("div", { className: "message-box" }, el("h5", {}, "Message " + (i + 1)),
        el("p", {}, "The server reported " + fmtNum(m.message_count) + " messages remaining."), table);
    }));
  }
  await refresh();
  return null;
});

// RabbitMQ's "Move messages" (rabbitmq_shovel_management): a dynamic shovel named "Move from QUEUE" that takes the
// messages the queue holds when it starts (src-delete-after queue-length) and is deleted when it has moved them.
// A hostless URI is this broker; a destination URI moves them to another broker.
onSubmit("move-form", async () => {
  if (!openQueue) return null;
  const { vhost, name } = openQueue;
  const here = "amqp:///" + enc(vhost);
  const destination = $("move-dest-queue").value;
  const shovel = "Move from " + name;
  await api("PUT", "/parameters/shovel/" + enc(vhost) + "/" + enc(shovel), {
    component: "shovel", vhost, name: shovel,
    value: {
      "src-uri": here, "src-queue": name, "src-protocol": "amqp091", "src-prefetch-count": 1000,
      "src-delete-after": "queue-length",
      "dest-uri": $("move-dest-uri").value.trim() || here, "dest-queue": destination, "dest-protocol": "amqp091",
      "dest-add-forward-headers": false, "ack-mode": "on-confirm",
    },
  });
  $("move-dest-queue").value = "";
  await refresh();
  return "Moving the messages of " + name + " to " + destination + " (shovel \"" + shovel + "\").";
});

$("queue-purge").addEventListener("click", async () => {
  if (!openQueue) return;
  try {
    await api("DELETE", queuePath(openQueue.vhost, openQueue.name) + "/contents");
    await refresh();
    showStatus("Queue " + openQueue.name + " purged.", false);
  } catch (error) {
    reportError(error);
  }
});

$("queue-delete").addEventListener("click", async () => {
  if (!openQueue) return;
  const { vhost, name } = openQueue;
  if (!confirm("Delete queue " + name + "?")) return;
  try {
    await api("DELETE", queuePath(vhost, name));
    closeQueue();
    await refresh();
    showStatus("Queue " + name + " deleted.", false);
  } catch (error) {
    reportError(error);
  }
});

// --- users, vhosts, permissions, policies -------------------------------------------------------------------------

const tagList = (tags) => [].concat(tags || []).join(", ");

loaders.users = async () => {
  const users = await api("GET", "/users");
  fillTable($("users-table"), [
    ["Name", (u) => u.name],
    ["Tags", (u) => tagList(u.tags)],
    ["Can log in with password", (u) => u.password_hash ? "\u25cf" : "\u25cb"],
    ["", (u) => el("span", {},
      actionButton("Set tags", async () => {
        const tags = prompt("Tags for " + u.name + " (comma-separated)", tagList(u.tags));
        if (tags === null) return null;
        // The stored hash goes back unchanged, so changing tags keeps the password.
        const body = { tags };
        if (u.password_hash) {
          body.password_hash = u.password_hash;
          body.hashing_algorithm = u.hashing_algorithm;
        }
        await api("PUT", "/users/" + enc(u.name), body);
        await refresh();
        return "Tags of " + u.name + " set.";
      }),
      " ",
      actionButton("Delete", async () => {
        if (!confirm("Delete user " + u.name + "?")) return null;
        await api("DELETE", "/users/" + enc(u.name));
        await refresh();
        return "User " + u.name + " deleted.";
      }, true))],
  ], users, (u) => ({ "data-name": u.name }));
};

onSubmit("user-form", async () => {
  const name = $("user-name").value;
  const body = { tags: $("user-tags").value };
  if ($("user-password").value) body.password = $("user-password").value;
  await api("PUT", "/users/" + enc(name), body);
  $("user-name").value = "";
  $("user-password").value = "";
  await refresh();
  return "User " + name + " saved.";
});

loaders.vhosts = async () => {
  const vhosts = await loadVhosts();
  fillTable($("vhosts-table"), [
    ["Name", (v) => v.name],
    ["Description", (v) => v.description || ""],
    ["Ready", (v) => fmtNum(v.messages_ready)],
    ["Unacked", (v) => fmtNum(v.messages_unacknowledged)],
    ["Total", (v) => fmtNum(v.messages)],
    ["", (v) => actionButton("Delete", async () => {
      if (!confirm("Delete virtual host " + v.name + " and everything in it?")) return null;
      await api("DELETE", "/vhosts/" + enc(v.name));
      await refresh();
      return "Virtual host " + v.name + " deleted.";
    }, true)],
  ], vhosts, (v) => ({ "data-name": v.name }));
};

onSubmit("vhost-form", async () => {
  const name = $("vhost-name").value;
  const body = {};
  if ($("vhost-description").value) body.description = $("vhost-description").value;
  await api("PUT", "/vhosts/" + enc(name), body);
  $("vhost-name").value = "";
  $("vhost-description").value = "";
  await refresh();
  return "Virtual host " + name + " added.";
});

loaders.permissions = async () => {
  const [permissions, users] = await Promise.all([api("GET", "/permissions"), api("GET", "/users")]);
  const select = $("permission-user");
  const previous = select.value;
  select.replaceChildren(...users.map((u) => el("option", { value: u.name }, u.name)));
  if (users.some((u) => u.name === previous)) select.value = previous;
  fillTable($("permissions-table"), [
    ["User", (p) => p.user],
    ["Virtual host", (p) => p.vhost],
    ["Configure regexp", (p) => p.configure],
    ["Write regexp", (p) => p.write],
    ["Read regexp", (p) => p.read],
    ["", (p) => actionButton("Clear", async () => {
      await api("DELETE", "/permissions/" + enc(p.vhost) + "/" + enc(p.user));
      await refresh();
      return "Permissions of " + p.user + " in " + p.vhost + " cleared.";
    }, true)],
  ], permissions, (p) => ({ "data-user": p.user, "data-vhost": p.vhost }));
};

onSubmit("permission-form", async () => {
  const user = $("permission-user").value, vhost = $("permission-vhost").value;
  await api("PUT", "/permissions/" + enc(vhost) + "/" + enc(user), {
    configure: $("permission-configure").value,
    write: $("permission-write").value,
    read: $("permission-read").value,
  });
  await refresh();
  return "Permissions of " + user + " in " + vhost + " set.";
});

loaders.policies = async () => {
  const policies = await api("GET", "/policies");
  fillTable($("policies-table"), [
    ["Virtual host", (p) => p.vhost],
    ["Name", (p) => p.name],
    ["Pattern", (p) => p.pattern],
    ["Apply to", (p) => p["apply-to"]],
    ["Definition", (p) => JSON.stringify(p.definition)],
    ["Priority", (p) => fmtNum(p.priority)],
    ["", (p) => actionButton("Delete", async () => {
      if (!confirm("Delete policy " + p.name + "?")) return null;
      await api("DELETE", "/policies/" + enc(p.vhost) + "/" + enc(p.name));
      await refresh();
      return "Policy " + p.name + " deleted.";
    }, true)],
  ], policies, (p) => ({ "data-vhost": p.vhost, "data-name": p.name }));
};

onSubmit("policy-form", async () => {
  const vhost = $("policy-vhost").value, name = $("policy-name").value;
  await api("PUT", "/policies/" + enc(vhost) + "/" + enc(name), {
    pattern: $("policy-pattern").value,
    definition: parseJsonField("policy-definition"),
    priority: Number($("policy-priority").value) || 0,
    "apply-to": $("policy-apply-to").value,
  });
  await refresh();
  return "Policy " + name + " saved.";
});

// --- definitions --------------------------------------------------------------------------------------------------

// A plain link cannot carry the Authorization header, so the file is fetched here and handed to the browser as a
// blob.
$("definitions-download").addEventListener("click", async () => {
  try {
    const definitions = await api("GET", "/definitions");
    const blob = new Blob([JSON.stringify(definitions, null, 2)], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const day = new Date().toISOString().slice(0, 10);
    const link = el("a", { href: url, download: "warren-definitions-" + day + ".json" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    $("definitions-result").textContent = "Definitions downloaded.";
  } catch (error) {
    reportError(error);
  }
});

onSubmit("definitions-form", async () => {
  $("definitions-result").textContent = "";
  const file = $("definitions-file").files[0];
  if (!file) throw new Error("Choose a definitions file first");
  const text = await file.text();
  try { JSON.parse(text); } catch (_) { throw new Error(file.name + " is not JSON"); }
  await api("POST", "/definitions", text);
  $("definitions-result").textContent = "Your definitions were imported successfully.";
  await loadVhosts();
  return null;
});

for (const id of ["queues-filter", "exchanges-filter"]) {
  $(id).addEventListener("input", () => refresh());
}

// --- start --------------------------------------------------------------------------------------------------------

window.addEventListener("hashchange", () => {
  if (!$("app").hidden && location.hash.slice(1) !== currentPage) showPage(location.hash.slice(1));
});

(async () => {
  const auth = sessionStorage.getItem(AUTH_KEY);
  if (!auth) { logout(""); return; }
  try {
    startSession(await api("GET", "/whoami", undefined, auth));
  } catch (error) {
    logout(error instanceof ApiError ? error.message : "");
  }
})();
