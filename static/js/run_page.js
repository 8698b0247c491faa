// The run page: history over HTTP, then live points over the websocket with
// Plotly.extendTraces (no full redraw per point), reconnect with backoff asking
// for "everything after the last step I have", log tail, checkpoints, samples.
"use strict";

(function () {
  const DATA = JSON.parse(document.getElementById("run-data").textContent);
  const MAX_LOG_LINES = 2000;
  const ACTIVE = ["queued", "preparing", "starting", "running", "stopping"];
  // Before training (re)starts, rows after a resume's checkpoint may still be stored.
  const BEFORE_TRAINING = ["queued", "preparing", "starting"];
  const CHARTS = [
    // id suffix, title, [trace fields]; "loss" also gets the smoothed and validation traces.
    { key: "loss", title: "Loss", fields: ["loss"] },
    { key: "lr", title: "Learning rate", fields: ["lr"] },
    { key: "tokens_per_s", title: "Tokens / s", fields: ["tokens_per_s"] },
    { key: "mfu", title: "MFU", fields: ["mfu"] },
    { key: "grad_norm", title: "Gradient norm", fields: ["grad_norm"] },
    { key: "mem_gb", title: "GPU memory (GB)", fields: ["mem_gb"] },
  ];

  const state = {
    run: DATA.run,
    metrics: [], // kind "metric", ordered by step
    evals: [], // kind "eval", ordered by step
    lastStep: -1,
    dataAttempt: -1, // the attempt whose timeline the charts hold
    ema: null, // last smoothed loss value
    xField: "step",
    logScale: false,
    smoothing: 0.9,
    checkpoints: new Map(DATA.checkpoints.map((c) => [c.id, c])),
    samples: new Map(DATA.samples.map((s) => [s.id, s])),
    socket: null,
    retries: 0,
    plotted: false,
    empty: {}, // chart key -> showing the "no data" note
  };
  // Every update runs in order on one chain, so a history reload never interleaves
  // with live points.
  let chain = Promise.resolve();
  const enqueue = (fn) => (chain = chain.then(fn).catch((err) => console.error(err)));

  // ---------- helpers ----------
  const $ = (id) => document.getElementById(id);
  const csrf = () => document.querySelector("[name=csrfmiddlewaretoken]").value;
  const fmt = (v, digits = 4) =>
    v === null || v === undefined ? "–" : Number(v).toPrecision(digits).replace(/\.?0+$/, "");
  const fmtInt = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"));
  function fmtBytes(b) {
    if (b === null || b === undefined) return "–";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i += 1; }
    return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
  }
  function fmtDuration(s) {
    if (!isFinite(s) || s < 0) return "–";
    s = Math.round(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h ? `${h}h ${m}m` : m ? `${m}m ${sec}s` : `${sec}s`;
  }
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }
  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }

  // ---------- charts ----------
  function xOf(p) {
    if (state.xField === "step") return p.step;
    return p.tokens_seen ?? tokensAtStep(p.step);
  }
  function tokensAtStep(step) {
    // Eval points carry no tokens_seen: use the metric point at (or just before) that step.
    let lo = 0, hi = state.metrics.length - 1, best = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (state.metrics[mid].step <= step) { best = state.metrics[mid]; lo = mid + 1; } else hi = mid - 1;
    }
    return best ? best.tokens_seen : null;
  }
  function smooth(value) {
    if (value === null || value === undefined) return state.ema;
    state.ema = state.ema === null ? value : state.smoothing * state.ema + (1 - state.smoothing) * value;
    return state.ema;
  }
  function layout(chart, traces) {
    const empty = !traces.some((t) => t.y.some((v) => v !== null && v !== undefined));
    return {
      title: { text: chart.title, font: { size: 14 } },
      margin: { l: 55, r: 15, t: 35, b: 40 },
      height: 260,
      hovermode: "x unified",
      showlegend: chart.key === "loss",
      legend: { orientation: "h", x: 1, xanchor: "right", y: 1.0, yanchor: "bottom" },
      xaxis: { title: { text: state.xField === "step" ? "step" : "tokens seen" } },
      yaxis: { type: state.logScale ? "log" : "linear", exponentformat: "e" },
      // MFU is not measured on CPU, and a new run has no points yet: say so.
      annotations: empty
        ? [{ text: chart.key === "mfu" ? "no data (not measured on CPU)" : "no data yet",
             showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
             font: { color: "#5b6670" } }]
        : [],
    };
  }
  function tracesFor(chart) {
    if (chart.key === "loss") {
      state.ema = null;
      const smoothed = state.metrics.map((p) => smooth(p.loss));
      return [
        { name: "train loss", x: state.metrics.map(xOf), y: state.metrics.map((p) => p.loss),
          mode: "lines", line: { width: 1, color: "rgba(47,111,223,0.35)" } },
        { name: "smoothed", x: state.metrics.map(xOf), y: smoothed, mode: "lines",
          line: { width: 2, color: "#2f6fdf" } },
        { name: "val loss", x: state.evals.map(xOf), y: state.evals.map((p) => p.val_loss),
          mode: "lines+markers", line: { color: "#e67e22" } },
      ];
    }
    return chart.fields.map((f) => ({
      name: f, x: state.metrics.map(xOf), y: state.metrics.map((p) => p[f]), mode: "lines",
    }));
  }
  function redrawAll() {
    for (const chart of CHARTS) {
      const traces = tracesFor(chart);
      Plotly.react(`chart-${chart.key}`, traces, layout(chart, traces), {
        responsive: true, displaylogo: false,
      });
      state.empty[chart.key] = !state.metrics.length;
    }
    state.plotted = true;
  }
  function extendCharts(newMetrics, newEvals) {
    // One extendTraces call per chart for the whole batch: no redraw per point.
    for (const chart of CHARTS) {
      const id = `chart-${chart.key}`;
      if (state.empty[chart.key] && newMetrics.some((p) => p[chart.fields[0]] != null)) {
        Plotly.relayout(id, { annotations: [] }); // the first values: drop "no data yet"
        state.empty[chart.key] = false;
      }
      if (chart.key === "loss") {
        const x = newMetrics.map(xOf);
        const update = { x: [x, x], y: [newMetrics.map((p) => p.loss), newMetrics.map((p) => smooth(p.loss))] };
        const indices = [0, 1];
        if (newEvals.length) {
          update.x.push(newEvals.map(xOf));
          update.y.push(newEvals.map((p) => p.val_loss));
          indices.push(2);
        }
        if (newMetrics.length || newEvals.length) Plotly.extendTraces(id, update, indices);
      } else if (newMetrics.length) {
        Plotly.extendTraces(
          id,
          { x: chart.fields.map(() => newMetrics.map(xOf)), y: chart.fields.map((f) => newMetrics.map((p) => p[f])) },
          chart.fields.map((_, i) => i),
        );
      }
    }
  }

  // ---------- history and live points ----------
  async function loadHistory() {
    const data = await getJSON(DATA.metrics_url);
    state.metrics = data.metrics.filter((p) => p.kind === "metric");
    state.evals = data.metrics.filter((p) => p.kind === "eval");
    state.lastStep = data.last_step ?? -1;
    state.dataAttempt = BEFORE_TRAINING.includes(data.run.state) ? data.run.attempt - 1 : data.run.attempt;
    $("history-note").textContent = data.downsampled ? "history downsampled (min/max per bucket)" : "";
    applyRun(data.run);
    redrawAll();
  }
  async function catchUp() {
    // After (re)connecting: everything after the last step we have.
    const data = await getJSON(`${DATA.metrics_url}?after=${Math.max(0, state.lastStep)}`);
    const resumedMeanwhile = data.run.attempt > state.dataAttempt && !BEFORE_TRAINING.includes(data.run.state);
    // Fell far behind, or a resume rewound the timeline while we were away: reload.
    if (data.truncated || resumedMeanwhile) return loadHistory();
    applyRun(data.run);
    addPoints(data.metrics);
  }
  function addPoints(points) {
    // A new attempt resumes from a checkpoint behind our last step: its points replace
    // ours from there on (one full redraw per resume).
    const incoming = points.filter((p) => p.kind === "metric").map((p) => p.step);
    const first = incoming.length ? Math.min(...incoming) : Infinity;
    if (first <= state.lastStep && state.run.attempt > state.dataAttempt) rewind(first);
    const fresh = points.filter((p) => p.step > state.lastStep ||
      (p.kind === "eval" && p.step === state.lastStep && !state.evals.some((e) => e.step === p.step)));
    if (!fresh.length) return;
    fresh.sort((a, b) => a.step - b.step);
    const newMetrics = fresh.filter((p) => p.kind === "metric");
    const newEvals = fresh.filter((p) => p.kind === "eval");
    state.metrics.push(...newMetrics);
    state.evals.push(...newEvals);
    state.lastStep = Math.max(state.lastStep, fresh[fresh.length - 1].step);
    if (state.plotted) extendCharts(newMetrics, newEvals);
  }
  function rewind(step) {
    state.metrics = state.metrics.filter((p) => p.step < step);
    state.evals = state.evals.filter((p) => p.step < step);
    const last = Math.max(-1, ...state.metrics.map((p) => p.step), ...state.evals.map((p) => p.step));
    state.lastStep = last;
    state.dataAttempt = state.run.attempt;
    redrawAll();
  }
  async function onPayload(payload) {
    if (payload.run) applyRun(payload.run); // first: the attempt decides what points mean
    if (payload.metrics) addPoints(payload.metrics);
    if (payload.checkpoints) payload.checkpoints.forEach(upsertCheckpoint);
    if (payload.samples) payload.samples.forEach((s) => state.samples.set(s.id, s));
    if (payload.log) appendLog(payload.log);
    if (payload.checkpoints) {
      renderCheckpoints();
      // A new checkpoint may have retired an old one (keep last K): reload the table.
      enqueue(loadCheckpoints);
    }
    if (payload.samples) renderSamples();
  }

  // ---------- websocket with backoff ----------
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${DATA.ws_path}`);
    state.socket = socket;
    socket.onopen = () => {
      state.retries = 0;
      $("fact-socket").textContent = "connected";
      enqueue(catchUp);
      enqueue(loadLog);
      if (state.connectedBefore) { // what changed while away
        enqueue(loadCheckpoints);
        enqueue(loadSamples);
      }
      state.connectedBefore = true;
    };
    socket.onmessage = (event) => {
      const payload = JSON.parse(event.data);
      enqueue(() => onPayload(payload));
    };
    socket.onclose = (event) => {
      if (event.code === 4401 || event.code === 4403) {
        $("fact-socket").textContent = "not allowed";
        return; // reconnecting would be refused again
      }
      const delay = Math.min(30000, 1000 * 2 ** state.retries) * (0.75 + Math.random() / 2);
      state.retries += 1;
      $("fact-socket").textContent = `reconnecting in ${Math.round(delay / 1000)}s`;
      setTimeout(connect, delay);
    };
  }

  // ---------- header ----------
  function applyRun(run) {
    if (!run) return;
    state.run = run;
    const s = $("run-state");
    s.textContent = run.state;
    s.className = `state state-${run.state}`;
    $("fact-step").textContent = run.total_steps ? `${fmtInt(run.step)} / ${fmtInt(run.total_steps)}` : fmtInt(run.step);
    $("fact-tokens").textContent = fmtInt(run.tokens_seen);
    $("fact-host").textContent = run.host || "–";
    $("fact-attempt").textContent = run.attempt;
    $("run-message").textContent = run.message || "";
    $("stop-form").hidden = !ACTIVE.includes(run.state);
    tick();
  }
  function tick() {
    const run = state.run;
    const started = run.started_at ? Date.parse(run.started_at) : null;
    const end = run.finished_at && !ACTIVE.includes(run.state) ? Date.parse(run.finished_at) : Date.now();
    $("fact-elapsed").textContent = started ? fmtDuration((end - started) / 1000) : "–";
    $("fact-eta").textContent = run.state === "running" ? fmtDuration(eta()) : "–";
  }
  function eta() {
    // Seconds per step over the last 50 points, times the steps left.
    const recent = state.metrics.slice(-50);
    if (recent.length < 2 || !state.run.total_steps) return NaN;
    const a = recent[0], b = recent[recent.length - 1];
    const perStep = (b.t - a.t) / Math.max(1, b.step - a.step);
    return perStep * (state.run.total_steps - state.run.step);
  }

  // ---------- log ----------
  async function loadLog() {
    const data = await getJSON(DATA.log_url);
    $("log").textContent = "";
    appendLog(data.lines);
  }
  function appendLog(lines) {
    const pre = $("log");
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const all = (pre.textContent ? pre.textContent.split("\n") : []).concat(lines);
    pre.textContent = all.slice(-MAX_LOG_LINES).join("\n");
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  // ---------- checkpoints ----------
  async function loadCheckpoints() {
    const data = await getJSON(DATA.checkpoints_url);
    state.checkpoints = new Map(data.checkpoints.map((c) => [c.id, c]));
    renderCheckpoints();
  }
  function upsertCheckpoint(c) {
    if (c.deleted) state.checkpoints.delete(c.id);
    else state.checkpoints.set(c.id, c);
  }
  function actionForm(checkpoint, action, label, extra = {}) {
    const form = el("form", { method: "post", action: `${DATA.base_url}checkpoints/${checkpoint.id}/${action}/`, class: "inline" },
      el("input", { type: "hidden", name: "csrfmiddlewaretoken", value: csrf() }),
      ...(extra.fields || []),
      el("button", { type: "submit", class: extra.danger ? "danger" : "", "data-action": action, text: label }));
    if (extra.confirm) form.addEventListener("submit", (e) => { if (!confirm(extra.confirm)) e.preventDefault(); });
    return form;
  }
  function exportCell(c) {
    if (c.export_state === "done") {
      return el("span", {}, el("a", { href: `${DATA.base_url}checkpoints/${c.id}/export.tar`, text: "download" }),
        el("br"), el("code", { class: "muted", text: c.export_path }));
    }
    const badge = el("span", { class: `state state-${c.export_state || "none"}`, text: c.export_state || "–" });
    if (c.export_state !== "failed" || !c.export_error) return badge;
    // The server sends the reason already short and without server paths.
    return el("span", {}, badge, el("br"), el("small", { class: "error export-error", text: c.export_error }));
  }
  function renderCheckpoints() {
    const body = $("checkpoint-rows");
    const rows = [...state.checkpoints.values()].sort((a, b) => a.step - b.step);
    body.replaceChildren();
    if (!rows.length) {
      body.append(el("tr", { class: "empty" }, el("td", { colspan: 8, class: "muted", text: "No checkpoints yet." })));
      return;
    }
    for (const c of rows) {
      const actions = el("td", { class: "actions" },
        actionForm(c, "resume", "Resume from here", {
          confirm: `Resume the run from step ${c.step} in a new attempt?`,
          // Optional: continue past the planned end (empty keeps the run's total steps).
          fields: [el("input", { type: "number", name: "total_steps", min: c.step + 1, step: 1,
            placeholder: "total steps", title: "New total steps (empty: keep the run's)", class: "steps-input" })],
        }),
        actionForm(c, "export", "Export"),
        el("button", { type: "button", class: "secondary", "data-action": "generate", text: "Generate sample", onclick: () => openGenerate(c) }),
        el("button", { type: "button", class: "secondary", "data-action": "files", text: "Files", onclick: () => browse(c, "") }),
        actionForm(c, "delete", "Delete", { danger: true, confirm: `Delete the checkpoint of step ${c.step}?` }));
      body.append(el("tr", { "data-step": c.step, "data-id": c.id },
        el("td", { text: c.step }), el("td", { text: fmtInt(c.tokens_seen) }),
        el("td", { text: fmt(c.loss) }), el("td", { text: fmt(c.val_loss) }),
        el("td", { text: fmtBytes(c.bytes) }),
        el("td", { text: c.created_at ? new Date(c.created_at).toLocaleString() : "–" }),
        el("td", {}, exportCell(c)), actions));
    }
  }
  function openGenerate(c) {
    const form = $("generate-form");
    form.action = `${DATA.base_url}checkpoints/${c.id}/generate/`;
    $("generate-step").textContent = c.step;
    form.hidden = false;
    form.querySelector("textarea").focus();
  }
  async function browse(c, path) {
    const url = `${DATA.base_url}checkpoints/${c.id}/files/?path=${encodeURIComponent(path)}`;
    const data = await getJSON(url);
    $("file-browser-path").textContent = `${c.path}/${data.path}`;
    const rows = $("file-rows");
    rows.replaceChildren();
    if (data.path) {
      const up = data.path.split("/").slice(0, -1).join("/");
      rows.append(el("tr", {}, el("td", {}, el("a", { href: "#", text: "..", onclick: (e) => { e.preventDefault(); browse(c, up); } })), el("td")));
    }
    for (const f of data.files) {
      const name = f.kind === "dir"
        ? el("a", { href: "#", text: `${f.name}/`, onclick: (e) => { e.preventDefault(); browse(c, data.path ? `${data.path}/${f.name}` : f.name); } })
        : el("span", { text: f.kind === "link" ? `${f.name} (link)` : f.name });
      rows.append(el("tr", {}, el("td", {}, name), el("td", { text: fmtBytes(f.bytes) })));
    }
    $("file-browser").hidden = false;
  }

  // ---------- samples ----------
  function renderSamples() {
    const list = $("sample-list");
    list.replaceChildren();
    const steps = new Map([...state.checkpoints.values()].map((c) => [c.id, c.step]));
    const samples = [...state.samples.values()].sort((a, b) => b.id - a.id);
    for (const s of samples) {
      const body = s.state === "done" ? el("pre", { class: "sample-output", text: s.prompt + s.output })
        : s.state === "failed" ? el("pre", { class: "error", text: s.error })
        : el("p", { class: "muted", text: `${s.state}…` });
      list.append(el("li", { "data-sample": s.id, "data-state": s.state },
        el("div", { class: "muted", text: `step ${steps.get(s.checkpoint) ?? "?"} · ${JSON.stringify(s.params)}` }), body));
    }
    pollSamplesIfPending();
  }
  let samplePoll = null;
  function pollSamplesIfPending() {
    // The socket is best effort: while a sample is pending, also ask over HTTP.
    const pending = [...state.samples.values()].some((s) => s.state === "queued" || s.state === "running");
    if (!pending || samplePoll) return;
    samplePoll = setTimeout(async () => {
      samplePoll = null;
      await loadSamples();
    }, 3000);
  }
  async function loadSamples() {
    const data = await getJSON(DATA.samples_url);
    data.samples.forEach((s) => state.samples.set(s.id, s));
    renderSamples();
  }

  // ---------- controls ----------
  $("x-axis").addEventListener("change", (e) => { state.xField = e.target.value; enqueue(redrawAll); });
  $("log-scale").addEventListener("change", (e) => { state.logScale = e.target.checked; enqueue(redrawAll); });
  $("smoothing").addEventListener("input", (e) => {
    state.smoothing = Number(e.target.value);
    $("smoothing-value").textContent = state.smoothing.toFixed(2);
    enqueue(redrawAll);
  });
  $("file-browser-close").addEventListener("click", () => { $("file-browser").hidden = true; });

  renderCheckpoints();
  renderSamples();
  applyRun(state.run);
  setInterval(tick, 1000);
  enqueue(loadHistory).then(connect);
  // For tests and debugging: what the page holds.
  window.runPage = state;
})();
