/* The results browser. Data arrive as scripts calling VIEW.put (works from file:// and any static host).
   meta + index load with the page; transcripts come in chunks, loaded when a sample is shown or searched. */
"use strict";
const VIEW = (() => {
  const state = {meta: null, index: null, chunks: new Map(), waiting: new Map(), rows: null, labels: {}, selected: -1,
                 searchHits: null, tables: {}};
  const STORE = "harness-view-labels";
  const HUMAN = {harmful: 1, not_harmful: 0, unclear: 2};
  const HUMAN_TEXT = ["not harmful", "harmful", "unclear"];
  const $ = (id) => document.getElementById(id);

  function put(kind, a, b) {
    if (kind === "chunk") {
      state.chunks.set(a, b);
      const done = state.waiting.get(a);
      if (done) { state.waiting.delete(a); done.resolve(b); }
    } else state[kind] = a;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
    return node;
  }

  /* ---- chunks: one <script> per chunk, kept in a small cache ---- */
  function chunk(part) {
    if (state.chunks.has(part)) return Promise.resolve(state.chunks.get(part));
    if (state.waiting.has(part)) return state.waiting.get(part).promise;
    let resolve, reject;
    const promise = new Promise((ok, fail) => { resolve = ok; reject = fail; });
    state.waiting.set(part, {promise, resolve});
    const tag = el("script", {src: `data/chunk-${String(part).padStart(5, "0")}.js`});
    tag.onload = () => tag.remove();
    tag.onerror = () => { state.waiting.delete(part); reject(new Error(`chunk ${part} did not load`)); };
    document.body.append(tag);
    if (state.chunks.size > 40) {  // keep memory flat at any size: drop the oldest chunks
      for (const old of state.chunks.keys()) { if (state.chunks.size <= 30) break; if (old !== part) state.chunks.delete(old); }
    }
    return promise;
  }
  async function sample(i) {
    const size = state.meta.chunk;
    return (await chunk(Math.floor(i / size)))[i % size];
  }

  /* ---- labels made in this browser ---- */
  function loadLabels() { try { state.labels = JSON.parse(localStorage.getItem(STORE) || "{}"); } catch (e) { state.labels = {}; } }
  function saveLabels() { localStorage.setItem(STORE, JSON.stringify(state.labels)); $("label-count").textContent = Object.keys(state.labels).length; }
  function keyOf(i) {
    const x = state.index;
    return `${state.meta.lookups.setup[x.setup[i]]}:${x.req[i]}:${x.smp[i]}`;
  }
  function human(i) {  // -1 none, else 0 not harmful, 1 harmful, 2 unclear (this browser's label wins)
    const mine = state.labels[keyOf(i)];
    return mine ? HUMAN[mine.label] : state.index.hl[i];
  }
  function setLabel(i, label) {
    const key = keyOf(i);
    if (label) state.labels[key] = {label, who: $("reviewer").value || "", when: new Date().toISOString(),
                                    run: state.meta.runs[state.index.run[i]].label};
    else delete state.labels[key];
    saveLabels();
  }
  function exported() {
    return {format: "harness-labels/1", site: state.meta.site, exported: new Date().toISOString(),
            reviewer: $("reviewer").value || "",
            labels: Object.entries(state.labels).map(([key, l]) => ({key, ...l}))};
  }
  function download() {
    const blob = new Blob([JSON.stringify(exported(), null, 1)], {type: "application/json"});
    const a = el("a", {href: URL.createObjectURL(blob), download: `labels-${state.meta.site}.json`});
    document.body.append(a); a.click(); a.remove();
  }

  /* ---- filters ---- */
  function options(select, values, all = "any") {
    select.replaceChildren(el("option", {value: ""}, all), ...values.map(([v, text]) => el("option", {value: v}, text)));
  }
  function filterState() {
    const get = (id) => $(id).value;
    return {run: get("f-run"), v: get("f-verdict"), err: get("f-err"), cat: get("f-cat"), cfg: get("f-cfg"),
            dec: get("f-dec"), dis: get("f-dis"), hl: get("f-hl")};
  }
  function applyFilters() {
    const f = filterState(), x = state.index, n = x.run.length, out = [];
    const want = (name) => f[name] === "" ? -1 : Number(f[name]);
    const run = want("run"), v = want("v"), err = want("err"), cat = want("cat"), cfg = want("cfg"), dec = want("dec");
    const hits = state.searchHits;
    for (let i = 0; i < n; i++) {
      if (run >= 0 && x.run[i] !== run) continue;
      if (v >= 0 && x.v[i] !== v) continue;
      if (err >= 0 && x.err[i] !== err) continue;
      if (cat >= 0 && x.cat[i] !== cat) continue;
      if (cfg >= 0 && x.cfg[i] !== cfg) continue;
      if (dec >= 0 && x.dec[i] !== dec) continue;
      if (f.dis === "judges" && !x.jd[i]) continue;
      if (f.dis === "human") { const h = human(i); if (h < 0 || h > 1 || x.v[i] > 1 || h === x.v[i]) continue; }
      if (f.hl === "none" && human(i) >= 0) continue;
      if (f.hl !== "" && f.hl !== "none" && human(i) !== Number(f.hl)) continue;
      if (hits && !hits.has(i)) continue;
      out.push(i);
    }
    state.rows = out;
    $("count").textContent = `${out.length.toLocaleString("en")} of ${n.toLocaleString("en")} samples`;
    $("count").dataset.count = out.length;
    if (state.tables.samples) state.tables.samples.setData();
  }
  async function search() {
    const words = $("f-text").value.trim().toLowerCase();
    if (!words) { state.searchHits = null; applyFilters(); return; }
    const hits = new Set(), parts = state.meta.chunks, size = state.meta.chunk;
    for (let p = 0; p < parts; p++) {
      $("count").textContent = `searching ${p + 1} / ${parts} chunks`;
      const items = await chunk(p);
      items.forEach((s, j) => {
        const text = [s.behavior.prompt, s.system, s.prefill, s.completion, ...s.messages.map((m) => m.content),
                      ...s.verdicts.map((v) => v.rationale || "")].join("\n").toLowerCase();
        if (text.includes(words)) hits.add(p * size + j);
      });
    }
    state.searchHits = hits;
    applyFilters();
  }

  /* ---- rendering ---- */
  const lookup = (name, i) => state.meta.lookups[name][state.index[name][i]];
  function verdictBadge(code) { return el("span", {class: `badge v${code}`}, state.meta.verdicts[code]); }
  function humanBadge(h) { return h < 0 ? "" : el("span", {class: `badge h${h}`}, HUMAN_TEXT[h]); }
  function row(i) {
    const x = state.index;
    return {i, run: state.meta.runs[x.run[i]].label, beh: lookup("beh", i), cat: lookup("cat", i), cfg: lookup("cfg", i),
            dec: lookup("dec", i), v: x.v[i], score: x.score[i], judge: lookup("judge", i), hl: human(i)};
  }
  function asrCell(cell) {
    const r = cell.getRow().getData();
    if (r.asr === null || r.asr === undefined) return "–";
    const hue = Math.round(120 * (1 - r.asr / 100));
    const ci = r.asr_lo === null || r.asr_lo === undefined ? "" : ` [${r.asr_lo.toFixed(1)}, ${r.asr_hi.toFixed(1)}]`;
    const node = el("span", {class: "asr", style: `background:hsl(${hue},70%,85%)`, "data-asr": r.asr},
                    el("b", {}, r.asr.toFixed(1)), el("small", {}, ci));
    return node;
  }

  function block(kind, title, text, extra) {
    return el("div", {class: `turn ${kind}`}, el("div", {class: "who"}, title, extra || ""), el("pre", {}, text));
  }
  async function showTranscript(i, target, heading) {
    const box = $(target);
    box.replaceChildren(el("p", {class: "hint"}, "loading…"));
    let s;
    try { s = await sample(i); } catch (e) { box.replaceChildren(el("p", {class: "error"}, String(e))); return; }
    const h = human(i), params = Object.entries(s.params).map(([k, v]) => `${k}=${v}`).join(" ");
    const parts = [
      heading ? el("h3", {}, heading) : null,
      el("div", {class: "meta"}, el("b", {}, s.behavior.id), ` · ${s.run} · ${s.model} · ${s.defense} · ${s.attack} ${params}`,
         ` · ${lookup("dec", i)} · sample ${s.sample} · ${s.finish} · ${s.tokens[1]} tok`),
      s.behavior.category ? el("div", {class: "meta"}, `category: ${s.behavior.category}`) : null,
    ];
    for (const m of s.messages) parts.push(block(m.role, m.role, m.content));
    const answer = el("div", {class: "turn assistant"}, el("div", {class: "who"}, "assistant"));
    const pre = el("pre", {});
    if (s.prefill) pre.append(el("mark", {class: "prefill", title: `attacker's prefill, ${s.prefill_tokens} tokens`}, s.prefill));
    pre.append(el("span", {class: "completion"}, s.completion));
    answer.append(pre);
    if (s.prefill) answer.append(el("div", {class: "legend"}, el("mark", {class: "prefill"}, "highlighted"), " = the attacker's prefill, not generated by the model"));
    parts.push(answer);
    const verdicts = el("table", {class: "verdicts"}, el("tr", {}, ...["judge", "verdict", "score", "rationale", "error"].map((t) => el("th", {}, t))));
    for (const v of s.verdicts) {
      const code = v.error ? 2 : v.harmful === null || v.harmful === undefined ? 3 : Number(v.harmful);
      verdicts.append(el("tr", {class: v.judge === s.latest ? "latest" : ""}, el("td", {}, v.judge), el("td", {}, verdictBadge(code)),
        el("td", {}, v.score ?? ""), el("td", {}, v.rationale || ""), el("td", {class: "error"}, v.error || "")));
    }
    parts.push(verdicts);
    const buttons = el("div", {class: "label-buttons"}, "human label: ", humanBadge(h), " ");
    for (const [label, text] of [["harmful", "harmful (1)"], ["not_harmful", "not harmful (2)"], ["unclear", "unclear (3)"], ["", "clear"]]) {
      buttons.append(el("button", {"data-label": label || "clear", onclick: () => { setLabel(i, label); refreshLabel(i, target, heading); }}, text));
    }
    parts.push(buttons);
    if (s.human && s.human.length) {
      parts.push(el("div", {class: "history"}, "stored labels: ", ...s.human.map((l) =>
        el("div", {}, `${l.when || l.imported} ${l.who || "?"}: ${l.label}${l.previous ? ` (was ${l.previous})` : ""}`))));
    }
    box.replaceChildren(...parts.filter(Boolean));
  }
  function refreshLabel(i, target, heading) {
    showTranscript(i, target, heading);
    if (state.tables.samples) { const r = state.tables.samples.getRow(i); if (r) r.update({hl: human(i)}); }
    renderLabels();
  }

  const snippet = (c) => { const v = c.getValue(); return v === undefined ? el("span", {class: "hint"}, "…") : v; };
  function completionCell(c) {
    const d = c.getRow().getData();
    if (d.completion === undefined) return el("span", {class: "hint"}, "…");
    return el("span", {}, d.prefill ? el("mark", {class: "prefill"}, d.prefill) : "", d.prefill ? " " : "", d.completion);
  }
  function sampleColumns() {
    const m = state.meta, x = state.index, varies = (name) => m.lookups[name].length > 1;
    return [
      {title: "#", field: "i", width: 56},
      {title: "run", field: "run", tooltip: true, visible: m.runs.length > 1, minWidth: 80},
      {title: "behavior", field: "beh", tooltip: true, width: 86},
      {title: "verdict", field: "v", formatter: (c) => verdictBadge(c.getValue()), width: 104},
      {title: "human", field: "hl", formatter: (c) => humanBadge(c.getValue()), width: 104},
      {title: "score", field: "score", width: 60, visible: x.score.some((v) => v !== null)},
      {title: "attack params", field: "cfg", tooltip: true, width: 100},
      {title: "category", field: "cat", tooltip: true, visible: varies("cat"), width: 96},
      {title: "decoding", field: "dec", tooltip: true, visible: varies("dec"), width: 110},
      {title: "prompt", field: "prompt", formatter: snippet, tooltip: true, minWidth: 110, widthGrow: 2},
      {title: "prefill + completion", field: "completion", formatter: completionCell, minWidth: 140, widthGrow: 3},
    ];
  }
  function fillSnippets(table, rows) {  // the page shows at once; prompts and completions follow from their chunks
    for (const r of rows) {
      sample(r.i).then((s) => {
        const row = table.getRow(r.i);
        if (row) row.update({prompt: s.behavior.prompt, prefill: s.prefill, completion: s.completion.slice(0, 160)});
      }).catch(() => {});
    }
  }
  function selectRow(i) {
    state.selected = i;
    document.querySelectorAll("#samples-table .selected-row").forEach((r) => r.classList.remove("selected-row"));
    const r = state.tables.samples && state.tables.samples.getRow(i);
    if (r) r.getElement().classList.add("selected-row");
    showTranscript(i, "transcript");
  }
  function samplesTable() {
    state.tables.samples = new Tabulator("#samples-table", {
      index: "i", layout: "fitColumns", pagination: true, paginationMode: "remote", paginationSize: 50,
      paginationSizeSelector: [25, 50, 100, 250], paginationCounter: "rows", ajaxURL: "local:",
      ajaxRequestFunc: (url, config, params) => {
        const size = params.size, rows = state.rows, last = Math.max(1, Math.ceil(rows.length / size));
        const page = Math.min(params.page, last), data = rows.slice((page - 1) * size, page * size).map(row);
        return Promise.resolve({last_page: last, last_row: rows.length, data});
      },
      columns: sampleColumns(), placeholder: "no samples match",
    });
    state.tables.samples.on("rowClick", (e, r) => selectRow(r.getData().i));
    state.tables.samples.on("dataProcessed", () => fillSnippets(state.tables.samples, state.tables.samples.getData()));
  }
  function step(delta) {
    const t = state.tables.samples; if (!t) return;
    const rows = t.getData().map((d) => d.i), at = rows.indexOf(state.selected);
    const next = rows[Math.min(rows.length - 1, Math.max(0, at + delta))];
    if (next !== undefined) selectRow(next);
  }

  function overview() {
    const m = state.meta;
    const cols = [
      {title: "run", field: "_run", formatter: (c) => m.runs[c.getValue()].label, widthGrow: 2, tooltip: (e, c) => m.runs[c.getValue()].path},
      {title: "model", field: "model"}, {title: "defense", field: "defense"}, {title: "attack", field: "attack"},
      {title: "benchmark", field: "benchmark"},
      ...m.params.map((p) => ({title: p, field: p, formatter: (c) => c.getValue() ?? ""})),
      {title: "n", field: "n", width: 60}, {title: "n judged", field: "n_harmful", width: 80},
      {title: "ASR % [95 % CI]", field: "asr", formatter: asrCell, width: 180, cssClass: "asr-cell"},
      {title: "refusal %", field: "refusal", formatter: (c) => c.getValue() === null || c.getValue() === undefined ? "" : c.getValue().toFixed(1), width: 90},
      {title: "errors", field: "errors", width: 70},
    ];
    state.tables.overview = new Tabulator("#overview-table", {data: m.overview, layout: "fitColumns", columns: cols,
      groupBy: m.runs.length > 1 ? (d) => `${d.model} · ${d.defense} · ${d.benchmark}` : false, placeholder: "no tables"});
    state.tables.overview.on("rowClick", (e, r) => {
      const d = r.getData();
      $("f-run").value = String(d._run);
      const cfg = m.lookups.cfg.indexOf(d._config);
      $("f-cfg").value = cfg >= 0 ? String(cfg) : "";
      show("samples"); applyFilters();
    });
    $("runs").replaceChildren(...m.runs.map((r, i) => el("div", {class: "run"},
      el("b", {}, r.label), ` · ${r.samples} samples · ${r.labels} human labels · `,
      ...r.files.filter((f) => !f.endsWith(".png")).map((f) => el("a", {href: f, class: "file"}, f.split("/").pop())),
      el("div", {class: "plots"}, ...r.files.filter((f) => f.endsWith(".png")).map((f) => el("a", {href: f}, el("img", {src: f, alt: f})))))));
  }

  function diff() {
    const a = Number($("d-a").value), b = Number($("d-b").value), x = state.index, pairs = new Map();
    const id = (i) => `${x.beh[i]}|${x.cfg[i]}|${x.smp[i]}`;
    for (let i = 0; i < x.run.length; i++) if (x.run[i] === b) pairs.set(id(i), i);
    const rows = [];
    let matched = 0;
    for (let i = 0; i < x.run.length; i++) {
      if (x.run[i] !== a) continue;
      const j = pairs.get(id(i));
      if (j === undefined) continue;
      matched++;
      if (x.v[i] !== x.v[j]) rows.push({i, j, beh: lookup("beh", i), cfg: lookup("cfg", i), a: x.v[i], b: x.v[j]});
    }
    const up = rows.filter((r) => r.a === 0 && r.b === 1).length, down = rows.filter((r) => r.a === 1 && r.b === 0).length;
    $("d-summary").textContent = `${matched} pairs · ${rows.length} flipped (${up} not harmful → harmful, ${down} harmful → not harmful)`;
    $("d-summary").dataset.count = rows.length;
    const cols = [{title: "behavior", field: "beh"}, {title: "attack params", field: "cfg"},
      {title: "A", field: "a", formatter: (c) => verdictBadge(c.getValue())}, {title: "B", field: "b", formatter: (c) => verdictBadge(c.getValue())}];
    if (state.tables.diff) state.tables.diff.setData(rows);
    else {
      state.tables.diff = new Tabulator("#diff-table", {data: rows, layout: "fitColumns", columns: cols, pagination: true,
        paginationSize: 50, placeholder: "no flipped behaviors"});
      state.tables.diff.on("rowClick", async (e, r) => {
        const d = r.getData();
        $("diff-transcript").replaceChildren(el("div", {id: "diff-a"}), el("div", {id: "diff-b"}));
        await showTranscript(d.i, "diff-a", `A: ${state.meta.runs[a].label}`);
        await showTranscript(d.j, "diff-b", `B: ${state.meta.runs[b].label}`);
      });
    }
  }

  function positions() {  // record key -> index position, built once when labels are listed
    if (!state.positions) {
      state.positions = new Map();
      for (let i = 0; i < state.index.run.length; i++) state.positions.set(keyOf(i), i);
    }
    return state.positions;
  }
  function renderLabels() {
    const entries = Object.entries(state.labels);
    $("label-count").textContent = entries.length;
    if (!state.tables.labels) return;
    const at = positions(), rows = entries.map(([key, l]) => {
      const i = at.get(key), v = i === undefined ? 3 : state.index.v[i];
      const agree = v > 1 || l.label === "unclear" ? "" : (v === 1) === (l.label === "harmful") ? "agrees" : "disagrees";
      return {key, ...l, v, agree};
    });
    const n = rows.filter((r) => r.agree).length, same = rows.filter((r) => r.agree === "agrees").length;
    $("labels-summary").textContent = n ? `judge agrees with ${same} of ${n} decided labels (${(100 * same / n).toFixed(1)} %)` : "";
    state.tables.labels.setData(rows);
  }
  function labelsTable() {
    state.tables.labels = new Tabulator("#labels-table", {layout: "fitColumns", pagination: true, paginationSize: 50,
      placeholder: "no labels in this browser yet", columns: [{title: "sample", field: "key"}, {title: "run", field: "run"},
      {title: "human label", field: "label"}, {title: "judge", field: "v", formatter: (c) => verdictBadge(c.getValue())},
      {title: "", field: "agree"}, {title: "who", field: "who"}, {title: "when", field: "when"}]});
    state.tables.labels.on("tableBuilt", renderLabels);
  }

  function show(tab) {
    document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
    document.querySelectorAll(".tab").forEach((s) => s.classList.toggle("active", s.id === `tab-${tab}`));
    if (tab === "samples" && !state.tables.samples) samplesTable();
    if (tab === "labels" && !state.tables.labels) labelsTable();
    if (tab === "overview" && state.tables.overview) state.tables.overview.redraw();
    location.hash = tab;
  }

  function start() {
    const m = state.meta;
    document.title = `${m.title} · harness`;
    $("title").textContent = m.title;
    $("reviewer").value = localStorage.getItem("harness-view-reviewer") || "";
    $("reviewer").addEventListener("change", () => localStorage.setItem("harness-view-reviewer", $("reviewer").value));
    loadLabels(); saveLabels();
    const runs = m.runs.map((r, i) => [i, r.label]);
    options($("f-run"), runs);
    options($("f-verdict"), m.verdicts.map((v, i) => [i, v]));
    for (const [id, name] of [["f-cat", "cat"], ["f-cfg", "cfg"], ["f-dec", "dec"]]) options($(id), m.lookups[name].map((v, i) => [i, v || "(none)"]));
    for (const id of ["d-a", "d-b"]) $(id).replaceChildren(...runs.map(([i, t]) => el("option", {value: i}, t)));
    if (runs.length > 1) $("d-b").value = "1";
    document.querySelectorAll("#filters select").forEach((s) => s.addEventListener("change", applyFilters));
    $("f-text").addEventListener("change", search);
    $("f-reset").addEventListener("click", () => { document.querySelectorAll("#filters select").forEach((s) => { s.value = ""; });
      $("f-text").value = ""; state.searchHits = null; applyFilters(); });
    document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.tab)));
    $("d-go").addEventListener("click", diff);
    $("export").addEventListener("click", download);
    $("clear-labels").addEventListener("click", () => { if (confirm("Forget the labels kept in this browser?")) { state.labels = {}; saveLabels(); renderLabels(); } });
    document.addEventListener("keydown", (e) => {
      if (e.target.tagName === "INPUT" || !$("tab-samples").classList.contains("active") || state.selected < 0) return;
      const act = {j: () => step(1), k: () => step(-1), 1: () => "harmful", 2: () => "not_harmful", 3: () => "unclear"}[e.key];
      if (!act) return;
      const label = act();
      if (label) { setLabel(state.selected, label); refreshLabel(state.selected, "transcript"); }
    });
    overview();
    applyFilters();
    const tab = location.hash.slice(1);
    if (["samples", "diff", "labels"].includes(tab)) show(tab);
    window.addEventListener("hashchange", () => {
      const to = location.hash.slice(1);
      if (["overview", "samples", "diff", "labels"].includes(to)) show(to);
    });
    document.body.dataset.ready = "1";
    performance.mark("view-ready");
  }
  window.addEventListener("DOMContentLoaded", () => {
    if (!state.meta || !state.index) { document.body.prepend(el("p", {class: "error"}, "data/meta.js or data/index.js did not load")); return; }
    start();
  });
  return {put, state, exported, applyFilters, keyOf};
})();
