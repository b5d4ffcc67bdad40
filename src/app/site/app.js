// The page: pick a department's expert, read image files (or folders) from disk, run the expert
// in onnxruntime-web (wasm) and show each file's class probabilities and activation map. Nothing
// is sent anywhere: the only requests are for this site's own files.
import * as ort from './vendor/ort.wasm.min.mjs';
import { toInput, softmax, argmax } from './preprocess.js';
import { decodeImage, isImageName } from './decode.js';
import { normaliseCam, displayCanvas, drawOverlay } from './cam.js';
import { toCsv } from './csv.js';

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...kids);
  return e;
};
const pct = (p) => (100 * p).toFixed(1) + '%';

const state = {
  manifest: null,
  /** expert id -> Promise<InferenceSession> */
  sessions: new Map(),
  /**
   * One entry per file: { n, name, file, expert, probs, best, cam, kind, size, ms, error }. Only
   * the File handle is kept, not its pixels: the detail view decodes it again when shown, so a
   * large folder does not hold every image in memory.
   */
  results: [],
  queue: [],
  running: false,
  done: 0,
  total: 0,
  selected: -1,
  /** The detail view's decoded image: { r, canvas }. */
  view: null,
  /** Bumped by Clear, so a file still running then is dropped. */
  gen: 0,
};

function setBusy(busy) {
  document.body.dataset.busy = busy ? '1' : '0';
}

/** Threads only where the page is cross-origin isolated (SharedArrayBuffer available). */
function configureRuntime() {
  const threads = globalThis.crossOriginIsolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = new URL('./vendor/', import.meta.url).href;
  ort.env.logLevel = 'error';
  return threads;
}

const expertById = (id) => state.manifest.experts.find((e) => e.id === id);
const currentExpert = () => expertById($('expert').value);

