// Progress output for long work: a bar on a terminal, a line every few seconds otherwise (logs).
// Everything goes to stderr, so --json output on stdout stays clean.
import cliProgress from 'cli-progress';

export interface Progress {
  start(label: string, total: number): void;
  update(done: number, fields: Record<string, string | number>): void;
  stop(summary?: string): void;
  log(line: string): void;
}

const fmtEta = (s: number) => (s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`);

export function createProgress(o: { quiet?: boolean } = {}): Progress {
  if (o.quiet) return { start() {}, update() {}, stop() {}, log() {} };
  const tty = !!process.stderr.isTTY;
  let bar: cliProgress.SingleBar | null = null;
  let label = '';
  let total = 0;
  let t0 = 0;
  let lastLine = 0;
  return {
    start(l, n) {
      label = l;
      total = n;
      t0 = Date.now();
      lastLine = 0;
      if (tty) {
        bar = new cliProgress.SingleBar(
          { format: `${l} [{bar}] {value}/{total} {fields} eta {eta_formatted}`, stream: process.stderr, hideCursor: true, clearOnComplete: false },
          cliProgress.Presets.shades_classic,
        );
        bar.start(n, 0, { fields: '' });
      }
    },
    update(done, fields) {
      const f = Object.entries(fields).map(([k, v]) => `${k} ${typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(4)) : v}`).join(' ');
      if (bar) return bar.update(done, { fields: f });
      const now = Date.now();
      if (now - lastLine < 5000 && done < total) return;
      lastLine = now;
      const el = (now - t0) / 1000;
      const eta = done > 0 ? (el / done) * (total - done) : 0;
      process.stderr.write(`${label} ${done}/${total} ${f} eta ${fmtEta(eta)}\n`);
    },
    stop(summary) {
      bar?.stop();
      bar = null;
      if (summary) process.stderr.write(`${summary}\n`);
    },
    log(line) {
      process.stderr.write(`${line}\n`);
    },
  };
}
