// Fills a teacher cache in a child process (teacher-cache.test.ts): `node teacher-fill.js JSON`
// with { tasks, teacher, out, batch, killAfter? }. With killAfter it kills itself (SIGKILL) after
// that many chunks of the fill, as a killed run would stop. Without arguments it does nothing.
import { fileURLToPath } from 'node:url';
import { setNumThreads } from '../../src/tensor/index.js';
import { openTeacherFile, type Teacher } from '../../src/experiments/teacher/index.js';
import { teacherOutputs } from '../../src/experiments/teacher-cache.js';
import { loadSuite, trainLoader } from '../../src/experiments/data-options.js';
import { RunDir } from '../../src/experiments/run-dir.js';
import type { Progress } from '../../src/experiments/progress.js';

export interface FillArgs {
  tasks: string[];
  teacher: string;
  out: string;
  /** Rows per teacher forward (a small one gives the fill many chunks). */
  batch: number;
  killAfter?: number;
}

/** The teacher of `file` with `batch` rows per forward (the same teacher otherwise). */
export function withBatch(t: Teacher, batch: number): Teacher {
  return Object.create(t, { batchSize: { value: batch } }) as Teacher;
}

export async function fillCache(a: FillArgs, log: string[] = []): Promise<void> {
  const suite = loadSuite(a);
  const opened = await openTeacherFile(a.teacher, {}, suite.totalClasses, ['features', 'logits']);
  const t = withBatch(opened, a.batch);
  t.place('cpu', true);
  const progress: Progress = {
    start() {},
    update(done) {
      if (a.killAfter !== undefined && done >= a.killAfter) process.kill(process.pid, 'SIGKILL');
    },
    stop() {},
    log: (s) => log.push(s),
  };
  const cache = await teacherOutputs(t, trainLoader(suite, { ...a, input: 16, batch: 8, seed: 0 }), RunDir.open(a.out, { resume: true, marker: '-' }), progress, { commitMs: 0 });
  cache.dispose();
  await opened.dispose();
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] !== undefined) {
  setNumThreads(1);
  const log: string[] = [];
  await fillCache(JSON.parse(process.argv[2]) as FillArgs, log);
  console.log(JSON.stringify({ log }));
}
