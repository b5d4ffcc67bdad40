// The machine watch of every benchmark: own CPU (with reaped children) apart from other work, and
// a busy run flagged in one line. Checked with CPU burners whose time is known.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { machineLine, watchMachine } from '../bench/machine.js';

// Burn a given CPU time (not wall time: the machine may be shared), or burn until killed.
const CPU = (s: number) => `const u = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1e6; }; let x = 0; while (u() < ${s}) for (let i = 0; i < 1e5; i++) x += Math.sqrt(x + i);`;
const FOREVER = 'let x = 0; for (;;) x += Math.sqrt(x + 1);';
const cpuOf = (pid: number) => {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ').map(Number);
  return (f[11]! + f[12]!) / 100;
};

test('own CPU counts this process and its exited children', () => {
  const w = watchMachine();
  const c0 = process.cpuUsage();
  let x = 0;
  while (process.cpuUsage(c0).user < 300_000) for (let i = 0; i < 1e5; i++) x += Math.sqrt(x + i);
  const r = spawnSync(process.execPath, ['-e', CPU(0.4)]);
  assert.equal(r.status, 0);
  const m = w.stop();
  assert.ok(m.own_cpu_s >= 0.6, `own CPU ${m.own_cpu_s} s after 0.3 s here and 0.4 s in a child`);
  assert.ok(m.wall_s >= 0.6 && m.cores >= 1);
  assert.ok(typeof m.cpu === 'string' && m.cpu.length > 0, 'the CPU model is recorded');
  const flags = readFileSync('/proc/cpuinfo', 'utf8');
  assert.equal(m.isa!.includes('avx2'), /^flags\s*:.*\bavx2\b/m.test(flags), 'avx2 listed exactly when /proc/cpuinfo has it');
});

test('another process burning a core during the run marks it busy, and the line says not to quote it', async () => {
  // Not waited for before stop(): to the watch it is other work on the machine.
  const other = spawn(process.execPath, ['-e', FOREVER], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 200));
    const w = watchMachine();
    const b0 = cpuOf(other.pid!);
    await new Promise((r) => setTimeout(r, 1500));
    const burned = cpuOf(other.pid!) - b0;
    const m = w.stop();
    assert.ok(m.others_cpu_s !== null && m.others_cores !== null, '/proc is there on Linux');
    assert.ok(burned > 0.3, `the burner ran ${burned} CPU s`);
    assert.ok(m.others_cpu_s! >= 0.8 * burned - 0.02, `others ${m.others_cpu_s} CPU s while the burner alone used ${burned}`);
    assert.equal(m.busy, true);
    assert.match(m.busy_reason, /other processes used/);
    assert.match(machineLine(m), /^machine: .*\nBUSY MACHINE: .*do not quote them\.$/);
  } finally {
    other.kill('SIGKILL');
  }
});

test('a quiet reading prints one line marked quiet', () => {
  const line = machineLine({ cores: 2, loadavg_before: 0.1, loadavg_after: 1.9, wall_s: 10, own_cpu_s: 19.5, others_cpu_s: 0.4, others_cores: 0.04, busy: false, busy_reason: '' });
  assert.equal(line, 'machine: 2 cores, load 0.10 -> 1.90, others used 0.04 cores, this benchmark 19.5 CPU s in 10.0 s (quiet)');
  const withCpu = machineLine({ cores: 2, cpu: 'Some CPU', isa: ['avx2', 'avx512f'], loadavg_before: 0.1, loadavg_after: 1.9, wall_s: 10, own_cpu_s: 19.5, others_cpu_s: 0.4, others_cores: 0.04, busy: false, busy_reason: '' });
  assert.match(withCpu, /^machine: 2 cores \(Some CPU; avx2 avx512f\), load 0\.10/);
});