function session(expert) {
  let s = state.sessions.get(expert.id);
  if (!s) {
    s = fetch(expert.file)
      .then((r) => {
        if (!r.ok) throw new Error(`${expert.file}: HTTP ${r.status}`);
        return r.arrayBuffer();
      })
      .then((buf) => ort.InferenceSession.create(new Uint8Array(buf), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' }));
    state.sessions.set(expert.id, s);
    s.catch(() => state.sessions.delete(expert.id));
  }
  return s;
}

function showExpertInfo() {
  const e = currentExpert();
  if (!e) return;
  $('expert-info').replaceChildren(
    el('div', {}, el('strong', { textContent: e.task }), ` · ${e.model} · ${(e.bytes / 1e6).toFixed(1)} MB`),
    el('div', { className: 'muted', textContent: `Classes: ${e.class_names.join(', ')}` }),
    el('div', { className: 'muted', textContent: `Input ${e.input_size}×${e.input_size}, mean [${e.mean.join(', ')}], std [${e.std.join(', ')}]` }),
  );
  $('expert-info').dataset.state = 'loading';
  session(e).then(
    () => ($('expert-info').dataset.state = 'ready'),
    (err) => {
      $('expert-info').dataset.state = 'error';
      $('expert-info').append(el('div', { className: 'error', textContent: `Cannot load this expert: ${err.message ?? err}` }));
    },
  );
}

/** Runs one file through the current expert; returns its result entry. */
async function classify(file, expert) {
  const name = file.webkitRelativePath || file.relPath || file.name;
  const r = { n: state.results.length + 1, name, file, expert };
  const t0 = performance.now();
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const image = await decodeImage(bytes, name);
    const sess = await session(expert);
    const x = toInput(image.data, image.height, image.width, expert);
    const S = expert.input_size;
    const out = await sess.run({ input: new ort.Tensor('float32', x, [1, 3, S, S]) });
    const logits = out.logits.data;
    if (logits.length !== expert.class_names.length) throw new Error(`the model gave ${logits.length} logits for ${expert.class_names.length} classes`);
    r.probs = softmax(logits);
    r.best = argmax(r.probs);
    const [, h, w] = out.cam.dims;
    r.cam = { norm: normaliseCam(out.cam.data), h, w };
    r.kind = image.kind;
    r.size = `${image.width}×${image.height}`;
    r.thumb = displayCanvas(image, 80);
    for (const t of Object.values(out)) t.dispose?.();
    r.ms = performance.now() - t0;
  } catch (e) {
    r.error = String(e && e.message ? e.message : e).split('\n')[0];
  }
  return r;
}

function addRow(r) {
  const tr = el('tr');
  tr.dataset.index = String(r.n - 1);
  tr.dataset.file = r.name;
  const thumb = el('canvas', { className: 'thumb', width: 80, height: 80 });
  if (r.error) {
    tr.className = 'error';
    tr.dataset.error = r.error;
    tr.append(el('td', { textContent: String(r.n) }), el('td'), el('td', { className: 'file', textContent: r.name }), el('td', { textContent: r.expert.task }), el('td', { colSpan: 3, textContent: r.error }));
  } else {
    drawOverlay(thumb, r.thumb, r.cam, 0.45);
    delete r.thumb;
    tr.dataset.class = r.expert.class_names[r.best];
    tr.dataset.probs = JSON.stringify(r.probs);
    const all = r.expert.class_names.map((c, k) => `${c} ${r.probs[k].toFixed(3)}`).join(' · ');
    tr.append(
      el('td', { textContent: String(r.n) }),
      el('td', {}, thumb),
      el('td', { className: 'file', textContent: r.name }),
      el('td', { textContent: r.expert.task }),
      el('td', {}, el('strong', { textContent: r.expert.class_names[r.best] })),
      el('td', { className: 'num', textContent: r.probs[r.best].toFixed(4) }),
      el('td', { className: 'all', textContent: all }),
    );
  }
  tr.addEventListener('click', () => select(r.n - 1));
  $('results').tBodies[0].append(tr);
  $('empty').hidden = true;
  $('csv').disabled = false;
  $('clear').disabled = false;
}

/** A probability bar's fill (its width set through the CSSOM: the page's CSP forbids inline styles). */
function fill(p) {
  const d = el('div', { className: 'fill' });
  d.style.width = `${(100 * p).toFixed(2)}%`;
  return d;
}

function select(i) {
  const r = state.results[i];
  if (!r) return;
  state.selected = i;
  for (const tr of $('results').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.index === String(i));
  $('detail').hidden = false;
  $('detail-name').textContent = r.name;
  if (r.error) {
    $('detail-meta').textContent = r.error;
    $('bars').replaceChildren();
    $('view').getContext('2d').clearRect(0, 0, 384, 384);
    return;
  }
  $('detail-meta').textContent = `${r.kind} ${r.size} · ${r.expert.task} expert · activation map ${r.cam.w}×${r.cam.h} of "${r.expert.class_names[r.best]}"${r.cam.norm.max > 0 ? '' : ' (zero everywhere: nothing to overlay)'}`;
  $('bars').replaceChildren(
    ...r.expert.class_names.map((c, k) =>
      el(
        'div',
        { className: 'barrow' + (k === r.best ? ' top' : '') },
        el('span', { textContent: c }),
        el('div', { className: 'track' }, fill(r.probs[k])),
        el('span', { className: 'num', textContent: pct(r.probs[k]) }),
      ),
    ),
  );
  showImage(r).catch((e) => ($('detail-meta').textContent = String(e.message ?? e)));
}

function redraw() {
  const r = state.results[state.selected];
  if (!(r && !r.error && state.view?.r === r)) return;
  drawOverlay($('view'), state.view.canvas, r.cam, Number($('opacity').value) / 100);
  $('view').dataset.shown = r.name;
}

/** Decodes the selected file again for the detail view (the table keeps no pixels). */
async function showImage(r) {
  if (state.view?.r !== r) {
    const image = await decodeImage(new Uint8Array(await r.file.arrayBuffer()), r.name);
    if (state.results[state.selected] !== r) return;
    state.view = { r, canvas: displayCanvas(image, 768) };
  }
  redraw();
}

function updateProgress() {
  const busy = state.done < state.total;
  $('progress').hidden = state.total === 0;
  $('progress-bar').style.width = state.total ? `${(100 * state.done) / state.total}%` : '0';
  const timed = state.results.filter((r) => r.ms !== undefined).slice(-20);
  const per = timed.length ? ` · ${(timed.reduce((a, r) => a + r.ms, 0) / timed.length).toFixed(0)} ms per file` : '';
  $('progress-text').textContent = busy ? `${state.done} / ${state.total} files${per}` : `${state.total} files done${per}`;
  const ok = state.results.filter((r) => !r.error).length;
  const bad = state.results.length - ok;
  $('summary').textContent = state.results.length ? `${ok} classified${bad ? `, ${bad} could not be read` : ''}` : '';
  setBusy(busy);
}

async function drain() {
  if (state.running) return;
  state.running = true;
  try {
    while (state.queue.length) {
      const { file, expert } = state.queue.shift();
      const gen = state.gen;
      const r = await classify(file, expert);
      if (gen !== state.gen) continue; // cleared while this file ran
      r.n = state.results.length + 1;
      state.results.push(r);
      addRow(r);
      if (state.selected < 0 && !r.error) select(r.n - 1);
      state.done++;
      updateProgress();
    }
  } finally {
    state.running = false;
  }
}

function enqueue(files) {
  const expert = currentExpert();
  if (!expert || files.length === 0) return;
  if (state.done === state.total) {
    state.done = 0;
    state.total = 0;
  }
  for (const file of files) state.queue.push({ file, expert });
  state.total += files.length;
  updateProgress();
  drain();
}

/** Files of a dropped folder, recursively, sorted by path; hidden and non-image names skipped. */
async function filesOfEntry(entry, prefix = '') {
  if (entry.isFile) {
    if (!isImageName(entry.name)) return [];
    const f = await new Promise((res, rej) => entry.file(res, rej));
    f.relPath = prefix + entry.name;
    return [f];
  }
  if (!entry.isDirectory || entry.name.startsWith('.')) return [];
  const reader = entry.createReader();
  const entries = [];
  for (;;) {
    const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
    if (batch.length === 0) break;
    entries.push(...batch);
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out = [];
  for (const e of entries) out.push(...(await filesOfEntry(e, `${prefix}${entry.name}/`)));
  return out;
}

function wireInputs() {
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      $('files').click();
    }
  });
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const items = [...(e.dataTransfer.items ?? [])].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
    if (items.length) {
      const files = [];
      for (const it of items) files.push(...(await filesOfEntry(it)));
      enqueue(files);
    } else enqueue([...e.dataTransfer.files]);
  });
  // Dropping outside the zone must not navigate away (and lose the results).
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
  $('files').addEventListener('change', (e) => {
    enqueue([...e.target.files]);
    e.target.value = '';
  });
  $('folder').addEventListener('change', (e) => {
    const files = [...e.target.files].filter((f) => !f.webkitRelativePath.split('/').some((p) => p.startsWith('.')) && isImageName(f.name));
    files.sort((a, b) => (a.webkitRelativePath < b.webkitRelativePath ? -1 : 1));
    enqueue(files);
    e.target.value = '';
  });
  $('opacity').addEventListener('input', redraw);
  $('expert').addEventListener('change', showExpertInfo);
  $('csv').addEventListener('click', saveCsv);
  $('clear').addEventListener('click', () => {
    state.results = [];
    state.selected = -1;
    state.view = null;
    state.gen++;
    state.done = state.total = state.queue.length = 0;
    $('results').tBodies[0].replaceChildren();
    $('empty').hidden = false;
    $('detail').hidden = true;
    $('csv').disabled = $('clear').disabled = true;
    updateProgress();
  });
}

