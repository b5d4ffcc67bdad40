// A MedMNIST-style INFO record beside an .npz (`<name>.json`): the task's class names (`label`,
// class index -> name), its task type (`task`) and its channels (`n_channels`). MedMNIST's own INFO
// dict has these fields per subset; data/tasks64/*.json follow it.
import { existsSync, readFileSync } from 'node:fs';
import { UserError } from '../tensor/errors.js';
import type { TaskType } from './dataset.js';

export interface InfoJson {
  file: string;
  labels: string[];
  task: TaskType;
  nChannels: 1 | 3;
  /** Other fields kept as read (description, license, n_samples, MD5, ...). */
  extra: Record<string, unknown>;
}

const TASK_TYPES: readonly TaskType[] = ['binary-class', 'multi-class', 'ordinal-regression'];

/** `<dir>/<name>.json` for `<dir>/<name>.npz`. */
export const infoJsonPath = (npzFile: string): string => npzFile.replace(/\.npz$/i, '') + '.json';

/** Parses an INFO record; every malformed field is one UserError naming the file and the field. */
export function parseInfoJson(text: string, file: string): InfoJson {
  const fail = (m: string): never => {
    throw new UserError(`${file}: ${m}`);
  };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return fail(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('must be a JSON object');
  const o = v as Record<string, unknown>;
  const task = o.task;
  if (task === 'multi-label' || task === 'multi-label, binary-class') fail(`task "${task}" is not supported (one label per image only)`);
  if (!TASK_TYPES.includes(task as TaskType)) fail(`task must be one of ${TASK_TYPES.join(', ')}, got ${JSON.stringify(task)}`);
  const ch = o.n_channels;
  if (ch !== 1 && ch !== 3) fail(`n_channels must be 1 or 3, got ${JSON.stringify(ch)}`);
  const label = o.label;
  if (typeof label !== 'object' || label === null || Array.isArray(label)) return fail('label must be an object of class index -> name');
  const entries = Object.entries(label as Record<string, unknown>);
  if (entries.length === 0) fail('label has no classes');
  const labels: string[] = [];
  for (let i = 0; i < entries.length; i++) {
    const name = (label as Record<string, unknown>)[String(i)];
    if (name === undefined) fail(`label must have the keys "0".."${entries.length - 1}", "${i}" is missing`);
    if (typeof name !== 'string' || name.trim() === '') fail(`label."${i}" must be a non-empty string, got ${JSON.stringify(name)}`);
    labels.push(name as string);
  }
  const { task: _t, n_channels: _c, label: _l, ...extra } = o;
  return { file, labels, task: task as TaskType, nChannels: ch as 1 | 3, extra };
}

/** The INFO record beside an .npz, or null when there is none. */
export function readInfoJson(npzFile: string): InfoJson | null {
  const file = infoJsonPath(npzFile);
  if (!existsSync(file)) return null;
  return parseInfoJson(readFileSync(file, 'utf8'), file);
}
