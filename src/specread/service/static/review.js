// specread review page: one row at a time, least confident first; every decision is saved by the server at once.
// Plain browser JavaScript, no build step and nothing fetched from outside the server.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (sel) => document.querySelector(sel);

  const preview = $("#preview");
  const overlay = $("#overlay");
  const stage = $("#stage");
  const choicesBox = $("#choices");
  const typed = $("#typed");
  const typedCheck = $("#typed-check");
  const useTyped = $("#use-typed");
  const status = $("#status");

  let row = null; // the row shown (GET v1/review/rows/{index})
  let busy = false; // a request that changes the review is in flight
  let typedAnswer = ""; // the typed text's answer once the server accepts it
  let checkTimer = null;

  function setStatus(text, kind = "") {
    status.textContent = text;
    status.className = kind;
  }

  async function api(path, options = {}) {
    const resp = await fetch(path, { headers: { Accept: "application/json", ...(options.headers || {}) }, ...options });
    let payload = null;
    try {
      payload = await resp.json();
    } catch {
      payload = null;
    }
    if (!resp.ok) throw new Error(payload && payload.error ? payload.error.message : `HTTP ${resp.status}`);
    return payload;
  }

  function percent(x) {
    return x === null || x === undefined ? "" : `${Math.round(x * 100)}%`;
  }

  function showProgress(state) {
    const bar = $("#progress");
    bar.max = Math.max(1, state.total);
    bar.value = state.reviewed;
    $("#progress-text").textContent = `${state.reviewed} / ${state.total} reviewed`;
  }

  // -- drawing ------------------------------------------------------------------------------------------------------
  function svg(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    return el;
  }

  function draw() {
    overlay.textContent = "";
    if (!row || !row.page) return;
    const W = row.page.width;
    const H = row.page.height;
    overlay.setAttribute("viewBox", `0 0 ${W} ${H}`);
    for (const t of row.tokens) {
      const points = t.quad.map(([x, y]) => `${(x * W).toFixed(1)},${(y * H).toFixed(1)}`).join(" ");
      const poly = svg("polygon", { class: "token", points });
      const title = svg("title", {});
      title.textContent = `${t.text} (${percent(t.score)})`;
      poly.append(title);
      overlay.append(poly);
    }
    const chosen = chosenAnswer();
    const pad = 0.004 * Math.max(W, H);
    for (const c of row.choices) {
      const [x0, y0, x1, y1] = c.box;
      const rect = svg("rect", {
        class: `choice${c.answer === chosen ? " current" : ""}`,
        "data-n": c.n,
        x: (x0 * W - pad).toFixed(1),
        y: (y0 * H - pad).toFixed(1),
        width: ((x1 - x0) * W + 2 * pad).toFixed(1),
        height: ((y1 - y0) * H + 2 * pad).toFixed(1),
        rx: pad.toFixed(1),
      });
      const title = svg("title", {});
      title.textContent = `${c.n}: ${c.answer} from "${c.text}"`;
      rect.append(title);
      rect.addEventListener("click", () => pick(c.n));
      overlay.append(rect);
    }
  }

  // the answer highlighted: the decision when the row has one, else the prediction under review
  function chosenAnswer() {
    return row.decision ? row.decision.entity_value : row.prediction;
  }

  function highlight(n, on) {
    overlay.querySelectorAll(`.choice[data-n="${n}"]`).forEach((r) => r.classList.toggle("active", on));
  }

  function renderChoices() {
    choicesBox.textContent = "";
    if (!row.choices.length) {
      const none = document.createElement("p");
      none.className = "hint";
      none.textContent = row.image_problem || "No candidate was read for this entity.";
      choicesBox.append(none);
    }
    const chosen = chosenAnswer();
    for (const c of row.choices) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = `chip${c.answer === chosen ? " current" : ""}`;
      chip.dataset.n = c.n;
      chip.setAttribute("role", "listitem");
      chip.title = `read from "${c.text}"`;
      const key = document.createElement("kbd");
      key.textContent = c.n <= 9 ? String(c.n) : "";
      const value = document.createElement("span");
      value.className = "chip-value";
      value.textContent = c.answer;
      const conf = document.createElement("span");
      conf.className = "chip-confidence";
      conf.textContent = percent(c.confidence);
      chip.append(key, value, conf);
      chip.addEventListener("click", () => pick(c.n));
      chip.addEventListener("mouseenter", () => highlight(c.n, true));
      chip.addEventListener("mouseleave", () => highlight(c.n, false));
      choicesBox.append(chip);
    }
  }

  function render(data) {
    row = data;
    if (document.activeElement instanceof HTMLElement) document.activeElement.blur(); // keys act on the new row
    document.body.dataset.index = row.index;
    $("#done").hidden = true;
    $("#panel").hidden = false;
    $("#view").hidden = false;
    $("#where").textContent = `row ${row.position} of ${row.total} · index ${row.index}${
      row.group_id ? ` · group ${row.group_id}` : ""
    }`;
    $("#entity").textContent = row.entity;
    $("#answer").textContent = row.prediction || "(none)";
    $("#answer-confidence").textContent = row.confidence === null ? "" : `confidence ${percent(row.confidence)}`;
    const decided = $("#decided");
    decided.hidden = !row.decision;
    if (row.decision) {
      const d = row.decision;
      decided.textContent = `decided (${d.decision}): ${d.entity_value || "not on the image"}`;
    }
    typed.value = "";
    typedAnswer = "";
    typedCheck.textContent = `units: ${row.units.join(", ")}`;
    typedCheck.className = "hint";
    useTyped.disabled = true;
    renderChoices();
    overlay.textContent = "";
    if (row.image) {
      stage.classList.remove("empty");
      const src = `v1/review/image?name=${encodeURIComponent(row.image)}`;
      if (preview.getAttribute("src") !== src) preview.src = src;
      draw();
    } else {
      stage.classList.add("empty");
      preview.removeAttribute("src");
      $("#stage-hint").textContent = row.image_problem || "no image";
    }
    $("#back").disabled = !row.prev;
    $("#skip").disabled = !row.next;
  }

  function showDone() {
    row = null;
    delete document.body.dataset.index;
    document.body.dataset.done = "true";
    $("#panel").hidden = true;
    $("#view").hidden = true;
    $("#done").hidden = false;
  }

  async function load(index) {
    delete document.body.dataset.done;
    document.body.dataset.loading = "true";
    try {
      render(await api(`v1/review/rows/${encodeURIComponent(index)}`));
      setStatus("");
    } catch (err) {
      setStatus(err.message, "error");
    } finally {
      delete document.body.dataset.loading;
    }
  }

  // -- decisions ----------------------------------------------------------------------------------------------------
  async function change(request, after) {
    if (busy) return;
    busy = true;
    document.body.dataset.loading = "true";
    try {
      const result = await request();
      showProgress(result.state);
      await after(result);
    } catch (err) {
      setStatus(err.message, "error");
    } finally {
      busy = false;
      delete document.body.dataset.loading;
    }
  }

  function decide(body) {
    if (!row) return;
    const index = row.index;
    change(
      () =>
        api(`v1/review/rows/${encodeURIComponent(index)}/decision`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
        }),
      async (result) => {
        if (result.next) await load(result.next);
        else showDone();
        const d = result.decision;
        setStatus(`saved ${index}: ${d.decision} ${d.entity_value || "(not on the image)"}`);
      },
    );
  }

  function pick(n) {
    if (row && row.choices.some((c) => c.n === n)) decide({ decision: "pick", candidate: n });
  }

  function undo() {
    change(
      () => api("v1/review/undo", { method: "POST" }),
      async (result) => {
        if (!result.undone) return setStatus("nothing to undo");
        await load(result.undone.index);
        setStatus(`undone: ${result.undone.index}`);
      },
    );
  }

  async function checkTyped() {
    const text = typed.value.trim();
    typedAnswer = "";
    useTyped.disabled = true;
    if (!text) {
      typedCheck.textContent = `units: ${row.units.join(", ")}`;
      typedCheck.className = "hint";
      typed.removeAttribute("aria-invalid");
      return;
    }
    try {
      const q = new URLSearchParams({ entity: row.entity, text });
      const result = await api(`v1/review/check?${q}`);
      if (typed.value.trim() !== text) return; // typed on meanwhile: a newer check follows
      typedAnswer = result.ok ? result.answer : "";
      typedCheck.textContent = result.ok ? `✓ ${result.answer}` : `✗ ${result.message}`;
      typedCheck.className = result.ok ? "ok" : "error";
      typed.setAttribute("aria-invalid", result.ok ? "false" : "true");
      useTyped.disabled = !result.ok;
    } catch (err) {
      typedCheck.textContent = err.message;
      typedCheck.className = "error";
    }
  }

  // -- wiring -------------------------------------------------------------------------------------------------------
  typed.addEventListener("input", () => {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(checkTyped, 120);
  });
  $("#typed-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearTimeout(checkTimer);
    await checkTyped();
    if (typedAnswer) decide({ decision: "typed", value: typed.value.trim() });
  });
  $("#accept").addEventListener("click", () => decide({ decision: "accept" }));
  $("#absent").addEventListener("click", () => decide({ decision: "absent" }));
  $("#undo").addEventListener("click", undo);
  $("#undo-done").addEventListener("click", undo);
  $("#back").addEventListener("click", () => row && row.prev && load(row.prev));
  $("#skip").addEventListener("click", () => row && row.next && load(row.next));
  $("#show-tokens").addEventListener("change", (e) => overlay.classList.toggle("hide-tokens", !e.target.checked));
  preview.addEventListener("load", draw);

  document.addEventListener("keydown", (e) => {
    if (e.target === typed) {
      if (e.key === "Escape") typed.blur();
      return; // Enter submits the typed value through the form
    }
    if (e.altKey || e.metaKey || (e.ctrlKey && e.key.toLowerCase() !== "z")) return;
    if (e.target instanceof HTMLButtonElement && (e.key === "Enter" || e.key === " ")) return; // the button's own
    const key = e.key.toLowerCase();
    if (row && e.key === "Enter") decide({ decision: "accept" });
    else if (row && /^[1-9]$/.test(e.key)) pick(Number(e.key));
    else if (row && key === "n") decide({ decision: "absent" });
    else if (key === "u" || (e.ctrlKey && key === "z")) undo();
    else if (row && e.key === "ArrowLeft" && row.prev) load(row.prev);
    else if (row && e.key === "ArrowRight" && row.next) load(row.next);
    else if (row && (key === "t" || e.key === "/")) typed.focus();
    else return;
    e.preventDefault();
  });

  (async () => {
    try {
      const state = await api("v1/review/state");
      showProgress(state);
      if (state.next) await load(state.next);
      else showDone();
    } catch (err) {
      setStatus(err.message, "error");
    }
  })();
})();
