// The transfer and analysis results beside a run or a comparison: transfer.json (`lorkd transfer`,
// one per folder of a transfer study, or a table inside compare.json), mig.json and cka.json
// (`lorkd analyze mig|cka`: one entry per network group), and gradcam/gradcam.json with its PNG
// strips (`lorkd analyze gradcam`).
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../tensor/errors.js';
import { interval } from '../experiments/transfer.js';
import { Fields, readBytes, readJson, type Json, type JsonObject } from './input.js';
import type { CkaMatrix, GradcamGrid, MigRow, Study, TransferRow } from './study.js';

const first = (o: JsonObject, keys: string[]): Json | undefined => keys.map((k) => o[k]).find((v) => v !== undefined && v !== null);

/** The starting network's name: a label given, a method field, or transfer.json's source record. */
function sourceName(f: Fields, v: Json | undefined, where: string): string {
  if (typeof v === 'string') return f.str(v, where);
  const s = f.obj(v, where);
  const file = typeof s.file === 'string' ? path.basename(s.file).replace(/\.safetensors$/, '') : null;
  const kind = f.str(s.kind, `${where}.kind`);
  return kind === 'scratch' ? 'scratch' : file ? `${kind}: ${file}` : kind;
}

function transferRecord(f: Fields, v: Json, where: string, label?: string): TransferRow {
  const o = f.obj(v, where);
  const data = first(o, ['downstream', 'data', 'dataset']);
  const downstream = data && typeof data === 'object' && !Array.isArray(data) ? data.name : data;
  return {
    method: label ?? sourceName(f, first(o, ['method', 'label', 'source', 'from']), `${where}.source`),
    downstream: path.basename(f.str(downstream, `${where}.data`)).replace(/\.npz$/, ''),
    shots: f.optNum(o.shots, `${where}.shots`),
    accuracy: f.stat(o.accuracy, `${where}.accuracy`),
    auc: f.optStat(o.auc, `${where}.auc`),
    params_deployment: f.optNum(first(o, ['params_deployed', 'params_deployment']), `${where}.params_deployed`),
    compression: f.optNum(first(o, ['compression_ratio', 'compression']), `${where}.compression_ratio`),
  };
}

/** One transfer.json, a list of them, or { label: transfer.json } (a study), or { results: [...] }. */
export function parseTransfer(f: Fields, v: Json | undefined, where: string): TransferRow[] {
  if (Array.isArray(v)) return v.map((e, i) => transferRecord(f, e, `${where}[${i}]`, typeof e === 'object' && e && !Array.isArray(e) && typeof e.label === 'string' ? e.label : undefined));
  const o = f.obj(v, where);
  if (o.accuracy !== undefined) return [transferRecord(f, o, where)];
  const list = first(o, ['results', 'rows']);
  if (list !== undefined) return parseTransfer(f, list, `${where}.results`);
  return Object.entries(o).flatMap(([label, e]) => {
    const r = f.obj(e, `${where}.${label}`);
    return r.result !== undefined ? [transferRecord(f, r.result, `${where}.${label}.result`, label)] : [transferRecord(f, r, `${where}.${label}`, label)];
  });
}

/** The rows of a study folder: `<label>/transfer.json` per starting network, or folders of such studies (compare's `transfer/<spec>/<label>/`). */
function studyRows(p: string, depth: number): TransferRow[] {
  return readdirSync(p).sort().flatMap((d) => {
    const file = path.join(p, d, 'transfer.json');
    if (existsSync(file)) return [transferRecord(new Fields(file), readJson(file), 'the file', d)];
    return depth > 0 && statSync(path.join(p, d)).isDirectory() ? studyRows(path.join(p, d), depth - 1) : [];
  });
}

/** transfer.json, a transfer study's folder (one `<label>/transfer.json` per starting network), or a folder of studies. */
export function loadTransfer(p: string): TransferRow[] {
  if (statSync(p).isFile()) return parseTransfer(new Fields(p), readJson(p), 'the file');
  const own = path.join(p, 'transfer.json');
  if (existsSync(own)) return loadTransfer(own);
  const rows = studyRows(p, 1);
  if (!rows.length) throw new UserError(`${p}: no transfer.json in it or in its folders (lorkd transfer --out writes one)`);
  return rows;
}

