// The live page: polls /api/latest and /api/stats, shows the MJPEG stream. No external resources.
"use strict";
(function () {
  // filled in by the server when an access token is set; the address bar is the fallback
  const token = document.querySelector('meta[name="edge-token"]').content || new URLSearchParams(location.search).get("token");
  const withToken = (path) => (token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path);
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 330, STATS_MS = 2000, STALE_MS = 5000;
  let lastFrame = null, lastChange = Date.now();

  function setText(id, text) { const el = $(id); if (el.textContent !== text) el.textContent = text; }
  function setConn(cls, text) { $("conn").className = "conn " + cls; setText("conn", text); }
  const pct = (s) => (s == null ? "\u2013" : (100 * s).toFixed(1) + " %");
  const ms = (v) => (v == null ? "\u2013" : v.toFixed(v < 10 ? 1 : 0) + " ms");

  let model = null;
  const nameOf = (p) => (p.name && p.name !== p.label ? p.name : p.label);
  const codeOf = (p) => (p.name && p.name !== p.label ? p.label : "");

  async function loadModel() {
    try {
      const [code, m] = await getJSON("/api/model");
      if (code !== 200) return;
      model = m;
      setText("model-name", m.name || "\u2013");
      setText("model-sha", m.short_sha256 ? "sha256 " + m.short_sha256 : "");
      const data = $("model-data"), t = m.trained_on || {};
      data.className = t.synthetic ? "synthetic" : "";
      setText("model-data", t.synthetic ? "trained on synthetic sample data, not on real lesions"
        : (t.description || t.data ? "trained on " + (t.description || t.data) : ""));
      setText("score-kind", m.smoothing < 1 ? "smoothed score" : "score");
      $("capture").hidden = !m.archive;
      $("explain").hidden = !m.explain;
      $("review-link").hidden = !m.archive;
    } catch (e) { setTimeout(loadModel, 2000); }
  }

  let noteTimer = null;
  function captureNote(text, bad) {
    const el = $("capture-note");
    el.className = "capture-note" + (bad ? " err" : "");
    el.hidden = false;
    setText("capture-note", text);
    clearTimeout(noteTimer);
    noteTimer = setTimeout(() => { el.hidden = true; }, 6000);
  }

  async function capture() {
    const button = $("capture");
    if (button.hidden || button.disabled) return;
    button.disabled = true;
    try {
      const res = await fetch(withToken("/api/captures"), { method: "POST", cache: "no-store",
        headers: { "Content-Type": "application/json" }, body: "{}" });
      const body = await res.json();
      if (res.status === 201) {
        const top = body.top_k[0];
        const what = body.label ? nameOf(top) + " " + pct(body.score)
          : body.status + (body.reasons.length ? ": " + body.reasons.join(", ") : "") + (top ? "; top class " + nameOf(top) + " " + pct(top.score) : "");
        captureNote("capture " + body.id + " stored (" + what + ", " + body.width + "\u00d7" + body.height + ")", false);
      } else {
        captureNote("not captured: " + body.error, true);
      }
    } catch (e) {
      captureNote("not captured: connection lost", true);
    }
    button.disabled = false;
  }

  function showResult(r) {
    if (r.frame !== lastFrame) { lastFrame = r.frame; lastChange = Date.now(); }
    const stale = Date.now() - lastChange > STALE_MS;
    const status = stale ? "stale" : r.status;
    $("status").className = "status " + status;
    setText("status", status);
    const shown = r.status === "ok" && r.label != null;
    const label = $("label");
    label.className = "label" + (shown ? "" : " uncertain");
    const top = shown ? r.top_k[0] : null;
    setText("label", shown ? nameOf(top) : (r.status === "error" ? "No result" : "Uncertain"));
    setText("code", shown ? codeOf(top) : "");
    const reasons = $("reasons");
    reasons.hidden = shown;
    setText("reasons", shown ? "" : (r.reasons.length ? r.reasons.join("; ") : "low confidence"));
    setText("score", shown ? pct(r.score) : "\u2013");
    $("scorebar").style.width = shown ? (100 * r.score).toFixed(1) + "%" : "0";
    const topk = $("topk");
    topk.replaceChildren(...(shown ? r.top_k.slice(1) : []).map((p) => {  // the top score is shown once, above
      const li = document.createElement("li");
      li.textContent = nameOf(p) + (codeOf(p) ? " (" + codeOf(p) + ")" : "") + " " + pct(p.score);
      return li;
    }));
    setText("fps", r.fps.toFixed(1));
    setText("latency", ms(r.latency_ms));
    setText("invoke", ms(r.times_ms.invoke));
    setText("frame", String(r.frame));
    if (r.disclaimer) setText("disclaimer", r.disclaimer);
    setConn(stale ? "wait" : "ok", stale ? "no new results" : "live");
  }

  async function getJSON(path) {
    const res = await fetch(withToken(path), { cache: "no-store" });
    if (res.status === 401) throw new Error("access token missing or wrong");
    return [res.status, await res.json()];
  }

  async function poll() {
    try {
      const [code, body] = await getJSON("/api/latest");
      if (code === 200) showResult(body);
      else setConn("wait", "waiting for the first result");
    } catch (e) {
      setConn("err", e.message.includes("token") ? e.message : "connection lost");
    }
    setTimeout(poll, POLL_MS);
  }

  function duration(s) {
    if (s == null) return "\u2013";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? h + " h " + m + " min" : m ? m + " min " + Math.floor(s % 60) + " s" : Math.floor(s) + " s";
  }

  async function pollStats() {
    try {
      const [code, s] = await getJSON("/api/stats");
      if (code === 200) {
        const dropped = s.frames && s.frames.dropped;
        setText("dropped", dropped == null ? "\u2013" : String(dropped));
        setText("uptime", duration(s.uptime_s ?? (s.server && s.server.uptime_s)));
      }
    } catch (e) { /* poll() reports the connection state */ }
    setTimeout(pollStats, STATS_MS);
  }

  let overlay = false;  // the activation map over the view (GET /stream.mjpg?overlay=1)
  const streamPath = () => "/stream.mjpg" + (overlay ? "?overlay=1" : "");

  function startStream() {
    const img = $("view");
    img.onload = () => { $("view-note").hidden = true; };
    img.onerror = () => {
      $("view-note").hidden = false;
      setText("view-note", "camera view unavailable, retrying");
      setTimeout(() => { img.src = withToken(streamPath() + (overlay ? "&" : "?") + "t=" + Date.now()); }, 2000);
    };
    img.src = withToken(streamPath());
  }

  function toggleExplain() {
    const button = $("explain");
    if (button.hidden) return;
    overlay = !overlay;
    button.setAttribute("aria-pressed", String(overlay));
    button.classList.toggle("on", overlay);
    $("view").alt = overlay ? "Camera view with the top class's activation map over the part the model sees"
      : "Camera view with the current result drawn on it";
    $("view").src = withToken(streamPath());
  }

  // the stream never finishes loading: start it after the page's load event so that event still fires
  if (document.readyState === "complete") startStream(); else window.addEventListener("load", startStream);
  $("capture").addEventListener("click", capture);
  $("explain").addEventListener("click", toggleExplain);
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.target instanceof HTMLInputElement) return;
    if (e.key === "c") capture();
    else if (e.key === "m") toggleExplain();
  });
  loadModel();
  poll();
  pollStats();
})();
