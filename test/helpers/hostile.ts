// Helpers for the hostile-input tests: lorkd as a child process with its peak memory measured
// (/usr/bin/time), the one-line error contract, and hand-made PNG and zip files that lie.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import assert from 'node:assert/strict';
import { deflateSync, deflateRawSync, crc32 as zcrc } from 'node:zlib';
import { BIN, REPO, lorkdEnv } from './pipeline.js';
import { crc32 } from '../../src/data/zip.js';

export const HAVE_TIME = existsSync('/usr/bin/time');

export interface Measured {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stderr lines, without the measurement line. */
  lines: string[];
  /** Peak resident memory of the child in MiB (NaN without /usr/bin/time). */
  maxRssMiB: number;
  seconds: number;
}

/** Runs `lorkd ...args` to completion, measuring its peak RSS with /usr/bin/time when present. */
export function lorkdMeasured(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Measured {
  const t0 = Date.now();
  const cmd = HAVE_TIME ? '/usr/bin/time' : process.execPath;
  const argv = HAVE_TIME ? ['-f', 'MAXRSS_KB=%M', process.execPath, BIN, ...args] : [BIN, ...args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: lorkdEnv(env), timeout: timeoutMs, cwd: REPO });
  const all = r.stderr.split('\n').filter((l) => l !== '');
  const m = all.map((l) => /^MAXRSS_KB=(\d+)$/.exec(l)).find(Boolean);
  const lines = all.filter((l) => !/^MAXRSS_KB=\d+$/.test(l) && !/^Command (exited with non-zero status|terminated by signal)/.test(l));
  return { status: r.status, signal: r.signal, stdout: r.stdout, lines, maxRssMiB: m ? Number(m[1]) / 1024 : NaN, seconds: (Date.now() - t0) / 1000 };
}

/** The contract for bad input: exit 2, nothing on stdout, exactly one stderr line "lorkd: ..." matching `re`. */
export function expectOneLine(r: Measured, re: RegExp): string {
  assert.equal(r.status, 2, `exit 2 expected, got ${r.status} (signal ${r.signal}); stderr:\n${r.lines.join('\n')}`);
  assert.equal(r.lines.length, 1, `one stderr line expected:\n${r.lines.join('\n')}`);
  assert.match(r.lines[0]!, /^lorkd: /);
  assert.match(r.lines[0]!, re);
  assert.equal(r.stdout, '');
  return r.lines[0]!;
}

/** One PNG chunk: length, type, data and CRC. */
export function pngChunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zcrc(Buffer.concat([Buffer.from(type, 'latin1'), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

export interface PngHeaderFields {
  width: number;
  height: number;
  depth?: number;
  colorType?: number;
  interlaced?: boolean;
}

/**
 * A PNG with the given header (default 8-bit RGB, colour type 2), `before` chunks (PLTE, tRNS)
 * and one IDAT holding `idat` (already deflated); `iend` false leaves the end marker out.
 */
export function pngFile(h: PngHeaderFields, idat: Uint8Array, o: { before?: Buffer[]; iend?: boolean } = {}): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(h.width, 0);
  ihdr.writeUInt32BE(h.height, 4);
  ihdr[8] = h.depth ?? 8;
  ihdr[9] = h.colorType ?? 2;
  ihdr[12] = h.interlaced ? 1 : 0;
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, pngChunk('IHDR', ihdr), ...(o.before ?? []), pngChunk('IDAT', idat), ...(o.iend === false ? [] : [pngChunk('IEND', new Uint8Array(0))])]);
}

/** An 8-bit RGB PNG of width x height whose IDAT holds `idat`; `iend` false leaves the end marker out. */
export function craftPng(width: number, height: number, idat: Uint8Array, iend = true): Buffer {
  return pngFile({ width, height }, idat, { iend });
}

/** A legal 1 x h 8-bit RGB PNG: one pixel per row, every row filtered with None. */
export function tallPng(h: number): Buffer {
  const rows = Buffer.alloc(4 * h);
  for (let y = 0; y < h; y++) rows[4 * y + 1] = y & 0xff;
  return pngFile({ width: 1, height: h }, deflateSync(rows, { level: 9 }));
}

/** `rows` filtered scanlines (filter byte 0) of an 8-bit RGB image `width` wide, deflated. */
export function pngRows(width: number, rows: number, value = 0): Buffer {
  const row = Buffer.alloc(1 + 3 * width, value);
  row[0] = 0;
  return deflateSync(Buffer.concat(Array.from({ length: rows }, () => row)));
}

export interface ZipEntry {
  name: string;
  data: Uint8Array;
  /** The uncompressed size written in the headers (default: the true size). */
  claimedSize?: number;
}

/** A zip archive of deflated members whose headers may state a false size (CRC of the true data). */
export function craftZip(entries: ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const comp = deflateRawSync(e.data);
    const name = Buffer.from(e.name, 'utf8');
    const size = e.claimedSize ?? e.data.length;
    const crc = crc32(e.data);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt16LE(8, 8);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(comp.length, 18);
    lh.writeUInt32LE(size, 22);
    lh.writeUInt16LE(name.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt16LE(8, 10);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(comp.length, 20);
    ch.writeUInt32LE(size, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt32LE(offset, 42);
    locals.push(lh, name, comp);
    centrals.push(ch, name);
    offset += lh.length + name.length + comp.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}
