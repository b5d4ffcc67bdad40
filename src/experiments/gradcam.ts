// Figure 3: class activation maps of several networks (e.g. the foundation and an expert) over
// the same images, side by side, one PNG per image: the image, then one overlay per network.
import { writeFileAtomic } from '../io/atomic.js';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { noGrad, softmax, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { imagesToTensor } from '../data/index.js';
import { IMAGE_EXTENSIONS, readImage, resizeImage } from '../data/images.js';
import { cam, gradCam, hasCam, normaliseMaps, overlay, panelsPng } from '../eval/cam.js';
import { ImageClassifier } from '../models/classifier.js';
import { readNetworkFile, type NetworkFile } from './network-file.js';
import type { Progress } from './progress.js';

export interface GradcamOptions {
  models: string[];
  /** Image files or folders (searched recursively, sorted). */
  inputs: string[];
  out: string;
  /** At most this many images (default 16). */
  limit?: number;
  /** Side of each panel in the PNG (default: max(128, the largest input size)). */
  size?: number;
  /** Device of the networks (default cpu). */
  device?: string;
  progress: Progress;
}

export interface GradcamPanel {
  model: string;
  /** The class the map is for: the network's prediction. */
  class: string;
  probability: number;
  /** Largest difference between the normalised Grad-CAM and CAM maps (0 up to rounding for GAP + linear networks; null for a ViT, which has no CAM). */
  cam_max_diff: number | null;
}

export interface GradcamReport {
  models: string[];
  size: number;
  images: { input: string; png: string; panels: GradcamPanel[] }[];
}

/** Image files of the inputs: files as given, folders searched recursively (sorted). */
export function imageFiles(inputs: readonly string[], limit: number): string[] {
  const out: string[] = [];
  const visit = (p: string): void => {
    if (out.length >= limit) return;
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new UserError(`${p}: input not found`);
    }
    if (st.isDirectory()) {
      for (const n of readdirSync(p).sort()) if (!n.startsWith('.')) visit(path.join(p, n));
    } else if (IMAGE_EXTENSIONS.includes(path.extname(p).toLowerCase())) out.push(p);
  };
  for (const i of inputs) {
    const before = out.length;
    visit(i);
    if (out.length === before && out.length < limit) throw new UserError(`${i}: no PNG or JPEG image`);
  }
  return out;
}

function panelOf(net: NetworkFile, img: ReturnType<typeof readImage>, size: number): { rgba: Uint8Array; panel: GradcamPanel } {
  const model = net.model;
  if (!(model instanceof ImageClassifier)) throw new UserError(`${net.file}: class activation maps need one backbone; KF's CKN + TSN pair is not supported`);
  return tidy(() => {
    const x = imagesToTensor(img.data, 1, img.height, img.width, { size: net.inputSize, mean: net.mean, std: net.std, device: model.device });
    const probs = noGrad(() => softmax(model.forward(x), 1).toArray() as Float32Array);
    let c = 0;
    for (let k = 1; k < probs.length; k++) if (probs[k]! > probs[c]!) c = k;
    const g = normaliseMaps(gradCam(model, x, [c]), size, size)[0]!;
    let diff: number | null = null;
    if (hasCam(model)) {
      const m = normaliseMaps(cam(model, x, [c]), size, size)[0]!;
      diff = 0;
      for (let p = 0; p < g.length; p++) diff = Math.max(diff, Math.abs(g[p]! - m[p]!));
    }
    const shown = resizeImage(img, size, size);
    return { rgba: overlay(shown.data, g, size, size), panel: { model: net.file, class: net.classNames[c]!, probability: probs[c]!, cam_max_diff: diff } };
  });
}

/** Writes `<out>/<image>.png` per image (the image, then each network's Grad-CAM overlay) and `<out>/gradcam.json`. */
export function gradcamFigure(o: GradcamOptions): GradcamReport {
  if (o.models.length === 0) throw new UserError('gradcam needs at least one --model');
  const files = imageFiles(o.inputs, o.limit ?? 16);
  const nets: NetworkFile[] = [];
  try {
    for (const m of o.models) nets.push(readNetworkFile(m));
    for (const n of nets) n.model.to(o.device ?? 'cpu');
    const size = o.size ?? Math.max(128, ...nets.map((n) => n.inputSize));
    try {
      mkdirSync(o.out, { recursive: true });
    } catch (e) {
      throw new UserError(`cannot create ${o.out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const report: GradcamReport = { models: o.models.slice(), size, images: [] };
    const used = new Set<string>();
    o.progress.start('[gradcam] images', files.length);
    files.forEach((f, i) => {
      const img = readImage(f);
      const parts = nets.map((n) => panelOf(n, img, size));
      let name = path.basename(f).replace(/\.[^.]+$/, '');
      while (used.has(name)) name += '_';
      used.add(name);
      const png = path.join(o.out, `${name}.png`);
      writeFileAtomic(png, panelsPng([overlay(resizeImage(img, size, size).data, null, size, size), ...parts.map((p) => p.rgba)], size, size));
      report.images.push({ input: f, png, panels: parts.map((p) => p.panel) });
      o.progress.update(i + 1, {});
    });
    o.progress.stop(`[gradcam] ${files.length} images x ${nets.length} networks -> ${o.out}`);
    writeFileAtomic(path.join(o.out, 'gradcam.json'), JSON.stringify(report, null, 2) + '\n');
    return report;
  } finally {
    for (const n of nets) n.model.dispose();
  }
}
