// Keep a state badge fresh: poll a small JSON endpoint while the object is still changing,
// and reload the page once it settles so the full result (stats, errors) is shown.
(function () {
  "use strict";
  const el = document.querySelector("[data-poll-url]");
  if (!el) return;
  const busy = (el.dataset.busyStates || "").split(",");
  let state = el.dataset.state;
  async function tick() {
    try {
      const res = await fetch(el.dataset.pollUrl, { credentials: "same-origin" });
      const data = await res.json();
      if (data.state !== state) {
        if (!busy.includes(data.state)) return window.location.reload();
        state = data.state;
        el.textContent = data.state;
        el.className = "state state-" + data.state;
      }
      const rec = document.getElementById("received-bytes");
      if (rec && data.received_bytes !== undefined) rec.textContent = data.received_bytes;
    } catch (e) { /* transient: try again on the next tick */ }
    if (busy.includes(state)) setTimeout(tick, 3000);
  }
  if (busy.includes(state)) setTimeout(tick, 3000);
})();
