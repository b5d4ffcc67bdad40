// The report's charts as vega-lite specs (pure data in, spec out; render.ts turns them into SVG).
// A chart whose data is missing is null: its section says which command produces it.
import type { TopLevelSpec } from 'vega-lite';
import type { Stat } from './input.js';
import type { Study } from './study.js';
import { methodLabel } from './labels.js';
import { PAPER_FIGURE_SOURCE, paperAccuracy } from './paper-figures.js';

export interface Chart {
  id: string;
  title: string;
  caption: string;
  spec: TopLevelSpec;
}

export const FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', 'Helvetica Neue', 'DejaVu Sans', Arial, sans-serif";
const PALETTE = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#eeca3b', '#b279a2', '#ff9da6', '#9d755d', '#bab0ac', '#2f4b7c', '#a05195'];

export const CHART_CONFIG = {
  font: FONT,
  background: 'white',
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 600, gridColor: '#e8e8e8', domainColor: '#888', tickColor: '#888', labelColor: '#333', titleColor: '#222' },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 600, orient: 'right' },
  header: { labelFontSize: 12, titleFontSize: 12 },
  range: { category: PALETTE },
} as const;

/** Colours by method, the same in every chart: the study's methods first, then the other names met. */
function colourOf(study: Study): (label: string) => string {
  const all = [...study.methods.map((m) => m.name), ...study.transfer.map((t) => t.method), ...study.mig.map((m) => m.method)].map(methodLabel);
  const order = [...new Set(all)];
  return (label) => PALETTE[Math.max(order.indexOf(label), 0) % PALETTE.length]!;
}

/** A colour encoding of the methods in this chart only (its legend lists them), in the study's colours. */
function methodColor(study: Study, labels: string[], title = 'method') {
  const domain = [...new Set(labels)];
  const colour = colourOf(study);
  return { field: 'method', type: 'nominal' as const, title, sort: domain, scale: { domain, range: domain.map(colour) }, legend: { labelLimit: 280 } };
}

const lohi = (s: Stat) => ({ mean: s.mean, lo: s.ci95?.[0] ?? s.mean, hi: s.ci95?.[1] ?? s.mean });

export function intervalWords(study: Study): string {
  if (study.interval === 'seeds') return `error bars: 95% t interval over seeds ${study.seeds.join(', ')}`;
  if (study.interval === 'binomial') return 'error bars: 95% Wilson interval over the test images (one run, one seed)';
  return 'one seed: no interval';
}

