/* The results browser's data layer. Data arrive as scripts calling VIEW.put (works from file:// and any static
   host): meta + index load with the page; transcripts come in chunks, loaded when shown or searched.
   Labels made here live in localStorage until exported, each under its run folder's fingerprint and the sample's
   record key, so two copies of a run keep their own. The page itself is drawn by app.js. */
"use strict";
const VIEW = (() => {
  const state = {meta: null, index: null, chunks: new Map(), waiting: new Map(), rows: null, labels: {}, selected: -1,
                 searchHits: null, tables: {}, blind: false, revealed: new Set()};
  const STORE = "harness-view-labels/2";  // {"<run fingerprint> <record key>": {key, run, folder, label, who, when, queue}}
  const LEGACY = "harness-view-labels";   // before: keyed by the record key alone (copies of a run shared a label)
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
  function keyOf(i) {
    const x = state.index;
    return `${state.meta.lookups.setup[x.setup[i]]}:${x.req[i]}:${x.smp[i]}`;
  }
  const runOf = (i) => state.meta.runs[state.index.run[i]];
  const slot = (i) => `${runOf(i).fingerprint} ${keyOf(i)}`;  // where this sample's label is kept
  function queueOf(i) { const q = state.index.q[i]; return q >= 0 ? state.meta.lookups.q[q] : ""; }
  function mine() {  // [slot, label] of the labels kept for this site's run folders (others stay, unshown)
    const folders = new Set(state.meta.runs.map((r) => r.fingerprint));
    return Object.entries(state.labels).filter(([, l]) => folders.has(l.folder));
  }
  function loadLabels() {
    try { state.labels = JSON.parse(localStorage.getItem(STORE) || "{}"); } catch (e) { state.labels = {}; }
    let legacy = {};
    try { legacy = JSON.parse(localStorage.getItem(LEGACY) || "{}"); } catch (e) { return; }
    const found = Object.keys(legacy).filter((key) => copies().has(key));
    for (const key of found) {  // an older page's label: to every copy of the run here that holds the sample
      for (const i of copies().get(key)) {
        if (!state.labels[slot(i)]) state.labels[slot(i)] = {...legacy[key], ...where(i)};
      }
      delete legacy[key];
    }
    if (found.length) {
      if (Object.keys(legacy).length) localStorage.setItem(LEGACY, JSON.stringify(legacy)); else localStorage.removeItem(LEGACY);
    }
  }
  function saveLabels() { localStorage.setItem(STORE, JSON.stringify(state.labels)); $("label-count").textContent = mine().length; }
  function human(i) {  // -1 none, else 0 not harmful, 1 harmful, 2 unclear (this browser's label wins)
    const made = state.labels[slot(i)];
    return made ? HUMAN[made.label] : state.index.hl[i];
  }
  const where = (i) => ({key: keyOf(i), run: runOf(i).label, folder: runOf(i).fingerprint, queue: queueOf(i)});
  function setLabel(i, label) {
    if (label) state.labels[slot(i)] = {...where(i), label, who: $("reviewer").value || "", when: new Date().toISOString()};
    else delete state.labels[slot(i)];
    saveLabels();
  }
  function exported() {
    return {format: "harness-labels/1", site: state.meta.site, exported: new Date().toISOString(),
            reviewer: $("reviewer").value || "",
            labels: mine().map(([, l]) => ({key: l.key, label: l.label, who: l.who, when: l.when, run: l.run,
                                            folder: l.folder, ...(l.queue ? {queue: l.queue} : {})}))};
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
            dec: get("f-dec"), dis: get("f-dis"), hl: get("f-hl"), q: get("f-queue")};
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
      if (f.q === "drawn" ? x.q[i] < 0 : f.q === "none" ? x.q[i] >= 0 : f.q !== "" && x.q[i] !== Number(f.q)) continue;
      if (hits && !hits.has(i)) continue;
      out.push(i);
    }
    state.rows = out;
    $("count").textContent = `${out.length.toLocaleString("en")} of ${n.toLocaleString("en")} samples`;
    $("count").dataset.count = out.length;
    if (state.tables.samples && state.samplesBuilt) state.tables.samples.setData();  // before: its first load reads state.rows
    if (state.onFilter) state.onFilter();
  }
  async function search() {
    const words = $("f-text").value.trim().toLowerCase(), token = (state.searchToken = (state.searchToken || 0) + 1);
    if (!words) { state.searchHits = null; applyFilters(); return; }
    const hits = new Set(), parts = state.meta.chunks, size = state.meta.chunk;
    for (let p = 0; p < parts; p++) {
      $("count").textContent = `searching ${p + 1} / ${parts} chunks`;
      const items = await chunk(p);
      if (token !== state.searchToken) return;  // a newer search took over
      items.forEach((s, j) => {
        const text = [s.behavior.prompt, s.system, s.prefill, s.completion, ...s.messages.map((m) => m.content),
                      ...(state.blind ? [] : s.verdicts.map((v) => v.rationale || ""))].join("\n").toLowerCase();
        if (text.includes(words)) hits.add(p * size + j);
      });
    }
    state.searchHits = hits;
    applyFilters();
  }

  const lookup = (name, i) => state.meta.lookups[name][state.index[name][i]];
  function positions() {  // label slot -> index position, built once when labels are listed
    if (!state.positions) {
      state.positions = new Map();
      for (let i = 0; i < state.index.run.length; i++) state.positions.set(slot(i), i);
    }
    return state.positions;
  }
  function copies() {  // record key -> its index positions (one per copy of the run in this site)
    if (!state.copies) {
      state.copies = new Map();
      for (let i = 0; i < state.index.run.length; i++) {
        const key = keyOf(i);
        if (!state.copies.has(key)) state.copies.set(key, []);
        state.copies.get(key).push(i);
      }
    }
    return state.copies;
  }
  function members(q) {  // the index positions a queue drew, in the page's order
    state.members = state.members || new Map();
    if (!state.members.has(q)) {
      const out = [];
      for (let i = 0; i < state.index.q.length; i++) if (state.index.q[i] === q) out.push(i);
      state.members.set(q, out);
    }
    return state.members.get(q);
  }
  return {put, state, $, el, chunk, sample, HUMAN_TEXT, loadLabels, saveLabels, keyOf, slot, queueOf, mine, human,
          setLabel, exported, download, options, applyFilters, search, lookup, positions, members};
})();
