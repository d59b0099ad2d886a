// specread web page: pick/drop an image or paste a URL, POST it to v1/read, draw what was read.
// Plain browser JavaScript, no build step and nothing fetched from outside the service.
"use strict";

(() => {
  const COLORS = ["#d7263d", "#1b998b", "#f46036", "#7b2cbf", "#2e86ab", "#c08b00", "#5c946e", "#e84393"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (sel) => document.querySelector(sel);

  const form = $("#read-form");
  const drop = $("#drop");
  const fileInput = $("#file");
  const urlInput = $("#url");
  const groupInput = $("#group");
  const readButton = $("#read");
  const status = $("#status");
  const stage = $("#stage");
  const preview = $("#preview");
  const overlay = $("#overlay");
  const results = $("#results");
  const tbody = $("#values tbody");
  const jsonOut = $("#json");

  let file = null; // the chosen File, or null when a URL is used
  let objectUrl = null;
  let lastResult = null;
  const entityColor = {};

  function setStatus(text, kind = "") {
    status.textContent = text;
    status.className = kind;
  }

  function showImage(src) {
    if (objectUrl && src !== objectUrl) {
      URL.revokeObjectURL(objectUrl);
      objectUrl = null;
    }
    clearResult();
    if (!src) {
      stage.classList.add("empty");
      preview.removeAttribute("src");
      return;
    }
    preview.src = src;
    stage.classList.remove("empty");
  }

  function chooseFile(f) {
    if (!f) return;
    if (f.type && !f.type.startsWith("image/")) {
      setStatus(`${f.name} does not look like an image`, "error");
      return;
    }
    file = f;
    urlInput.value = "";
    $("#file-name").textContent = `${f.name} (${Math.max(1, Math.round(f.size / 1024))} KB)`;
    objectUrl = URL.createObjectURL(f);
    showImage(objectUrl);
    setStatus("");
  }

  // -- entities ---------------------------------------------------------------------------------------------------
  async function loadEntities() {
    const list = $("#entity-list");
    try {
      const resp = await fetch("v1/entities");
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const { entities } = await resp.json();
      list.textContent = "";
      entities.forEach((e, i) => {
        entityColor[e.name] = COLORS[i % COLORS.length];
        const label = document.createElement("label");
        label.title = `units: ${e.units.join(", ")}`;
        const box = document.createElement("input");
        box.type = "checkbox";
        box.name = "entities";
        box.value = e.name;
        box.checked = e.name === "item_weight";
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = entityColor[e.name];
        label.append(box, swatch, document.createTextNode(e.name));
        list.append(label);
      });
    } catch (err) {
      list.textContent = `cannot load the entity list (${err.message})`;
    }
  }

  function chosenEntities() {
    return [...document.querySelectorAll('#entity-list input[name="entities"]:checked')].map((b) => b.value);
  }

  // -- drawing ----------------------------------------------------------------------------------------------------
  function svg(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    return el;
  }

  function clearResult() {
    overlay.textContent = "";
    tbody.textContent = "";
    results.hidden = true;
    lastResult = null;
  }

  function draw(result) {
    const W = result.width;
    const H = result.height;
    overlay.textContent = "";
    overlay.setAttribute("viewBox", `0 0 ${W} ${H}`);
    for (const t of result.tokens) {
      const points = t.quad.map(([x, y]) => `${(x * W).toFixed(1)},${(y * H).toFixed(1)}`).join(" ");
      const poly = svg("polygon", { class: "token", points });
      const title = svg("title", {});
      title.textContent = `${t.text} (${Math.round(t.score * 100)}%)`;
      poly.append(title);
      overlay.append(poly);
    }
    for (const p of Object.values(result.predictions)) {
      if (!p.evidence) continue;
      const [x0, y0, x1, y1] = p.evidence.box;
      const pad = 0.004 * Math.max(W, H);
      const color = entityColor[p.entity] || COLORS[0];
      const rect = svg("rect", {
        class: "evidence",
        "data-entity": p.entity,
        x: (x0 * W - pad).toFixed(1),
        y: (y0 * H - pad).toFixed(1),
        width: ((x1 - x0) * W + 2 * pad).toFixed(1),
        height: ((y1 - y0) * H + 2 * pad).toFixed(1),
        fill: color,
        stroke: color,
        rx: pad.toFixed(1),
      });
      const title = svg("title", {});
      title.textContent = `${p.entity}: ${p.prediction} from "${p.evidence.text}"`;
      rect.append(title);
      const size = Math.max(10, 0.035 * H);
      const above = y0 * H - pad - size * 0.3 > size;
      const tag = svg("text", {
        class: "tag",
        x: (x0 * W).toFixed(1),
        y: (above ? y0 * H - pad - size * 0.3 : y1 * H + pad + size).toFixed(1),
        fill: color,
        "font-size": size.toFixed(1),
      });
      tag.textContent = `${p.entity}: ${p.prediction}`;
      overlay.append(rect, tag);
    }
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function table(result) {
    tbody.textContent = "";
    for (const p of Object.values(result.predictions)) {
      const tr = document.createElement("tr");
      tr.dataset.entity = p.entity;
      const name = cell("");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = entityColor[p.entity] || COLORS[0];
      name.append(swatch, document.createTextNode(` ${p.entity}`));
      const conf = cell("", "confidence");
      const meter = document.createElement("span");
      meter.className = "meter";
      const fill = document.createElement("span");
      fill.style.width = `${Math.round(p.confidence * 100)}%`;
      meter.append(fill);
      conf.append(meter, document.createTextNode(`${Math.round(p.confidence * 100)}%`));
      tr.append(
        name,
        cell(p.prediction || "(none)", p.prediction ? "value" : "value none"),
        conf,
        cell(p.evidence ? `"${p.evidence.text}"` : "-", "evidence"),
        cell(p.source || "-", "source"),
      );
      tr.addEventListener("mouseenter", () => highlight(p.entity, true));
      tr.addEventListener("mouseleave", () => highlight(p.entity, false));
      tbody.append(tr);
    }
    results.hidden = false;
  }

  function highlight(entity, on) {
    overlay.querySelectorAll(`.evidence[data-entity="${entity}"]`).forEach((r) => r.classList.toggle("active", on));
    tbody.querySelectorAll(`tr[data-entity="${entity}"]`).forEach((r) => r.classList.toggle("active", on));
  }

  // -- reading ----------------------------------------------------------------------------------------------------
  async function read(event) {
    event.preventDefault();
    const url = urlInput.value.trim();
    const entities = chosenEntities();
    if (!file && !url) return setStatus("Choose or drop an image, or paste an image URL.", "error");
    if (!entities.length) return setStatus("Choose at least one entity.", "error");
    const body = new FormData();
    if (file) body.append("image", file, file.name || "image");
    else body.append("image_url", url);
    entities.forEach((e) => body.append("entities", e));
    if (groupInput.value.trim()) body.append("group_id", groupInput.value.trim());

    readButton.disabled = true;
    setStatus("Reading…", "busy");
    const started = performance.now();
    try {
      const resp = await fetch("v1/read", { method: "POST", body, headers: { Accept: "application/json" } });
      let payload = null;
      try {
        payload = await resp.json();
      } catch {
        payload = null;
      }
      if (!resp.ok) {
        const message = payload && payload.error ? payload.error.message : `HTTP ${resp.status}`;
        throw new Error(message);
      }
      if (!file && preview.getAttribute("src") !== url) showImage(url); // clears the previous result
      lastResult = payload;
      draw(payload);
      table(payload);
      jsonOut.textContent = JSON.stringify(payload, null, 2);
      const secs = ((performance.now() - started) / 1000).toFixed(2);
      setStatus(`Read ${payload.tokens.length} text lines in ${secs} s.`);
    } catch (err) {
      setStatus(err.message, "error");
    } finally {
      readButton.disabled = false;
    }
  }

  async function copyJson() {
    if (!lastResult) return;
    const text = JSON.stringify(lastResult, null, 2);
    const note = $("#copied");
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Fallback for browsers without the async clipboard (or without permission).
      const area = document.createElement("textarea");
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    note.textContent = "copied";
    setTimeout(() => (note.textContent = ""), 2000);
  }

  // -- wiring -----------------------------------------------------------------------------------------------------
  fileInput.addEventListener("change", () => chooseFile(fileInput.files[0]));
  drop.addEventListener("click", (e) => {
    if (e.target !== fileInput && !e.target.closest("label")) fileInput.click();
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      fileInput.click();
    }
  });
  ["dragenter", "dragover"].forEach((type) =>
    drop.addEventListener(type, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    }),
  );
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    chooseFile(e.dataTransfer && e.dataTransfer.files[0]);
  });
  urlInput.addEventListener("change", () => {
    const url = urlInput.value.trim();
    if (!url) return;
    file = null;
    fileInput.value = "";
    $("#file-name").textContent = "";
    showImage(url);
  });
  $("#show-tokens").addEventListener("change", (e) => overlay.classList.toggle("hide-tokens", !e.target.checked));
  $("#copy").addEventListener("click", copyJson);
  form.addEventListener("submit", read);

  loadEntities();
})();
