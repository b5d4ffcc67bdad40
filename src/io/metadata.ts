// Checked reading of safetensors metadata fields (strings holding JSON): a missing field, text that
// is not JSON or a value of the wrong shape is one UserError naming the file and the field, never
// a stack trace from JSON.parse or a NaN travelling on.
import { UserError } from '../tensor/errors.js';

export type Metadata = Record<string, string>;

function bad(file: string, key: string, why: string): never {
  throw new UserError(`${file}: bad lorkd metadata "${key}" (${why})`);
}

/** The field parsed as JSON. */
export function metaJson(md: Metadata, key: string, file: string): unknown {
  const text = md[key];
  if (text === undefined) return bad(file, key, 'missing');
  try {
    return JSON.parse(text);
  } catch (e) {
    return bad(file, key, `not JSON: ${(e as Error).message}`);
  }
}

/** A non-empty string field (stored as is, not as JSON). */
export function metaString(md: Metadata, key: string, file: string): string {
  const v = md[key];
  if (v === undefined || v === '') return bad(file, key, 'missing');
  return v;
}

/** A positive integer field ("64"). */
export function metaPositiveInt(md: Metadata, key: string, file: string): number {
  const v = metaJson(md, key, file);
  if (!(typeof v === 'number' && Number.isSafeInteger(v) && v > 0)) return bad(file, key, `must be a positive integer, got ${md[key]}`);
  return v;
}

/** An array of finite numbers (of `length` when given). */
export function metaNumbers(md: Metadata, key: string, file: string, length?: number): number[] {
  const v = metaJson(md, key, file);
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x)) || (length !== undefined && v.length !== length)) {
    return bad(file, key, `must be an array of ${length ?? 'some'} finite numbers, got ${md[key]}`);
  }
  return v as number[];
}

/** A non-empty array of tasks {name: string, classNames: string[]} with at least one class each. */
export function metaTasks(md: Metadata, key: string, file: string): { name: string; classNames: string[] }[] {
  const v = metaJson(md, key, file);
  const ok =
    Array.isArray(v) &&
    v.length > 0 &&
    v.every(
      (t) => t !== null && typeof t === 'object' && typeof t.name === 'string' && Array.isArray(t.classNames) && t.classNames.length > 0 && t.classNames.every((c: unknown) => typeof c === 'string'),
    );
  if (!ok) return bad(file, key, 'must be a non-empty array of {name: string, classNames: string[]}');
  return (v as { name: string; classNames: string[] }[]).map((t) => ({ name: t.name, classNames: t.classNames.slice() }));
}

/**
 * Refuses a data suite whose tasks (names and class counts, in order) differ from the tasks a
 * model file records: "FILE was trained on tasks a:2,b:3, not a:2,c:4 (--tasks)".
 */
export function checkRecordedTasks(recorded: readonly { name: string; classNames: readonly string[] }[], suite: readonly { name: string; numClasses: number }[], file: string): void {
  const theirs = recorded.map((t) => `${t.name}:${t.classNames.length}`).join(',');
  const mine = suite.map((t) => `${t.name}:${t.numClasses}`).join(',');
  if (theirs !== mine) throw new UserError(`${file} was trained on tasks ${theirs}, not ${mine} (--tasks must list the model's tasks, in its order)`);
}
