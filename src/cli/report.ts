// lorkd report: one self-contained HTML file of a run or a comparison.
import type { Command } from 'commander';
import { writeReport } from '../report/index.js';
import { createProgress } from '../experiments/progress.js';
import { emit, run } from './output.js';

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('one self-contained HTML report (Tables 1-4, charts as inline SVG, Grad-CAM grid) of a run or a comparison')
    .option('--run <dir>', 'a run directory (lorkd demo, or foundation + decompose + eval with one --out)')
    .option('--compare <dir>', 'a comparison directory (lorkd compare: compare.json and its run folders)')
    .option('--out <file>', 'HTML file to write (default: report.html in the directory)')
    .option('--transfer <file>', 'transfer results (lorkd transfer --json); default: transfer.json beside the run')
    .option('--analysis <dir>', 'folder with mig.json, cka.json, gradcam/ (lorkd analyze); default: the run directory and its analysis/')
    .option('--title <text>', 'page title')
    .option('--no-flops', 'do not count a single run\'s FLOPs (they need the networks built once)')
    .option('--quiet', 'no progress output')
    .option('--json', 'print one JSON object at the end')
    .action((o) =>
      run(async () => {
        const r = await writeReport({ run: o.run, compare: o.compare, out: o.out, transfer: o.transfer, analysis: o.analysis, title: o.title, flops: o.flops, progress: createProgress({ quiet: !!o.quiet }) });
        const present = Object.entries(r.sections).filter(([, v]) => v).map(([k]) => k);
        emit(!!o.json, r, () => `report written to ${r.file} (${(r.bytes / 1024).toFixed(0)} KiB; sections with data: ${present.join(', ')})`);
      }),
    );
}
