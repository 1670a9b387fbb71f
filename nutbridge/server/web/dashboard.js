// nutbridge dashboard (/ and /flow). Plain script, no build step: the server ships it as it is.
// Live data comes from the pub/sub WebSocket (events "reading" and "status"), or, with pub/sub off, from
// /api/status once per poll interval; history from /api/readings?format=columns, which is uPlot's own shape.
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("nutbridge-config").textContent);
  const page = document.body.dataset.page;
  const query = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  const STALE_POLLS = 3; // as /health: no good poll for this many intervals is stale
  const WEEK_STEP = 600; // seconds: the 7-day plots keep one reading per 10 minutes
  // the data log's columns the plots draw, as the server names them (its Column names: the script knows none)
  const DAY_FIELDS = [config.columns.pv, config.columns.load, config.columns.charge, config.columns.voltage];

  const state = {
    reading: null, // the last good reading (SI units; battery_charge in %)
    variables: {}, // the NUT variables of that poll
    comms: null, // "ok" | "failing" | "lost"
    error: null,
    day: null, // the server's date (YYYY-MM-DD) of the newest poll
    lastGoodAt: null, // performance.now() of the last good poll (the browser's clock: no skew with the server)
    feed: "connecting", // "live" | "polling" | "lost" | "connecting" | "history"
    feedNote: "",
  };

  // ---- words and numbers

  const finite = (v) => typeof v === "number" && Number.isFinite(v);
  const fixed = (v, unit, digits = 1) => (finite(v) ? `${v.toFixed(digits)} ${unit}` : "–");
  function watts(v) {
    if (!finite(v)) return "–";
    return Math.abs(v) >= 10000 ? `${(v / 1000).toFixed(1)} kW` : `${Math.round(v)} W`;
  }
  function duration(seconds) {
    if (!finite(seconds)) return "–";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    return hours >= 48 ? `${Math.round(hours / 24)} days` : `${hours} h ${minutes % 60} min`;
  }
  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
  }
  const number = (v) => (v === null || v === undefined || v === "" ? null : Number(v));
  const batteryPower = (r) => (finite(r.battery_current) && finite(r.battery_voltage) ? r.battery_current * r.battery_voltage : null);

  // the expected charge at the next sunrise (experimental.* variables; none while the data log has too few days)
  function atSunrise(v) {
    if (state.reading === null) return "–";
    const at = v["experimental.sunrise.time"];
    if (!at) return "unknown: not enough history";
    const seconds = number(v["experimental.sunrise.timer"]);
    const charge = number(v["experimental.battery.charge.sunrise"]);
    const when = finite(seconds) && seconds > 0 ? `in ${duration(seconds)}` : "due now";
    return `${String(at).slice(11, 16)}, ${when}: ${finite(charge) ? `~${Math.round(charge)} %` : "charge unknown"}`;
  }

  function stale() {
    return state.lastGoodAt === null || performance.now() - state.lastGoodAt > STALE_POLLS * config.interval * 1000;
  }

  // NUT's view of the UPS in words: {level: ok|warn|bad|unknown, words, detail}
  function nutView() {
    const v = state.variables || {};
    const tokens = String(v["ups.status"] || "").split(/\s+/).filter(Boolean);
    const has = (t) => tokens.includes(t);
    if (config.live === null) return { level: "unknown", words: "Not polling", detail: "This node serves its data log only (--no-poll)." };
    if (state.comms === "lost") {
      return { level: "bad", words: "Comms lost", detail: `NUT sees no UPS: the port file is renamed to -nocomms. ${state.error || ""}`.trim() };
    }
    if (state.reading === null) return { level: "unknown", words: "Waiting for the first reading…", detail: state.error || "" };
    if (state.comms === "failing") {
      return { level: "warn", words: "Device not answering", detail: `NUT keeps the last values until the grace runs out. ${state.error || ""}`.trim() };
    }
    if (stale()) return { level: "warn", words: "No fresh reading", detail: `The last good poll was ${ago(performance.now() - state.lastGoodAt)}.` };
    let view;
    const grid = state.reading.on_line !== null && state.reading.on_line !== undefined; // a gateway knows its grid
    if (has("LB")) view = { level: "bad", words: "Low battery: shutdown coming", detail: "upsmon shuts this host down now." };
    else if (has("OB")) view = { level: "warn", words: "On battery", detail: grid ? "The grid is down." : "The sun does not cover the load." };
    else if (has("OL")) view = { level: "ok", words: grid ? "On line power" : "On solar", detail: "" };
    else view = { level: "unknown", words: tokens.join(" ") || "Status unknown", detail: "" };
    if (has("CHRG")) view.detail = `${view.detail} Charging.`.trim();
    if (has("DISCHRG")) view.detail = `${view.detail} Discharging.`.trim();
    const alarm = v["ups.alarm"];
    if (has("ALARM") || alarm) {
      view = { level: "bad", words: `Alarm: ${alarm || "(no text)"}`, detail: `${view.words}. ${view.detail}`.trim() };
    }
    return view;
  }

  // ---- the power flow: PV → hub → load, hub ↔ battery, drawn once as SVG, then only its texts and classes change

  const SVG = "http://www.w3.org/2000/svg";
  const flow = {};
  function svg(parent, tag, attrs, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    parent.appendChild(el);
    return el;
  }
  function drawFlow() {
    const box = $("flow");
    if (!box) return;
    const root = svg(box, "svg", { viewBox: "0 0 360 300", role: "img", "aria-label": "power flow" });
    const nodes = { pv: [70, 62, "Solar"], load: [290, 62, "Load"], battery: [180, 238, "Battery"] };
    const hub = [180, 132];
    for (const [kind, [x, y]] of Object.entries(nodes)) {
      const d = kind === "pv" ? `M${x},${y} L${hub[0]},${hub[1]}` : `M${hub[0]},${hub[1]} L${x},${y}`;
      svg(root, "path", { class: `path ${kind}-path`, d });
      flow[`${kind}Stream`] = svg(root, "path", { class: `stream ${kind}`, d, "data-kind": kind });
    }
    svg(root, "circle", { class: "hub", cx: hub[0], cy: hub[1], r: 9 });
    for (const [kind, [x, y, name]] of Object.entries(nodes)) {
      svg(root, "circle", { class: `node ${kind}`, cx: x, cy: y, r: 44 });
      svg(root, "text", { class: "name", x, y: y - 14 }, name);
      flow[`${kind}Watts`] = svg(root, "text", { class: "watts", x, y: y + 8, id: `flow-${kind}` }, "–");
    }
    flow.batteryNote = svg(root, "text", { class: "name direction", x: hub[0] + 14, y: 185, id: "flow-battery-direction" }, "");
    flow.box = box;
  }
  function renderFlow() {
    if (!flow.box) return;
    const r = state.reading || {};
    const pv = r.pv_power, load = r.load_power, battery = batteryPower(r);
    const stream = (el, value, reverse) => {
      const on = finite(value) && Math.abs(value) >= 1;
      el.classList.toggle("on", on);
      el.classList.toggle("reverse", on && reverse);
    };
    flow.pvWatts.textContent = watts(pv);
    flow.loadWatts.textContent = watts(load);
    flow.batteryWatts.textContent = finite(battery) ? watts(Math.abs(battery)) : "–";
    const charging = finite(battery) && battery >= 1, discharging = finite(battery) && battery <= -1;
    flow.batteryNote.textContent = charging ? "▼ charging" : discharging ? "▲ discharging" : finite(battery) ? "idle" : "";
    stream(flow.pvStream, pv, false);
    stream(flow.loadStream, load, false);
    stream(flow.batteryStream, battery, discharging); // toward the battery while charging, out of it while discharging
    flow.box.classList.toggle("stale", state.comms !== "ok" || stale());
    flow.box.dataset.battery = charging ? "charging" : discharging ? "discharging" : "idle";
  }

  // ---- everything that is text

  function setText(id, text) {
    const el = $(id);
    if (el && el.textContent !== text) el.textContent = text;
  }
  function render() {
    const view = nutView();
    const nut = $("nut");
    if (nut) nut.className = `nut ${view.level}`;
    setText("nut-words", page === "flow" && view.level === "ok" ? `${view.words}` : view.words);
    setText("nut-detail", view.detail);
    document.body.dataset.nut = view.level;
    const r = state.reading || {};
    const v = state.variables || {};
    setText("battery-charge", fixed(r.battery_charge, "%", 0));
    setText("battery-voltage", fixed(r.battery_voltage, "V", 2));
    setText("battery-current", fixed(r.battery_current, "A", 2));
    setText("battery-runtime", duration(number(v["battery.runtime"])));
    setText("battery-sunrise", atSunrise(v));
    setText("ups-status", state.comms === "lost" ? "no UPS (nocomms)" : v["ups.status"] || "–");
    setText("age", state.lastGoodAt === null ? "–" : ago(performance.now() - state.lastGoodAt));
    setText("energy-in", fixed(r.energy_generated_today, "kWh", 2));
    setText("energy-out", fixed(r.energy_consumed_today, "kWh", 2));
    setText("battery-temperature", fixed(r.battery_temperature, "°C", 1));
    setText("controller-temperature", fixed(r.controller_temperature, "°C", 1));
    const feed = $("feed");
    const feedWords = {
      connecting: "connecting…",
      live: `live · a poll every ${config.interval} s`,
      polling: `refreshing every ${config.interval} s (pub/sub is off)`,
      lost: "Live feed lost: reconnecting…",
      history: "not polling: history only",
    }[state.feed];
    if (feed) {
      feed.textContent = state.feedNote ? `${feedWords} ${state.feedNote}` : feedWords;
      feed.classList.toggle("lost", state.feed === "lost");
    }
    document.body.classList.toggle("feed-lost", state.feed === "lost");
    document.body.dataset.feed = state.feed;
    renderFlow();
  }

  // ---- live data

  function takeStatus(s) { // GET /api/status
    state.comms = s.comms;
    state.error = s.error;
    state.variables = s.variables || {};
    state.reading = s.reading;
    state.day = typeof s.time === "string" ? s.time.slice(0, 10) : state.day;
    state.lastGoodAt = performance.now() - (finite(s.age) ? s.age * 1000 : 0);
  }
  function takeReading(d) { // the "reading" event: one poll, good or failed
    state.comms = d.comms;
    state.error = d.error;
    const day = typeof d.time === "string" ? d.time.slice(0, 10) : null;
    if (d.comms === "ok" && d.reading) {
      state.reading = d.reading;
      state.variables = d.variables || {};
      state.lastGoodAt = performance.now();
      if (state.day !== null && day !== null && day !== state.day) loadHistory(); // midnight: a new day file
      else appendToDay(d.reading);
    }
    if (day !== null) state.day = day;
    render();
  }
  function takeChange(d) { // the "status" event: ups.status or the comms state changed
    state.comms = d.comms;
    state.error = d.error;
    if (d["ups.status"]) state.variables = { ...state.variables, "ups.status": d["ups.status"] };
    render();
  }

  async function fetchStatus() {
    try {
      const answer = await fetch("/api/status", { cache: "no-store" });
      const body = await answer.json();
      if (answer.ok) takeStatus(body);
      else state.error = body.error || `HTTP ${answer.status}`; // 503: no poll has answered yet
      if (state.feed !== "live") state.feed = "polling";
      state.feedNote = "";
    } catch (e) {
      state.feed = "lost";
      state.feedNote = "(the daemon does not answer)";
    }
    render();
  }

  let retry = 1000;
  function connect() {
    const url = new URL("/subscribe", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("clientName", page === "flow" ? "flow" : "dashboard");
    if (config.key) url.searchParams.set("apiKey", query.get("key") || "");
    const ws = new WebSocket(url);
    ws.onopen = () => {
      retry = 1000;
      for (const event of ["reading", "status"]) ws.send(JSON.stringify({ action: "subscribe", event }));
      state.feed = "live";
      state.feedNote = "";
      fetchStatus(); // what happened while the socket was down
    };
    ws.onmessage = (message) => {
      for (const line of String(message.data).split("\n")) {
        if (!line) continue;
        let f;
        try { f = JSON.parse(line); } catch (e) { continue; }
        const data = typeof f.data === "string" ? JSON.parse(f.data) : f.data;
        if (f.event === "reading") takeReading(data);
        else if (f.event === "status") takeChange(data);
      }
    };
    ws.onclose = (event) => {
      state.feed = "lost";
      state.feedNote = event.code === 1013 ? "(this page fell behind)" : `(again in ${Math.round(retry / 1000)} s)`;
      render();
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  function startLive() {
    if (config.live === "pubsub" && (!config.key || query.get("key"))) connect();
    else if (config.live !== null) {
      if (config.live === "pubsub") state.feedNote = "(add ?key= to this page's address for the live feed)";
      fetchStatus();
      setInterval(fetchStatus, config.interval * 1000);
    } else state.feed = "history";
    setInterval(render, 1000); // ages and staleness move on by themselves
    render();
  }

  // ---- plots (uPlot): today with every row of the day file, 7 days at one point per WEEK_STEP

  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const charts = {};
  const columns = { day: null, week: null }; // [t, pv, load, charge %, voltage]

  function chartOptions(kind, width) {
    const axis = { stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") } };
    const line = (label, color, scale, unit, digits) => ({
      label, stroke: css(color), width: 1.5, scale, spanGaps: false, points: { show: false },
      value: (u, v) => (finite(v) ? `${v.toFixed(digits)} ${unit}` : "–"),
    });
    const power = kind.endsWith("power");
    return {
      width, height: width < 500 ? 200 : 240,
      cursor: { sync: { key: kind.split("-")[0] }, drag: { x: true, y: false } },
      scales: {
        x: { time: true, range: kind.startsWith("week") ? weekRange : padRange },
        "%": { range: [0, 100] },
      },
      series: power
        ? [{}, line("PV", "--pv", "W", "W", 0), line("Load", "--load", "W", "W", 0)]
        : [{}, line("Charge", "--battery", "%", "%", 0), line("Voltage", "--voltage", "V", "V", 2)],
      axes: power
        ? [axis, { ...axis, scale: "W", values: (u, ticks) => ticks.map((t) => `${t} W`), size: 60 }]
        : [axis, { ...axis, scale: "%", values: (u, ticks) => ticks.map((t) => `${t}%`) },
          { ...axis, scale: "V", side: 1, grid: { show: false }, values: (u, ticks) => ticks.map((t) => `${t} V`), size: 64 }],
    };
  }
  // the 7 days always span 7 days; a lone point gets an hour around it
  function weekRange(u, min, max) {
    const end = finite(max) ? Math.max(max, Date.now() / 1000) : Date.now() / 1000; // the server's clock may lead
    return [end - 7 * 86400, end];
  }
  function padRange(u, min, max) {
    if (!finite(min) || !finite(max)) return weekRange(u, min, max).map((t, i) => (i ? t : t + 6 * 86400));
    return max - min < 60 ? [min - 1800, max + 1800] : [min, max];
  }
  function series(kind) {
    const c = columns[kind.split("-")[0]];
    return kind.endsWith("power") ? [c[0], c[1], c[2]] : [c[0], c[3], c[4]];
  }
  function draw(kind) {
    const el = $(kind);
    const c = columns[kind.split("-")[0]];
    if (!el || !c) return;
    if (charts[kind]) charts[kind].destroy();
    el.textContent = "";
    if (c[0].length === 0) {
      svgEmpty(el);
      delete charts[kind];
    } else charts[kind] = new uPlot(chartOptions(kind, el.clientWidth || 320), series(kind), el);
    if (kind.endsWith("power")) el.dataset.points = String(c[0].length);
    if (!performance.getEntriesByName("nutbridge:first-plot").length && charts[kind]) performance.mark("nutbridge:first-plot");
  }
  function svgEmpty(el) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = "No readings in the data log yet.";
    el.appendChild(p);
  }
  function redraw(kind) {
    const chart = charts[kind];
    if (!chart) return draw(kind);
    const t = chart.data[0];
    const following = chart.scales.x.max === null || chart.scales.x.max >= t[t.length - 2]; // zoomed out to the newest
    chart.setData(series(kind), following);
    $(kind).dataset.points = kind.endsWith("power") ? String(columns.day[0].length) : $(kind).dataset.points;
  }

  function toColumns(answer) { // /api/readings?format=columns → [t, pv, load, charge %, voltage]
    const [t, pv, load, charge, voltage] = answer.columns;
    return [t, pv, load, charge.map((x) => (x === null ? null : Math.round(x * 1000) / 10)), voltage];
  }
  async function readings(params) {
    const url = `/api/readings?fields=${encodeURIComponent(DAY_FIELDS.join(","))}&format=columns&${params}`;
    const answer = await fetch(url, { cache: "no-store" });
    if (!answer.ok) throw new Error(`${url}: HTTP ${answer.status}`);
    return toColumns(await answer.json());
  }
  let pending = []; // readings that arrived while the day's history was on its way
  async function loadHistory() {
    pending = [];
    columns.day = null;
    try {
      columns.day = await readings("");
      const last = columns.day[0].length ? columns.day[0][columns.day[0].length - 1] : -Infinity;
      for (const r of pending) if (r.time > last) push(columns.day, r);
      pending = null;
      draw("day-power");
      draw("day-battery");
      columns.week = await readings(`days=7&step=${WEEK_STEP}`);
      draw("week-power");
      draw("week-battery");
    } catch (e) {
      for (const id of ["day-power", "week-power"]) setText(id, "The data log cannot be read now.");
    }
  }
  function push(c, r) {
    c[0].push(r.time);
    c[1].push(finite(r.pv_power) ? r.pv_power : null);
    c[2].push(finite(r.load_power) ? r.load_power : null);
    c[3].push(finite(r.battery_charge) ? r.battery_charge : null);
    c[4].push(finite(r.battery_voltage) ? r.battery_voltage : null);
  }
  function appendToDay(reading) { // the poll's row, as the data log writes it
    if (page !== "dashboard") return;
    if (pending !== null) return void pending.push(reading);
    if (!columns.day) return;
    const t = columns.day[0];
    if (t.length && reading.time <= t[t.length - 1]) return;
    push(columns.day, reading);
    redraw("day-power");
    redraw("day-battery");
  }

  function resize() {
    for (const [kind, chart] of Object.entries(charts)) {
      const width = $(kind).clientWidth;
      if (width && width !== chart.width) chart.setSize({ width, height: chartOptions(kind, width).height });
    }
  }

  window.nutbridge = { state, charts, columns }; // for the curious, from the browser's console
  drawFlow();
  startLive();
  if (page === "dashboard") {
    loadHistory();
    new ResizeObserver(resize).observe(document.querySelector("main"));
    // light or dark changed: the plots take their colours from the sheet again
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => Object.keys(charts).forEach(draw));
  }
})();
