// The review page: captures newest first, one shown large with the model's result, and a form for
// the expert's diagnosis, lesion id and note (PATCH /api/captures/{id}). Built for the keyboard.
"use strict";
(function () {
  const token = document.querySelector('meta[name="edge-token"]').content || new URLSearchParams(location.search).get("token");
  const withToken = (path) => (token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path);
  const $ = (id) => document.getElementById(id);
  const PAGE = 50;
  const pct = (s) => (s == null ? "\u2013" : (100 * s).toFixed(1) + " %");
  let classes = [], names = {}, captures = [], total = 0, current = -1, overlay = false;

  const nameOf = (code) => (names[code] && names[code] !== code ? names[code] + " (" + code + ")" : code);
  const when = (c) => new Date(c.created * 1000).toLocaleString();

  async function api(path, options) {
    const res = await fetch(withToken(path), { cache: "no-store", ...(options || {}) });
    let body = null;
    try { body = await res.json(); } catch (e) { body = { error: "not JSON (" + res.status + ")" }; }
    return [res.status, body];
  }

  async function loadModel() {
    const [code, m] = await api("/api/model");
    if (code !== 200) return;
    classes = m.classes.map((c) => c.code);
    m.classes.forEach((c) => { names[c.code] = c.name; });
    $("model-name").textContent = m.name || "\u2013";
    const t = m.trained_on || {};
    $("model-data").textContent = t.synthetic ? "trained on synthetic sample data" : (t.description ? "trained on " + t.description : "");
    const select = $("diagnosis");
    const none = new Option("\u2013 not reviewed \u2013", "");
    select.replaceChildren(none, ...classes.map((c, i) => new Option((i < 9 ? i + 1 + "  " : "") + nameOf(c), c)),
      new Option("0  unknown (cannot tell)", "unknown"));
  }

  function summary(c) {
    if (c.label) return nameOf(c.label) + " " + pct(c.score);
    return c.status + (c.reasons.length ? " (" + c.reasons.join(", ") + ")" : "");
  }

  function item(c, i) {
    const li = document.createElement("li");
    li.dataset.index = String(i);
    li.id = "capture-" + c.id;
    const img = document.createElement("img");
    img.loading = "lazy";
    img.alt = "capture " + c.id;
    img.src = withToken("/api/captures/" + c.id + "/thumb.jpg");
    const text = document.createElement("div");
    const head = document.createElement("p");
    head.className = "line";
    head.textContent = "#" + c.id + " \u00b7 " + when(c);
    const model = document.createElement("p");
    model.className = "line muted";
    model.textContent = "model: " + summary(c);
    const dx = document.createElement("p");
    dx.className = "line dx";
    dx.textContent = c.diagnosis ? "\u2713 " + nameOf(c.diagnosis) + (c.lesion_id ? " \u00b7 " + c.lesion_id : "") : "";
    text.append(head, model, dx);
    li.append(img, text);
    li.addEventListener("click", () => show(i));
    return li;
  }

  function render() {
    $("captures").replaceChildren(...captures.map(item));
    $("count").textContent = total ? captures.length + " of " + total + " captures" : "no captures here yet";
    $("more").hidden = captures.length >= total;
    if (current >= captures.length) current = captures.length - 1;
    if (current < 0 && captures.length) current = 0;
    if (current >= 0) show(current); else $("detail").hidden = true;
  }

  async function load(append) {
    const filter = $("filter").value;
    const offset = append ? captures.length : 0;
    const [code, body] = await api("/api/captures?limit=" + PAGE + "&offset=" + offset + (filter ? "&reviewed=" + filter : ""));
    if (code !== 200) { $("count").textContent = body.error || "cannot list the captures"; return; }
    captures = append ? captures.concat(body.captures) : body.captures;
    total = body.total;
    if (!append) current = -1;
    render();
  }

  function show(i) {
    if (i < 0 || i >= captures.length) return;
    current = i;
    const c = captures[i];
    document.querySelectorAll(".captures li.current").forEach((el) => el.classList.remove("current"));
    const li = $("capture-" + c.id);
    if (li) { li.classList.add("current"); li.scrollIntoView({ block: "nearest" }); }
    $("detail").hidden = false;
    showPicture(c);
    $("d-id").textContent = "capture #" + c.id;
    $("d-time").textContent = when(c) + " \u00b7 " + c.width + "\u00d7" + c.height + (c.original ? " \u00b7 " + c.original : "");
    $("d-status").className = "status " + c.status;
    $("d-status").textContent = c.status;
    $("d-reasons").textContent = c.reasons.join("; ");
    $("d-topk").replaceChildren(...c.top_k.map((p) => {
      const el = document.createElement("li");
      el.textContent = nameOf(p.label) + " " + pct(p.score);
      return el;
    }));
    const q = c.quality || {};
    $("d-quality").textContent = "sharpness " + (q.sharpness ?? 0).toFixed(0) + " \u00b7 brightness " + (q.brightness ?? 0).toFixed(0);
    $("d-model").textContent = "model " + (c.model.name || "?") + (c.model.sha256 ? " \u00b7 sha256 " + c.model.sha256.slice(0, 12) : "");
    $("diagnosis").value = c.diagnosis || "";
    $("lesion").value = c.lesion_id || "";
    $("note").value = c.note || "";
    $("saved").textContent = c.reviewed ? "reviewed " + new Date(c.reviewed * 1000).toLocaleString() : "";
    $("saved").className = "saved";
  }

  function showPicture(c) {
    const mapped = overlay && c.explained;
    $("explain").hidden = !c.explained;
    $("explain-none").hidden = !!c.explained;
    $("explain").setAttribute("aria-pressed", String(mapped));
    $("explain").classList.toggle("on", mapped);
    $("picture").alt = mapped ? "The part of the capture the model saw, with its top class's activation map over it"
      : "The captured picture";
    $("picture").src = withToken("/api/captures/" + c.id + (mapped ? "/explain.jpg" : "/image.jpg"));
  }

  function toggleExplain() {
    if (current < 0 || !captures[current].explained) return;
    overlay = !overlay;
    showPicture(captures[current]);
  }

  async function save(event) {
    if (event) event.preventDefault();
    if (current < 0) return;
    const c = captures[current];
    const review = { diagnosis: $("diagnosis").value || null, lesion_id: $("lesion").value.trim() || null,
                     note: $("note").value.trim() || null };
    const [code, body] = await api("/api/captures/" + c.id, { method: "PATCH",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(review) });
    if (code !== 200) {
      $("saved").className = "saved err";
      $("saved").textContent = "not saved: " + (body.error || code) + (body.hint ? " " + body.hint : "");
      return;
    }
    captures[current] = body;
    const li = $("capture-" + c.id);
    if (li) li.replaceWith(item(body, current));
    document.activeElement.blur();
    if (current + 1 < captures.length) show(current + 1); else show(current);
  }

  function onKey(e) {
    const field = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement ||
      e.target instanceof HTMLSelectElement;
    if (e.key === "Escape") { document.activeElement.blur(); return; }
    if (e.key === "Enter" && (!field || e.ctrlKey || e.metaKey || e.target.id === "lesion")) {
      e.preventDefault();
      save();
      return;
    }
    if (field || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); show(current + 1); }
    else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); show(current - 1); }
    else if (e.key === "l") { e.preventDefault(); $("lesion").focus(); }
    else if (e.key === "n") { e.preventDefault(); $("note").focus(); }
    else if (e.key === "m") { e.preventDefault(); toggleExplain(); }
    else if (e.key === "0") { $("diagnosis").value = "unknown"; }
    else if (/^[1-9]$/.test(e.key) && Number(e.key) <= classes.length) { $("diagnosis").value = classes[Number(e.key) - 1]; }
  }

  $("form").addEventListener("submit", save);
  $("explain").addEventListener("click", toggleExplain);
  $("filter").addEventListener("change", () => load(false));
  $("more").addEventListener("click", () => load(true));
  document.addEventListener("keydown", onKey);
  loadModel().then(() => load(false));
})();
