// The experts the app offers: one exported .onnx per department in a folder, checked against the
// export contract (input `input`, outputs `logits` and `cam`, metadata `lorkd_preprocessing`,
// `lorkd_task`, `lorkd_model`, `lorkd_version`) and described in a small manifest the page reads.
import { readdirSync, statSync } from 'node:fs';
import { readRegular } from '../io/read.js';
import { limit, limitHint } from '../io/limits.js';
import path from 'node:path';
import { UserError } from '../tensor/errors.js';
import type { OnnxPreprocessing } from '../export/onnx/export.js';
import { readOnnxHeader } from './onnx-metadata.js';
import { checkGraph, onnxModel } from '../export/onnx/check-graph.js';

/** How one expert's input is made: the file's `lorkd_preprocessing` metadata (the exporter's record). */
export type Preprocessing = OnnxPreprocessing;

/** One department's expert as the page sees it (manifest entry). */
export interface ManifestExpert extends Preprocessing {
  /** Unique, URL-safe id (from the file name). */
  id: string;
  /** Path of the model inside the site, e.g. "models/breastmnist.onnx". */
  file: string;
  task: string;
  model: string;
  lorkd_version: string;
  bytes: number;
}

export interface Manifest {
  format: 'lorkd-app';
  version: 1;
  experts: ManifestExpert[];
}

/** An expert in the source folder: its manifest entry and the .onnx file it comes from. */
export interface ExpertSource {
  entry: ManifestExpert;
  source: string;
}

const isNumArray = (v: unknown, n: number): v is number[] => Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number' && Number.isFinite(x));

/** Checks a `lorkd_preprocessing` record; `fail` gets a one-line reason. */
export function parsePreprocessing(json: string, fail: (m: string) => never): Preprocessing {
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return fail('metadata "lorkd_preprocessing" is not valid JSON');
  }
  if (typeof p !== 'object' || p === null) return fail('metadata "lorkd_preprocessing" is not a JSON object');
  const { input_size: size, resize, mean, std, channels, class_names: names } = p;
  if (!(Number.isInteger(size) && (size as number) >= 1)) fail(`input_size must be a positive integer, got ${JSON.stringify(size)}`);
  if ((size as number) > limit('input')) fail(`input_size ${size} is over the limit (${limitHint('input')})`);
  if (resize !== 'bilinear') fail(`resize must be "bilinear", got ${JSON.stringify(resize)}`);
  if (channels !== 3) fail(`the app runs 3-channel experts, this one takes ${JSON.stringify(channels)} channels`);
  if (!isNumArray(mean, 3)) fail(`mean must be 3 finite numbers, got ${JSON.stringify(mean)}`);
  if (!isNumArray(std, 3) || std.some((s) => s === 0)) fail(`std must be 3 finite non-zero numbers, got ${JSON.stringify(std)}`);
  if (!(Array.isArray(names) && names.length >= 1 && names.every((c) => typeof c === 'string'))) fail(`class_names must be a non-empty list of strings`);
  return { input_size: size as number, resize: 'bilinear', mean: mean as number[], std: std as number[], channels: 3, class_names: names as string[] };
}

/** Reads and checks one exported .onnx file; `id` and `file` name it in the site. */
export function readExpert(source: string, id: string): ExpertSource {
  const bytes = readRegular(source, { what: 'ONNX file' });
  const fail = (m: string): never => {
    throw new UserError(`${source}: ${m}`);
  };
  const h = readOnnxHeader(bytes, source);
  if (!h.inputs.includes('input')) fail(`no graph input named "input" (inputs: ${h.inputs.join(', ') || 'none'}); export it with lorkd export --format onnx`);
  for (const o of ['logits', 'cam']) if (!h.outputs.includes(o)) fail(`no graph output named "${o}" (outputs: ${h.outputs.join(', ') || 'none'}); export it with lorkd export --format onnx`);
  const md = h.metadata;
  for (const k of ['lorkd_preprocessing', 'lorkd_task', 'lorkd_model', 'lorkd_version']) if (md[k] === undefined) fail(`metadata lacks "${k}"; export it with lorkd export --format onnx`);
  const pre = parsePreprocessing(md.lorkd_preprocessing!, (m) => fail(m));
  // The graph the browser will run is checked as lorkd predict checks it (sizes it states included).
  checkGraph(onnxModel(bytes, source), source);
  return {
    source,
    entry: { id, file: `models/${id}.onnx`, task: md.lorkd_task!, model: md.lorkd_model!, lorkd_version: md.lorkd_version!, bytes: bytes.length, ...pre },
  };
}

/** URL-safe id from a file name: letters, digits, '.', '_' and '-' kept, anything else '_'. */
const safeId = (file: string): string => path.basename(file, path.extname(file)).replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || 'expert';

/**
 * The experts in `dir`: every *.onnx file directly inside it, sorted by name, each checked
 * (see readExpert). No .onnx file, or two files with the same id, is a UserError.
 */
export function scanExperts(dir: string): ExpertSource[] {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new UserError(`${dir}: not a folder (--experts takes a folder of .onnx files)`);
    names = readdirSync(dir);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${dir}: cannot read experts folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const files = names.filter((n) => !n.startsWith('.') && n.toLowerCase().endsWith('.onnx')).sort();
  if (files.length === 0) throw new UserError(`${dir}: no .onnx experts in the folder (write them with lorkd export --format onnx --all --out ${dir})`);
  const seen = new Set<string>();
  return files.map((f) => {
    const id = safeId(f);
    if (seen.has(id)) throw new UserError(`${dir}: two experts map to the same name "${id}" (rename one of them)`);
    seen.add(id);
    return readExpert(path.join(dir, f), id);
  });
}

/** The manifest of a set of experts. */
export const manifestOf = (experts: ExpertSource[]): Manifest => ({ format: 'lorkd-app', version: 1, experts: experts.map((e) => e.entry) });
