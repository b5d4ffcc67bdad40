// vega-lite spec -> vega -> SVG, in Node with no browser and no canvas (text widths estimated).
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { UserError } from '../tensor/errors.js';
import { CHART_CONFIG } from './charts.js';

export async function renderSvg(spec: TopLevelSpec, id: string): Promise<string> {
  let view: vega.View | null = null;
  try {
    const compiled = compile({ ...spec, config: { ...CHART_CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
    // No loader: the data is inline, and nothing is fetched.
    view = new vega.View(vega.parse(compiled), { renderer: 'none', loader: noLoader() as unknown as vega.Loader });
    const svg = await view.toSVG();
    return svg.replace('<svg ', `<svg role="img" aria-label="${id}" `);
  } catch (e) {
    throw new UserError(`chart ${id} could not be rendered: ${(e as Error).message.split('\n')[0]}`);
  } finally {
    view?.finalize();
  }
}

function noLoader() {
  const refuse = () => Promise.reject(new Error('the report renders inline data only'));
  return { load: refuse, sanitize: refuse, http: refuse, file: refuse };
}