/**
 * A network group's method: its folder label without runs/, seed folders or suffixes, experts/ and
 * deployed/ (runs/lorkd-s1/experts -> lorkd, runs/stl-s0/deployed -> stl); a run directory's own
 * groups are its foundation (".") and its LoRKD experts ("experts").
 */
export function groupMethod(label: string, files: string[] = []): string {
  const kept = label
    .split('/')
    .filter((s) => !/^seed[-_]?\d+$/.test(s) && !['experts', 'deployed', 'runs', '.'].includes(s))
    .map((s) => s.replace(/-s\d+$/, ''))
    .join('/');
  if (kept) return kept;
  if (files.length && files.every((f) => path.basename(f).startsWith('foundation'))) return 'foundation';
  return label.endsWith('experts') ? 'lorkd' : label;
}

const groupFiles = (f: Fields, g: JsonObject, i: number): string[] =>
  f.arr(g.networks ?? [], `groups[${i}].networks`).map((n, j) => String(f.obj(n, `groups[${i}].networks[${j}]`).file ?? ''));

function groups(f: Fields, v: Json): JsonObject[] {
  const o = f.obj(v, 'the file');
  return f.arr(o.groups, 'groups').map((g, i) => f.obj(g, `groups[${i}]`));
}

/** mig.json: per group { label, mig, factors: [{ factor, gap }] }; groups of one method (its seeds) pooled, mean and t interval. */
export function parseMig(file: string): MigRow[] {
  const f = new Fields(file);
  const byMethod = new Map<string, { migs: number[]; factors: Record<string, number[]> }>();
  // One value per run: a compare run's foundation file and its deployed/ copies are the same network.
  const runs = new Set<string>();
  groups(f, readJson(file)).forEach((g, i) => {
    const label = f.str(g.label, `groups[${i}].label`);
    const method = groupMethod(label, groupFiles(f, g, i));
    const run = label.replace(/\/(deployed|experts)$/, '');
    if (g.mig === null || runs.has(run)) return;
    runs.add(run);
    const m = byMethod.get(method) ?? { migs: [], factors: {} };
    m.migs.push(f.num(g.mig, `groups[${i}].mig`));
    f.arr(g.factors ?? [], `groups[${i}].factors`).forEach((x, j) => {
      const fo = f.obj(x, `groups[${i}].factors[${j}]`);
      if (fo.gap === null) return;
      const k = f.str(fo.factor, `groups[${i}].factors[${j}].factor`);
      (m.factors[k] ??= []).push(f.num(fo.gap, `groups[${i}].factors[${j}].gap`));
    });
    byMethod.set(method, m);
  });
  return [...byMethod.entries()].map(([method, m]) => {
    const s = interval(m.migs);
    return { method, mig: { mean: s.mean, ci95: s.ci95, runs: s.values }, factors: Object.fromEntries(Object.entries(m.factors).map(([k, xs]) => [k, interval(xs).mean])) };
  });
}

/** cka.json: per group { label, networks: [{ name }], matrix }; the first group of each method. */
export function parseCka(file: string): CkaMatrix[] {
  const f = new Fields(file);
  const out: CkaMatrix[] = [];
  groups(f, readJson(file)).forEach((g, i) => {
    const method = groupMethod(f.str(g.label, `groups[${i}].label`), groupFiles(f, g, i));
    if (out.some((c) => c.method === method)) return;
    const tasks = f.arr(g.networks, `groups[${i}].networks`).map((n, j) => f.str(f.obj(n, `groups[${i}].networks[${j}]`).name, `groups[${i}].networks[${j}].name`));
    const m = f.arr(g.matrix, `groups[${i}].matrix`);
    if (m.length !== tasks.length) f.fail(`groups[${i}].matrix`, `${tasks.length} rows`, m.length);
    const values = m.map((row, r) => {
      const xs = f.arr(row, `groups[${i}].matrix[${r}]`);
      if (xs.length !== tasks.length) f.fail(`groups[${i}].matrix[${r}]`, `${tasks.length} values`, xs.length);
      return xs.map((x, c) => f.num(x, `groups[${i}].matrix[${r}][${c}]`));
    });
    out.push({ method, tasks, values });
  });
  return out;
}

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const MAX_IMAGES = 48;

