// Compare: overlay the (downsampled) training and validation loss of several runs.
"use strict";

(function () {
  const DATA = JSON.parse(document.getElementById("compare-data").textContent);
  const state = { series: [], xField: "step", logScale: false };

  async function load() {
    state.series = await Promise.all(DATA.runs.map(async (run) => {
      const response = await fetch(`/api/runs/${run.id}/metrics?max_points=${DATA.max_points}`);
      if (!response.ok) return { run, metrics: [] };
      const data = await response.json();
      return { run, metrics: data.metrics };
    }));
    draw();
  }

  function draw() {
    const traces = [];
    state.series.forEach(({ run, metrics }, i) => {
      const color = `hsl(${(i * 137) % 360}, 65%, 45%)`;
      const train = metrics.filter((p) => p.kind === "metric" && p.loss !== null);
      const val = metrics.filter((p) => p.kind === "eval" && p.val_loss !== null);
      const tokensAt = new Map(train.map((p) => [p.step, p.tokens_seen]));
      const x = (p) => (state.xField === "step" ? p.step : p.tokens_seen ?? tokensAt.get(p.step) ?? null);
      traces.push({ name: `${run.name} #${run.id}`, x: train.map(x), y: train.map((p) => p.loss),
        mode: "lines", line: { color, width: 1.5 } });
      if (val.length) {
        traces.push({ name: `${run.name} #${run.id} val`, x: val.map(x), y: val.map((p) => p.val_loss),
          mode: "lines+markers", line: { color, dash: "dot" } });
      }
    });
    Plotly.react("chart-compare", traces, {
      title: { text: "Loss" }, height: 480, hovermode: "x unified",
      xaxis: { title: { text: state.xField === "step" ? "step" : "tokens seen" } },
      yaxis: { type: state.logScale ? "log" : "linear" },
      margin: { l: 55, r: 15, t: 40, b: 40 },
    }, { responsive: true, displaylogo: false });
  }

  document.getElementById("x-axis").addEventListener("change", (e) => { state.xField = e.target.value; draw(); });
  document.getElementById("log-scale").addEventListener("change", (e) => { state.logScale = e.target.checked; draw(); });
  load();
})();
