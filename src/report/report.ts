// `lorkd report`: one self-contained HTML file of a run or a comparison (Tables 1-4, the charts as
// inline SVG, the Grad-CAM grid as data: URIs). Each section appears when its data exists, and
// otherwise says which command produces it.
import { writeFileAtomic } from '../io/atomic.js';
import path from 'node:path';
import { UserError } from '../tensor/errors.js';
import type { Progress } from '../experiments/progress.js';
import type { GradcamGrid, Study } from './study.js';
import { loadRun } from './load-run.js';
import { loadCompare } from './load-compare.js';
import { addAnalysis } from './load-analysis.js';
import { chartsOf, type Chart } from './charts.js';
import { renderSvg } from './render.js';
import { esc, figureHtml, pageHtml, type Section } from './html.js';
import { table1, table2, table3, table4, taskExpertsTable, pairedTable, migTable } from './tables.js';

export interface ReportOptions {
  run?: string;
  compare?: string;
  out?: string;
  transfer?: string;
  analysis?: string;
  title?: string;
  /** Count FLOPs the source lacks by tracing the networks (native); default true. */
  flops?: boolean;
  progress: Progress;
}

export interface ReportResult {
  file: string;
  bytes: number;
  /** Section id -> whether it had data. */
  sections: Record<string, boolean>;
  charts: string[];
}

export function loadStudy(o: ReportOptions): Study {
  if (!!o.run === !!o.compare) throw new UserError('report needs exactly one of --run DIR or --compare DIR');
  const study = o.run ? loadRun(o.run, { flops: o.flops }) : loadCompare(o.compare!, { flops: o.flops });
  addAnalysis(study, { transfer: o.transfer, analysis: o.analysis });
  if (o.title) study.title = o.title;
  return study;
}

const wrap = (t: string) => `<div class="table-wrap">${t}</div>`;
const cmd = (s: string) => `<code>${esc(s)}</code>`;

/** One strip per input image (panels: the image, then each network's map), the predictions below. */
function gradcamGrid(g: GradcamGrid): string {
  const head = g.columns.length ? `<div class="strip-head">${g.columns.map((c) => `<span>${esc(c)}</span>`).join('')}</div>` : '';
  const rows = g.rows
    .map((r) => `<div class="strip"><div class="strip-label">${esc(r.label)}</div><img src="${r.dataUri}" alt="${esc(r.label)}">${r.captions.length ? `<div class="strip-caps"><span></span>${r.captions.map((c) => `<span>${esc(c)}</span>`).join('')}</div>` : ''}</div>`)
    .join('');
  return `<div class="gradcam" id="gradcam-grid" style="--panels: ${Math.max(g.columns.length, 1)}">${head}${rows}</div><p class="note">Grad-CAM of each network's predicted class over the same inputs (the paper's Figure 3: the foundation against an expert); under each map the predicted class and its probability.</p>`;
}