function pngUri(file: string): string {
  const b = readBytes(file);
  if (b.length < 8 || !b.subarray(0, 8).equals(PNG)) throw new UserError(`${file} is not a PNG file`);
  return `data:image/png;base64,${b.toString('base64')}`;
}

/**
 * The Grad-CAM figure of a folder: gradcam.json ({ models, images: [{ input, png, panels: [{ model,
 * class, probability }] }] }, each PNG a strip: the image, then one map per model), or else its
 * PNG files, one row each.
 */
export function loadGradcam(dir: string): GradcamGrid {
  const index = path.join(dir, 'gradcam.json');
  if (!existsSync(index)) {
    const pngs = readdirSync(dir).filter((e) => e.toLowerCase().endsWith('.png')).sort().slice(0, MAX_IMAGES);
    return { columns: [], rows: pngs.map((p) => ({ label: p.slice(0, -4), dataUri: pngUri(path.join(dir, p)), captions: [] })) };
  }
  const f = new Fields(index);
  const o = f.obj(readJson(index), 'the file');
  const models = f.strings(o.models, 'models').map((m) => path.basename(m).replace(/\.safetensors$/, ''));
  const rows = f.arr(o.images, 'images').slice(0, MAX_IMAGES).map((e, i) => {
    const im = f.obj(e, `images[${i}]`);
    const png = f.str(im.png, `images[${i}].png`);
    // The folder may have moved since it was written: the PNG beside the index first.
    const file = existsSync(path.join(dir, path.basename(png))) ? path.join(dir, path.basename(png)) : path.resolve(dir, png);
    const captions = f.arr(im.panels ?? [], `images[${i}].panels`).map((p, j) => {
      const po = f.obj(p, `images[${i}].panels[${j}]`);
      const prob = f.optNum(po.probability, `images[${i}].panels[${j}].probability`);
      return `${typeof po.class === 'string' ? po.class : '?'}${prob === null ? '' : ` ${(prob * 100).toFixed(0)}%`}`;
    });
    return { label: path.basename(typeof im.input === 'string' ? im.input : png), dataUri: pngUri(file), captions };
  });
  return { columns: ['input', ...models], rows };
}

export interface AnalysisSources {
  /** transfer.json or a transfer study's folder. */
  transfer?: string;
  /** Folder with mig.json, cka.json, gradcam/. */
  analysis?: string;
}

const findIn = (dirs: string[], name: string, dir: boolean) => dirs.map((d) => path.join(d, name)).find((p) => existsSync(p) && statSync(p).isDirectory() === dir);

/** Adds what exists of transfer, MIG, CKA and Grad-CAM to the study (explicit paths first, then beside it). */
export function addAnalysis(study: Study, o: AnalysisSources): void {
  if (o.analysis && !existsSync(o.analysis)) throw new UserError(`--analysis ${o.analysis}: no such directory`);
  if (o.transfer && !existsSync(o.transfer)) throw new UserError(`--transfer ${o.transfer}: no such file or directory`);
  const dirs = [o.analysis, study.source, path.join(study.source, 'analysis')].filter((d): d is string => !!d && existsSync(d));
  const transfer = o.transfer ?? (study.transfer.length ? undefined : findIn(dirs, 'transfer.json', false) ?? findIn(dirs, 'transfer', true));
  if (transfer) {
    study.transfer = loadTransfer(transfer);
    study.facts.push(['transfer', path.resolve(transfer)]);
  }
  const files: [string, string, (f: string) => void][] = [
    ['MIG', 'mig.json', (f) => (study.mig = parseMig(f))],
    ['CKA', 'cka.json', (f) => (study.cka = parseCka(f))],
  ];
  for (const [label, name, load] of files) {
    const file = findIn(dirs, name, false);
    if (!file) continue;
    load(file);
    study.facts.push([label, file]);
  }
  const gradcam = findIn(dirs, 'gradcam', true);
  if (gradcam) {
    study.gradcam = loadGradcam(gradcam);
    study.facts.push(['Grad-CAM', gradcam]);
  }
}
