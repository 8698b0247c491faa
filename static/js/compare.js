// Compare: overlay one metric (loss by default: training and validation) of several runs,
// from each run's downsampled history. The metric picker offers what the points carry:
// a metric no run has (MFU on CPU) is disabled, and a run without it just has no trace.
"use strict";

(function () {
  const DATA = JSON.parse(document.getElementById("compare-data").textContent);
  // Picker value -> chart title, the metric-point field and (for loss) the eval-point field.
  const METRICS = {
    loss: { title: "Loss", train: "loss", val: "val_loss" },
    lr: { title: "Learning rate", train: "lr" },
    grad_norm: { title: "Gradient norm", train: "grad_norm" },
    tokens_per_s: { title: "Tokens / s", train: "tokens_per_s" },
    mfu: { title: "MFU", train: "mfu" },
  };
  const picker = document.getElementById("metric");
  const state = {
    series: [],
    metric: METRICS[picker.value] ? picker.value : "loss",
    xField: "step",
    logScale: false,
  };
  const has = (p, field) => p[field] !== null && p[field] !== undefined;

  async function load() {
    state.series = await Promise.all(DATA.runs.map(async (run) => {
      const response = await fetch(`/api/runs/${run.id}/metrics?max_points=${DATA.max_points}`);
      if (!response.ok) return { run, metrics: [] };
      const data = await response.json();
      return { run, metrics: data.metrics };
    }));
    markAvailable();
    draw();
  }

  function markAvailable() {
    // Loss stays pickable (the default, even before any point); the current pick too.
    for (const option of picker.options) {
      const spec = METRICS[option.value];
      if (!spec || option.value === "loss" || option.value === state.metric) continue;
      const present = state.series.some(({ metrics }) =>
        metrics.some((p) => p.kind === "metric" && has(p, spec.train)));
      option.disabled = !present;
      if (!present && !option.textContent.endsWith(" (no data)")) option.textContent += " (no data)";
    }
  }

  function draw() {
    const spec = METRICS[state.metric];
    const traces = [];
    state.series.forEach(({ run, metrics }, i) => {
      const color = `hsl(${(i * 137) % 360}, 65%, 45%)`;
      const steps = metrics.filter((p) => p.kind === "metric");
      const train = steps.filter((p) => has(p, spec.train));
      // Eval points carry no tokens_seen: take the metric point's at that step.
      const tokensAt = new Map(steps.map((p) => [p.step, p.tokens_seen]));
      const x = (p) => (state.xField === "step" ? p.step : p.tokens_seen ?? tokensAt.get(p.step) ?? null);
      if (train.length) {
        traces.push({ name: `${run.name} #${run.id}`, x: train.map(x), y: train.map((p) => p[spec.train]),
          mode: "lines", line: { color, width: 1.5 } });
      }
      if (spec.val) {
        const val = metrics.filter((p) => p.kind === "eval" && has(p, spec.val));
        if (val.length) {
          traces.push({ name: `${run.name} #${run.id} val`, x: val.map(x), y: val.map((p) => p[spec.val]),
            mode: "lines+markers", line: { color, dash: "dot" } });
        }
      }
    });
    Plotly.react("chart-compare", traces, {
      title: { text: spec.title }, height: 480, hovermode: "x unified",
      xaxis: { title: { text: state.xField === "step" ? "step" : "tokens seen" } },
      yaxis: { type: state.logScale ? "log" : "linear", exponentformat: "e" },
      margin: { l: 55, r: 15, t: 40, b: 40 },
      annotations: traces.length || !state.series.length
        ? []
        : [{ text: `no ${spec.title.toLowerCase()} points in these runs`, showarrow: false,
             xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#5b6670" } }],
    }, { responsive: true, displaylogo: false });
  }

  picker.addEventListener("change", (e) => {
    if (!METRICS[e.target.value]) return;
    state.metric = e.target.value;
    draw();
  });
  document.getElementById("x-axis").addEventListener("change", (e) => { state.xField = e.target.value; draw(); });
  document.getElementById("log-scale").addEventListener("change", (e) => { state.logScale = e.target.checked; draw(); });
  load();
})();