export function taskAccuracyChart(study: Study): Chart | null {
  if (!study.methods.length) return null;
  const values = study.methods.flatMap((m) => m.per_task.map((p) => ({ task: p.task, method: methodLabel(m.name), ...lohi(p.accuracy), paper: paperAccuracy(m.name, p.task) })));
  const color = methodColor(study, values.map((v) => v.method));
  const paper = values.some((v) => v.paper !== null);
  // The paper's own figure for the same task and method: a black diamond over our bar, in its own legend.
  const paperLayer = {
    transform: [{ filter: 'datum.paper != null' }],
    mark: { type: 'point' as const, shape: 'diamond', filled: true, size: 70, color: '#111', tooltip: true },
    encoding: { y: { field: 'paper', type: 'quantitative' as const }, shape: { datum: "paper's MedMNIST figure (its budget)", type: 'nominal' as const, title: null, scale: { range: ['diamond'] }, legend: { labelLimit: 320 } } },
  };
  return {
    id: 'task-accuracy',
    title: 'Per-task test accuracy',
    caption: `Mean test accuracy per task and method; ${intervalWords(study)}.` + (paper ? ` Black diamonds: ${PAPER_FIGURE_SOURCE}, drawn where our task is the same task (breast, retina; the blood task's MedMNIST form is BloodMNIST).` : ''),
    spec: {
      data: { values },
      width: Math.max(320, Math.min(820, study.tasks.length * study.methods.length * 22)),
      height: 260,
      encoding: { x: { field: 'task', type: 'nominal', title: null, axis: { labelAngle: 0 }, sort: study.tasks }, xOffset: { field: 'method', sort: color.sort } },
      layer: [
        { mark: { type: 'bar', tooltip: true }, encoding: { y: { field: 'mean', type: 'quantitative', title: 'accuracy', axis: { format: '.0%' } }, color } },
        { mark: { type: 'rule', color: '#222', strokeWidth: 1.2 }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
        ...(paper ? [paperLayer] : []),
      ],
    },
  };
}

export function accuracyParamsChart(study: Study): Chart | null {
  const ms = study.methods.filter((m) => m.params_deployment !== null);
  if (!ms.length) return null;
  const values = ms.map((m) => ({ method: methodLabel(m.name), params: m.params_deployment! / 1e6, ...lohi(m.mean_accuracy) }));
  const color = { ...methodColor(study, values.map((v) => v.method)), legend: null };
  const x = { field: 'params', type: 'quantitative' as const, title: 'deployed parameters per task (M, log scale)', scale: { type: 'log' as const, nice: false, padding: 24 }, axis: { values: [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100], format: '~g' } };
  return {
    id: 'accuracy-params',
    title: 'Mean accuracy against deployed parameters',
    caption: `Mean accuracy over the tasks against the parameters one department runs; ${intervalWords(study)}.`,
    spec: {
      data: { values },
      width: 520,
      height: 280,
      encoding: { x },
      layer: [
        { mark: { type: 'rule', strokeWidth: 1.5 }, encoding: { y: { field: 'lo', type: 'quantitative', title: 'mean accuracy', scale: { zero: false, padding: 16 }, axis: { format: '.0%' } }, y2: { field: 'hi' }, color } },
        { mark: { type: 'point', filled: true, size: 90, opacity: 1, tooltip: true }, encoding: { y: { field: 'mean', type: 'quantitative' }, color } },
        { mark: { type: 'text', align: 'left', dx: 8, dy: -8, fontSize: 11 }, encoding: { y: { field: 'mean', type: 'quantitative' }, text: { field: 'method' } } },
      ],
    },
  };
}

export function trainingCurvesChart(study: Study): Chart | null {
  if (!study.curves.length) return null;
  // One colour per run (a comparison's seeds of a method share it), one line per series.
  const values = study.curves.map((c) => ({ ...c, run: c.series.replace(/-s\d+$/, '') }));
  const hasVal = values.some((v) => v.val !== null);
  const line = (field: 'loss' | 'val', title: string, format?: string) => ({
    width: 360,
    height: 220,
    transform: field === 'val' ? [{ filter: 'datum.val != null' }] : [],
    mark: { type: 'line' as const, point: values.length <= 200, strokeWidth: 1.8 },
    encoding: {
      x: { field: 'epoch', type: 'quantitative' as const, title: 'epoch', axis: { tickMinStep: 1 } },
      y: { field, type: 'quantitative' as const, title, scale: { zero: false }, ...(format ? { axis: { format } } : {}) },
      color: { field: 'run', type: 'nominal' as const, title: 'run' },
      detail: { field: 'series', type: 'nominal' as const },
    },
  });
  return {
    id: 'training-curves',
    title: 'Training curves',
    caption: 'Training loss (left) and validation accuracy (right) per epoch, from the checkpoints\' history.',
    spec: { data: { values }, hconcat: hasVal ? [line('loss', 'training loss'), line('val', 'validation accuracy', '.0%')] : [line('loss', 'training loss')] },
  };
}

export function rankChart(study: Study): Chart | null {
  if (study.ranks.length < 2) return null;
  const values = study.ranks.map((r) => ({ rank: r.rank, params: r.params_training === null ? null : r.params_training / 1e6, ...lohi(r.mean_accuracy) }));
  const x = { field: 'rank', type: 'quantitative' as const, title: 'expert rank r (log scale)', scale: { type: 'log' as const, base: 2, nice: false, padding: 20 }, axis: { values: values.map((v) => v.rank), format: 'd' } };
  return {
    id: 'rank-curve',
    title: 'Rank ablation',
    caption: `LoRKD's mean accuracy against the expert rank; ${intervalWords(study).replace('error bars', 'band')}.`,
    spec: {
      data: { values },
      width: 420,
      height: 240,
      encoding: { x },
      layer: [
        { mark: { type: 'area', opacity: 0.18, color: '#4c78a8' }, encoding: { y: { field: 'lo', type: 'quantitative', title: 'mean accuracy', scale: { zero: false }, axis: { format: '.0%' } }, y2: { field: 'hi' } } },
        { mark: { type: 'line', point: { filled: true, size: 60 }, color: '#4c78a8', strokeWidth: 2, tooltip: true }, encoding: { y: { field: 'mean', type: 'quantitative' } } },
      ],
    },
  };
}

export function pairedChart(study: Study): Chart | null {
  if (!study.paired.length) return null;
  const values = study.paired.map((p) => ({ method: methodLabel(p.method), ...lohi(p.diff) }));
  const y = { field: 'method', type: 'nominal' as const, title: null, sort: values.map((v) => v.method) };
  return {
    id: 'paired',
    title: 'Paired difference against LoRKD',
    caption: 'Per-seed difference of mean accuracy (method minus LoRKD) with its 95% interval: an interval across 0 means the gap is within the noise of the seeds.',
    spec: {
      data: { values },
      width: 420,
      height: Math.max(60, values.length * 26),
      encoding: { y },
      layer: [
        { mark: { type: 'rule', color: '#999', strokeDash: [4, 3] }, encoding: { x: { datum: 0, type: 'quantitative' } } },
        { mark: { type: 'rule', strokeWidth: 2, color: '#4c78a8' }, encoding: { x: { field: 'lo', type: 'quantitative', title: 'difference of mean accuracy', axis: { format: '+.1%' } }, x2: { field: 'hi' } } },
        { mark: { type: 'point', filled: true, size: 70, color: '#4c78a8', opacity: 1, tooltip: true }, encoding: { x: { field: 'mean', type: 'quantitative' } } },
      ],
    },
  };
}

export function transferChart(study: Study): Chart | null {
  if (!study.transfer.length) return null;
  const values = study.transfer.map((t) => ({ downstream: t.downstream + (t.shots !== null ? ` (${t.shots}-shot)` : ''), method: methodLabel(t.method), ...lohi(t.accuracy) }));
  const downstreams = [...new Set(values.map((v) => v.downstream))];
  const methods = [...new Set(values.map((v) => v.method))];
  return {
    id: 'transfer',
    title: 'Transfer to downstream data',
    caption: 'Test accuracy after fine-tuning each starting network on the downstream data; error bars: 95% interval over the transfer seeds where there are several.',
    spec: {
      data: { values },
      width: Math.max(320, Math.min(820, downstreams.length * methods.length * 24)),
      height: 240,
      encoding: { x: { field: 'downstream', type: 'nominal', title: null, axis: { labelAngle: 0 }, sort: downstreams }, xOffset: { field: 'method', sort: methods } },
      layer: [
        { mark: { type: 'bar', tooltip: true }, encoding: { y: { field: 'mean', type: 'quantitative', title: 'accuracy', axis: { format: '.0%' } }, color: methodColor(study, values.map((v) => v.method), 'starting network') } },
        { mark: { type: 'rule', color: '#222' }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
      ],
    },
  };
}

export function migChart(study: Study): Chart | null {
  if (!study.mig.length) return null;
  const values = study.mig.map((m) => ({ method: methodLabel(m.method), ...lohi(m.mig) }));
  const x = { field: 'method', type: 'nominal' as const, title: null, sort: values.map((v) => v.method), axis: { labelAngle: -30 } };
  return {
    id: 'mig',
    title: 'Mutual information gap (MIG)',
    caption: 'MIG of each method\'s features with respect to the task and class factors (higher: more disentangled).',
    spec: {
      data: { values },
      width: Math.max(240, values.length * 48),
      height: 220,
      encoding: { x },
      layer: [
        { mark: { type: 'bar', tooltip: true }, encoding: { y: { field: 'mean', type: 'quantitative', title: 'MIG' }, color: { ...methodColor(study, values.map((v) => v.method)), legend: null } } },
        { mark: { type: 'rule', color: '#222' }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
      ],
    },
  };
}

export function ckaChart(study: Study): Chart | null {
  if (!study.cka.length) return null;
  const values = study.cka.flatMap((c) => c.values.flatMap((row, i) => row.map((v, j) => ({ method: methodLabel(c.method), a: c.tasks[i]!, b: c.tasks[j]!, cka: v }))));
  return {
    id: 'cka',
    title: 'Linear CKA between the tasks\' features',
    caption: 'Linear CKA of the feature matrices of each pair of tasks, per method (1: the same representation up to rotation and scale).',
    spec: {
      data: { values },
      facet: { column: { field: 'method', type: 'nominal', title: null } },
      resolve: { scale: { x: 'independent', y: 'independent' } },
      spec: {
        width: 150,
        height: 150,
        layer: [
          { mark: 'rect', encoding: { x: { field: 'a', type: 'nominal', title: null }, y: { field: 'b', type: 'nominal', title: null }, color: { field: 'cka', type: 'quantitative', scale: { domain: [0, 1], scheme: 'blues' }, title: 'CKA' } } },
          { mark: { type: 'text', fontSize: 10 }, encoding: { x: { field: 'a', type: 'nominal' }, y: { field: 'b', type: 'nominal' }, text: { field: 'cka', type: 'quantitative', format: '.2f' }, color: { condition: { test: 'datum.cka > 0.6', value: 'white' }, value: '#222' } } },
        ],
      },
    },
  };
}

/** Every chart the study has data for, in the report's order. */
export function chartsOf(study: Study): Record<string, Chart | null> {
  return {
    'task-accuracy': taskAccuracyChart(study),
    'accuracy-params': accuracyParamsChart(study),
    paired: pairedChart(study),
    transfer: transferChart(study),
    'rank-curve': rankChart(study),
    'training-curves': trainingCurvesChart(study),
    mig: migChart(study),
    cka: ckaChart(study),
  };
}
