// Helpers for the end-to-end pipeline tests: tiny MedMNIST-format task files, running the lorkd
// command (bin/lorkd.js) as a child process, and reading safetensors files byte for byte.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import { lcg } from './random.js';

/** The repository root (dist/test/helpers/ -> ../../..). */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BIN = path.join(REPO, 'bin', 'lorkd.js');

/** One .npy member: little-endian data with a v1.0 header padded to 64 bytes. */
export function npy(descr: string, shape: number[], bytes: Uint8Array): Uint8Array {
  let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  h += ' '.repeat(63 - ((10 + h.length) % 64)) + '\n';
  const out = new Uint8Array(10 + h.length + bytes.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 255, h.length >> 8]);
  out.set(Uint8Array.from(h, (c) => c.charCodeAt(0)), 10);
  out.set(bytes, 10 + h.length);
  return out;
}

export interface TinyTask {
  classes: number;
  /** Images per split. */
  sizes: { train: number; val: number; test: number };
  /** RGB (N, 28, 28, 3) instead of grey (N, 28, 28). */
  rgb?: boolean;
  seed: number;
}

/**
 * Writes a MedMNIST-format .npz with 28x28 uint8 images whose class is learnable: class k is a
 * bright square at a class-dependent position over uniform noise. Labels are uint8 (N, 1).
 */
export function writeTaskNpz(file: string, t: TinyTask): void {
  const r = lcg(t.seed);
  const H = 28;
  const c = t.rgb ? 3 : 1;
  const members: Record<string, Uint8Array> = {};
  for (const [split, n] of Object.entries(t.sizes)) {
    const images = new Uint8Array(n * H * H * c);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const k = i % t.classes;
      labels[i] = k;
      const y0 = 2 + ((k * 7) % 18);
      const x0 = 2 + ((k * 11) % 18);
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < H; x++) {
          const inside = y >= y0 && y < y0 + 8 && x >= x0 && x < x0 + 8;
          for (let ch = 0; ch < c; ch++) images[((i * H + y) * H + x) * c + ch] = Math.floor(r() * 100) + (inside ? 150 : 0);
        }
      }
    }
    members[`${split}_images.npy`] = npy('|u1', t.rgb ? [n, H, H, 3] : [n, H, H], images);
    members[`${split}_labels.npy`] = npy('|u1', [n, 1], labels);
  }
  writeFileSync(file, zipSync(members));
}

/** Environment of a lorkd child: one libtorch thread (shared machine, and deterministic). */
export function lorkdEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, LORKD_NUM_THREADS: '1', OMP_NUM_THREADS: '1', ...extra };
}

export interface LorkdResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/lorkd.js ...args` to completion (`env`: variables over lorkdEnv()'s). */
export function lorkd(args: string[], o: { timeoutMs?: number; env?: Record<string, string> } = {}): LorkdResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: lorkdEnv(o.env), timeout: o.timeoutMs ?? 300_000, cwd: REPO });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs lorkd and fails with its stderr unless it exits 0. */
export function lorkdOk(args: string[], env?: Record<string, string>): LorkdResult {
  const r = lorkd(args, { env });
  if (r.status !== 0) throw new Error(`lorkd ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r;
}

/** The last non-empty stdout line parsed as JSON (the --json result). */
export function lastJson<T = Record<string, unknown>>(stdout: string): T {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  return JSON.parse(lines[lines.length - 1]!) as T;
}

/** Starts `node bin/lorkd.js ...args` without waiting; stderr is collected into `stderr()`. */
export function lorkdSpawn(args: string[]): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { env: lorkdEnv(), cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stderr: () => err, exited };
}

export interface RawSafetensors {
  metadata: Record<string, string>;
  /** Tensor name -> dtype, shape and the raw little-endian bytes. */
  tensors: Map<string, { dtype: string; shape: number[]; bytes: Buffer }>;
}

/** Parses a safetensors file by hand: u64 LE header length, JSON header, data. */
export function readRawSafetensors(file: string): RawSafetensors {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> & {
    __metadata__?: Record<string, string>;
  };
  const base = 8 + n;
  const tensors = new Map<string, { dtype: string; shape: number[]; bytes: Buffer }>();
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__') continue;
    const e = v as { dtype: string; shape: number[]; data_offsets: [number, number] };
    tensors.set(k, { dtype: e.dtype, shape: e.shape, bytes: buf.subarray(base + e.data_offsets[0], base + e.data_offsets[1]) });
  }
  return { metadata: header.__metadata__ ?? {}, tensors };
}

/** Names of the tensors whose bytes differ between two safetensors files (or that only one has). */
export function differingTensors(a: string, b: string): string[] {
  const x = readRawSafetensors(a).tensors;
  const y = readRawSafetensors(b).tensors;
  const names = new Set([...x.keys(), ...y.keys()]);
  return [...names].filter((k) => {
    const p = x.get(k);
    const q = y.get(k);
    return !p || !q || p.dtype !== q.dtype || p.shape.join() !== q.shape.join() || !p.bytes.equals(q.bytes);
  });
}

/** name -> (size, mtime) of every file in a folder tree: to check that nothing was written. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const s = statSync(p);
        out[path.relative(dir, p)] = `${s.size}:${s.mtimeMs}`;
      }
    }
  };
  walk(dir);
  return out;
}
