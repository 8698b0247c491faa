// Chunked, resumable upload of a corpus file (protocol: webapp/datasets/upload.py).
// The file is read slice by slice, hashed incrementally (sha256.js) and PUT at its offset;
// the server keeps what it acknowledged, so re-selecting the same file resumes the upload.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const fileInput = form.querySelector("input[type=file]");
  const bar = document.getElementById("upload-progress");
  const info = document.getElementById("upload-info");
  const errorBox = document.getElementById("upload-error");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const MAX_RETRIES = 8;

  function human(n) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n.toFixed(0)) + " " + units[i];
  }

  function showError(msg) {
    errorBox.textContent = msg;
    errorBox.hidden = false;
  }

  async function api(method, url, body, headers) {
    const res = await fetch(url, {
      method, body, credentials: "same-origin",
      headers: Object.assign({ "X-CSRFToken": csrf }, headers || {}),
    });
    let data = {};
    try { data = await res.json(); } catch (e) { data = { error: "unexpected answer (" + res.status + ")" }; }
    return { status: res.status, data };
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function readSlice(file, start, end) {
    return new Uint8Array(await file.slice(start, end).arrayBuffer());
  }

  // Hash the bytes the server already holds (resume), showing progress as we go.
  async function hashPrefix(file, upto, chunk) {
    const h = new Sha256();
    for (let pos = 0; pos < upto; pos += chunk) {
      h.update(await readSlice(file, pos, Math.min(upto, pos + chunk)));
      info.textContent = "Resuming: re-reading the first " + human(upto) + " of the local file... " +
        Math.floor((100 * Math.min(upto, pos + chunk)) / upto) + "%";
    }
    return h;
  }

  async function putChunk(id, offset, bytes) {
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await api("PUT", "/datasets/" + id + "/chunk/?offset=" + offset, bytes,
          { "Content-Type": "application/octet-stream" });
        if (r.status >= 500 && attempt < MAX_RETRIES) throw new Error(r.data.error || "server error");
        return r;
      } catch (e) {
        // Dropped connection or server restart: wait and try the same offset again.
        if (attempt >= MAX_RETRIES) throw e;
        info.textContent = "Connection problem (" + e.message + "), retrying...";
        await sleep(Math.min(30000, 500 * 2 ** attempt));
      }
    }
  }

  async function upload(file) {
    errorBox.hidden = true;
    const body = JSON.stringify({
      name: form.querySelector("[name=name]").value || file.name,
      filename: file.name,
      size: file.size,
      text_field: form.querySelector("[name=text_field]").value || "text",
    });
    const start = await api("POST", form.dataset.createUrl, body, { "Content-Type": "application/json" });
    if (start.status !== 201) return showError(start.data.error || "upload refused");
    const ds = start.data;
    const chunk = ds.chunk_bytes;
    let offset = ds.received_bytes;
    let hasher = await hashPrefix(file, offset, chunk);
    const t0 = performance.now();
    const startOffset = offset;
    bar.max = file.size;
    while (offset < file.size) {
      const bytes = await readSlice(file, offset, Math.min(file.size, offset + chunk));
      const r = await putChunk(ds.id, offset, bytes);
      if (r.status === 409 && r.data.expected_offset !== undefined) {
        // The server holds a different amount (another tab, a lost answer): continue from there.
        offset = r.data.expected_offset;
        hasher = await hashPrefix(file, offset, chunk);
        continue;
      }
      if (r.status !== 200) return showError(r.data.error || "chunk refused");
      hasher.update(bytes);
      offset = r.data.received_bytes;
      bar.value = offset;
      const secs = (performance.now() - t0) / 1000;
      const speed = (offset - startOffset) / Math.max(secs, 0.001);
      const eta = speed > 0 ? Math.round((file.size - offset) / speed) : 0;
      info.textContent = human(offset) + " of " + human(file.size) + " (" +
        Math.floor((100 * offset) / file.size) + "%), " + human(speed) + "/s, about " + eta + " s left";
    }
    info.textContent = "Upload complete, checking...";
    const done = await api("POST", "/datasets/" + ds.id + "/complete/",
      JSON.stringify({ sha256: hasher.hex() }), { "Content-Type": "application/json" });
    if (done.status !== 200) return showError(done.data.error || "completion refused");
    window.location.href = done.data.url;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    const file = fileInput.files[0];
    if (!file) return showError("Choose a file first.");
    form.querySelector("button[type=submit]").disabled = true;
    upload(file).catch((e) => showError("Upload interrupted: " + e.message +
      ". Select the same file again to resume where it stopped."))
      .finally(() => { form.querySelector("button[type=submit]").disabled = false; });
  });
})();
