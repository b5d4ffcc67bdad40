// Where a task's training data came from and under which license, read from the bundled data's
// provenance files (data/medmnist/PROVENANCE.md, data/mednist/PROVENANCE.md) for the model card
// and the bundle's LICENSE. A task that is not bundled data has no known provenance: the card says
// so, and the user must state it before publishing.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../data/medmnist.js';

export interface DatasetProvenance {
  task: string;
  /** Hub-style data set id ("medmnist/breastmnist"), or the task name. */
  id: string;
  /** SPDX-like license id ("cc-by-4.0"), or "unknown". */
  license: string;
  /** The license as the provenance file words it. */
  licenseText: string;
  /** MONAI modality code of the images (US, DX, OP, ...), or "n/a". */
  modality: string;
  /** The provenance file's lines about the source and its citation. */
  lines: string[];
  /** The provenance file (relative to the package root), or null when unknown. */
  file: string | null;
}

/** Modalities of the bundled data (MONAI bundle `modality`: DICOM codes where one fits). */
const MODALITY: Record<string, string> = { breastmnist: 'US', pneumoniamnist: 'DX', retinamnist: 'OP', mednist: 'n/a (CT, MR, DX: modality recognition)' };

const spdx = (text: string): string => (/CC BY-SA 4\.0/.test(text) ? 'cc-by-sa-4.0' : /CC BY-NC 4\.0/.test(text) ? 'cc-by-nc-4.0' : /CC BY 4\.0/.test(text) ? 'cc-by-4.0' : 'unknown');

/** The `- Key: value` lines (with their continuation lines) of a markdown section. */
function bullets(section: string, keys: string[]): string[] {
  const out: string[] = [];
  let cur: string | null = null;
  for (const line of section.split('\n')) {
    if (/^- /.test(line)) {
      if (cur) out.push(cur);
      cur = keys.some((k) => line.startsWith(`- ${k}:`)) ? line.slice(2).trim() : null;
    } else if (cur && /^\s+\S/.test(line)) cur += ` ${line.trim()}`;
    else if (cur) (out.push(cur), (cur = null));
  }
  if (cur) out.push(cur);
  return out;
}

export function datasetProvenance(task: string): DatasetProvenance {
  const unknown: DatasetProvenance = { task, id: task, license: 'unknown', licenseText: 'unknown: not bundled data; state the data set\'s license before publishing', modality: 'n/a', lines: [], file: null };
  const root = packageRoot();
  const medmnist = path.join(root, 'data', 'medmnist', 'PROVENANCE.md');
  if (existsSync(medmnist)) {
    const text = readFileSync(medmnist, 'utf8');
    const start = text.indexOf(`\n## ${task}.npz:`);
    if (start >= 0) {
      const end = text.indexOf('\n## ', start + 1);
      const section = text.slice(start, end < 0 ? undefined : end);
      const license = bullets(section, ['License'])[0] ?? 'License: see the provenance file';
      const cite = 'Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical image classification", Scientific Data 10, 41 (2023)';
      return { task, id: `medmnist/${task}`, license: spdx(license), licenseText: license.replace(/^License:\s*/, ''), modality: MODALITY[task] ?? 'n/a', lines: [...bullets(section, ['Task', 'Splits', 'Source data']), `Cite: ${cite}`], file: 'data/medmnist/PROVENANCE.md' };
    }
  }
  const mednist = path.join(root, 'data', 'mednist', 'PROVENANCE.md');
  if (task.toLowerCase() === 'mednist' && existsSync(mednist)) {
    const text = readFileSync(mednist, 'utf8');
    const license = bullets(text, ['License'])[0] ?? 'License: see the provenance file';
    return { task, id: 'mednist', license: spdx(license), licenseText: license.replace(/^License:\s*/, ''), modality: MODALITY.mednist!, lines: bullets(text, ['Classes (sorted)', 'Source', 'Selection']), file: 'data/mednist/PROVENANCE.md' };
  }
  return unknown;
}