/** The results as CSV: one row per file, a probability column per class of any department used. */
export function resultsCsv() {
  const classes = [];
  for (const r of state.results) for (const c of r.expert.class_names) if (!classes.includes(c)) classes.push(c);
  const header = ['file', 'department', 'model', 'prediction', 'probability', ...classes.map((c) => `p(${c})`), 'error'];
  const rows = state.results.map((r) => {
    if (r.error) return [r.name, r.expert.task, r.expert.id, '', '', ...classes.map(() => ''), r.error];
    const p = (c) => {
      const k = r.expert.class_names.indexOf(c);
      return k < 0 ? '' : r.probs[k];
    };
    return [r.name, r.expert.task, r.expert.id, r.expert.class_names[r.best], r.probs[r.best], ...classes.map(p), ''];
  });
  return toCsv(header, rows);
}

function saveCsv() {
  const url = URL.createObjectURL(new Blob([resultsCsv()], { type: 'text/csv' }));
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
  const a = el('a', { href: url, download: `lorkd-results-${stamp}.csv` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function main() {
  setBusy(true);
  wireInputs();
  const threads = configureRuntime();
  const res = await fetch('models/manifest.json');
  if (!res.ok) throw new Error(`models/manifest.json: HTTP ${res.status}`);
  state.manifest = await res.json();
  const sel = $('expert');
  for (const e of state.manifest.experts) sel.append(el('option', { value: e.id, textContent: `${e.task} (${e.class_names.length} classes)` }));
  showExpertInfo();
  // A model that fails to load is reported beside the department (showExpertInfo); the others stay usable.
  await session(currentExpert()).catch(() => undefined);
  const iso = globalThis.crossOriginIsolated ? 'cross-origin isolated' : 'not cross-origin isolated: one thread';
  $('runtime').textContent = `onnxruntime-web ${ort.env.versions?.web ?? ''} · wasm · ${threads} thread${threads > 1 ? 's' : ''} (${iso})`;
  $('runtime').dataset.state = 'ready';
  updateProgress();
}

main().catch((e) => {
  $('runtime').textContent = `The app could not start: ${e.message ?? e}`;
  $('runtime').dataset.state = 'error';
  $('runtime').classList.add('error');
});