/** The sections of the page, with the rendered charts placed in them. */
export function sectionsOf(study: Study, figs: Record<string, string>): Section[] {
  const fig = (id: string) => figs[id] ?? '';
  const compare = study.kind === 'compare';
  const hasFlops = study.methods.some((m) => m.flops_training !== null || m.flops_deployment !== null);
  return [
    {
      id: 'table1', title: 'Table 1: methods on the tasks',
      body: study.methods.length ? wrap(table1(study)) + fig('task-accuracy') + fig('accuracy-params') : null,
      missing: `${cmd('lorkd eval --run DIR')} or ${cmd('lorkd demo --out DIR')} writes a run's results; ${cmd('lorkd compare --methods all --seeds 0,1,2 --out DIR')} compares the methods.`,
    },
    {
      id: 'paired', title: 'Paired differences against LoRKD',
      body: study.paired.length ? wrap(pairedTable(study)) + fig('paired') : null,
      missing: `${cmd('lorkd compare --methods all --seeds 0,1,2 --out DIR')} writes the per-seed differences against LoRKD.`,
      ...(compare ? {} : { needs: `A single run has one seed and one method: ${cmd('lorkd compare --methods all --seeds 0,1,2 --out DIR')} gives every method's paired per-seed difference against LoRKD.` }),
    },
    {
      id: 'table2', title: 'Table 2: transfer',
      body: study.transfer.length ? wrap(table2(study)) + fig('transfer') : null,
      missing: `${cmd('lorkd transfer --from FILE --data DOWNSTREAM --out DIR')} writes transfer.json (put it beside the run or pass ${cmd('--transfer FILE')}); ${cmd('lorkd compare --transfer SPEC')} adds it to a comparison.`,
    },
    {
      id: 'table3', title: 'Table 3: rank ablation',
      body: study.ranks.length ? wrap(table3(study)) + (fig('rank-curve') || '<p class="note">One rank only: the rank curve needs two or more.</p>') : null,
      missing: `${cmd('lorkd compare --methods lorkd --ranks 4,8,16 --out DIR')} trains LoRKD at each rank.`,
      ...(compare ? {} : { needs: `A single run has one rank: ${cmd('lorkd compare --methods lorkd --ranks 4,8,16 --seeds 0,1,2 --out DIR')} trains LoRKD at each rank over seeds.` }),
    },
    {
      id: 'table4', title: 'Table 4: costs of training and deployment',
      body: study.methods.length ? wrap(table4(study)) + `<p class="note">${hasFlops ? esc(study.flopsNote ?? '') : `The source has no FLOPs: ${cmd('lorkd params --tasks T --rank r --input S --json')} counts them.`}</p>` + (study.taskExperts.length ? wrap(taskExpertsTable(study)) : '') : null,
      missing: `${cmd('lorkd params --tasks T --rank r --json')} counts LoRKD's; a run or a comparison gives every method's.`,
    },
    {
      id: 'training', title: 'Training curves',
      body: study.curves.length ? fig('training-curves') : null,
      missing: `the trainers write their history into the checkpoints (${cmd('*.ckpt.safetensors')}) of ${cmd('lorkd foundation')}, ${cmd('lorkd decompose')} and ${cmd('lorkd compare')}.`,
    },
    {
      id: 'gradcam', title: 'Grad-CAM: foundation against experts',
      body: study.gradcam?.rows.length ? gradcamGrid(study.gradcam) : null,
      missing: `${cmd('lorkd analyze gradcam --model FOUNDATION,EXPERT --input IMAGES --out DIR/gradcam')} writes the maps.`,
    },
    {
      id: 'mig', title: 'Disentanglement: MIG',
      body: study.mig.length ? wrap(migTable(study)) + fig('mig') : null,
      missing: `${cmd('lorkd analyze mig --compare DIR')} writes mig.json.`,
    },
    {
      id: 'cka', title: 'Representation similarity: CKA',
      body: study.cka.length ? fig('cka') : null,
      missing: `${cmd('lorkd analyze cka --compare DIR')} writes cka.json.`,
    },
  ];
}

export async function buildReport(study: Study, progress: Progress): Promise<{ html: string; sections: Section[]; charts: string[] }> {
  const charts = Object.values(chartsOf(study)).filter((c): c is Chart => c !== null);
  const figs: Record<string, string> = {};
  progress.start('[report] charts', charts.length);
  for (const [i, c] of charts.entries()) {
    figs[c.id] = figureHtml(c.id, c.title, await renderSvg(c.spec, c.id), c.caption);
    progress.update(i + 1, {});
  }
  progress.stop(`[report] ${charts.length} charts rendered`);
  const sections = sectionsOf(study, figs);
  const notes = study.notes.map((n) => `<p class="note">${esc(n)}</p>`).join('');
  const kind = study.kind === 'compare' ? `comparison of ${study.methods.length} methods over seeds ${study.seeds.join(', ')}` : 'a single run (one seed)';
  const html = pageHtml({
    title: study.title,
    sub: `${esc(kind)} on ${esc(study.tasks.join(', ') || 'no tasks')}`,
    notes,
    facts: study.facts,
    sections,
    footer: `Written by <code>lorkd report</code> on ${esc(new Date().toISOString().slice(0, 16).replace('T', ' '))} UTC from ${esc(study.source)}. Self-contained: no scripts, no network.`,
  });
  return { html, sections, charts: charts.map((c) => c.id) };
}

/** Loads, renders and writes the report (atomically); the default file is report.html in the source directory. */
export async function writeReport(o: ReportOptions): Promise<ReportResult> {
  const study = loadStudy(o);
  const { html, sections, charts } = await buildReport(study, o.progress);
  const file = path.resolve(o.out ?? path.join(study.source, 'report.html'));
  writeFileAtomic(file, html);
  return { file, bytes: Buffer.byteLength(html), sections: Object.fromEntries(sections.map((s) => [s.id, s.body !== null])), charts };
}
