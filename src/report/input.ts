// Tolerant, validating readers for the files a report is built from: every malformed input fails
// with one line (a UserError) that names the file and the field.
import { readRegular } from '../io/read.js';
import { readSafetensorsMetadata } from '../io/safetensors.js';
import { UserError } from '../tensor/errors.js';

/** A summary statistic: the mean over runs (seeds), its 95% interval when known, the runs. */
export interface Stat {
  mean: number;
  ci95: [number, number] | null;
  runs: number[];
}

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

/** A file's bytes, or one line naming it. */
export function readBytes(file: string): Buffer {
  const b = readRegular(file);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Reads and parses a JSON file, or fails with one line naming it. */
export function readJson(file: string): Json {
  const text = readBytes(file).toString('utf8');
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new UserError(`${file} is not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

/** Typed access to a parsed file, failing with `FILE: WHERE must be ...`. */
export class Fields {
  constructor(readonly file: string) {}

  fail(where: string, what: string, v: unknown): never {
    const got = v === undefined ? 'nothing' : JSON.stringify(v)?.slice(0, 40) ?? String(v);
    throw new UserError(`${this.file}: ${where} must be ${what}, got ${got}`);
  }
  obj(v: Json | undefined, where: string): JsonObject {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(where, 'an object', v);
    return v as JsonObject;
  }
  arr(v: Json | undefined, where: string): Json[] {
    if (!Array.isArray(v)) this.fail(where, 'an array', v);
    return v as Json[];
  }
  num(v: Json | undefined, where: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(where, 'a finite number', v);
    return v as number;
  }
  optNum(v: Json | undefined, where: string): number | null {
    return v === undefined || v === null ? null : this.num(v, where);
  }
  str(v: Json | undefined, where: string): string {
    if (typeof v !== 'string' || !v) this.fail(where, 'a non-empty string', v);
    return v as string;
  }
  strings(v: Json | undefined, where: string): string[] {
    return this.arr(v, where).map((s, i) => this.str(s, `${where}[${i}]`));
  }
  /** A number, or an object { mean, ci95?: [lo, hi], runs?|values?: [...] } (lorkd compare's and transfer's form). */
  stat(v: Json | undefined, where: string): Stat {
    if (typeof v === 'number') return { mean: this.num(v, where), ci95: null, runs: [v] };
    const o = this.obj(v, where);
    const mean = this.num(o.mean, `${where}.mean`);
    let ci95: [number, number] | null = null;
    if (o.ci95 !== undefined && o.ci95 !== null) {
      const c = this.arr(o.ci95, `${where}.ci95`);
      if (c.length !== 2) this.fail(`${where}.ci95`, 'a pair [lo, hi]', c);
      ci95 = [this.num(c[0], `${where}.ci95[0]`), this.num(c[1], `${where}.ci95[1]`)];
    }
    const rk = o.runs !== undefined && o.runs !== null ? 'runs' : o.values !== undefined && o.values !== null ? 'values' : null;
    const runs = rk ? this.arr(o[rk], `${where}.${rk}`).map((r, i) => this.num(r, `${where}.${rk}[${i}]`)) : [mean];
    return { mean, ci95, runs };
  }
  optStat(v: Json | undefined, where: string): Stat | null {
    return v === undefined || v === null ? null : this.stat(v, where);
  }
}

/**
 * The metadata of a safetensors file, read from its header only (checkpoints are large), or null
 * when the file has none. Fails with one line when the file is not safetensors.
 */
export function safetensorsMetadata(file: string): Record<string, string> | null {
  const md = readSafetensorsMetadata(file);
  return Object.keys(md).length ? md : null;
}

/** A budget record (epochs, input, lr, ...) on one line. */
export const budgetText = (b: JsonObject): string =>
  Object.entries(b).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => `${k.replace(/_/g, ' ')} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(', ');
