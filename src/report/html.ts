// HTML building blocks of the report: escaping, tables, sections, the page with its inline CSS.
// Nothing refers outside the file: no scripts, fonts, style sheets or images by URL.

export const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A cell: text (escaped), or { html } already built, with an optional class. */
export type Cell = string | { html: string; cls?: string };

const cell = (tag: 'td' | 'th', c: Cell) => (typeof c === 'string' ? `<${tag}>${esc(c)}</${tag}>` : `<${tag}${c.cls ? ` class="${c.cls}"` : ''}>${c.html}</${tag}>`);

export function htmlTable(id: string, header: Cell[], rows: Cell[][], caption?: string): string {
  return [
    `<table id="${id}">`,
    caption ? `<caption>${caption}</caption>` : '',
    `<thead><tr>${header.map((h) => cell('th', h)).join('')}</tr></thead>`,
    `<tbody>${rows.map((r) => `<tr>${r.map((c, i) => cell(i === 0 ? 'th' : 'td', c)).join('')}</tr>`).join('')}</tbody>`,
    '</table>',
  ].join('');
}

export interface Section {
  id: string;
  title: string;
  /** Inner HTML, or null when there is no data: then `missing` says which command produces it. */
  body: string | null;
  missing: string;
  /** Set when the source cannot have this data (one run has one seed and one rank): this one line replaces "No data yet". */
  needs?: string;
}

export function sectionHtml(s: Section): string {
  const body = s.body ?? (s.needs ? `<p class="missing needs">${s.needs}</p>` : `<p class="missing">No data for this section yet. ${s.missing}</p>`);
  return `<section id="${s.id}" class="${s.body ? 'has-data' : 'no-data'}"><h2>${esc(s.title)}</h2>${body}</section>`;
}

export function figureHtml(id: string, title: string, svg: string, caption: string): string {
  return `<figure class="chart" data-chart="${id}"><div class="svg">${svg}</div><figcaption><b>${esc(title)}.</b> ${esc(caption)}</figcaption></figure>`;
}

const CSS = `
:root { --fg: #1d1f21; --muted: #5f6368; --line: #dfe1e5; --accent: #2b5d9b; --bg-alt: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; font: 15px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", "Helvetica Neue", "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 32px 64px; }
header h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
header .sub { color: var(--muted); margin: 0 0 16px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0 0 12px; font-size: 13px; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; word-break: break-all; }
nav.toc { font-size: 13px; margin: 8px 0 8px; padding: 8px 0; border-top: 1px solid var(--line); border-bottom: 1px solid var(--line); }
nav.toc a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
nav.toc a.empty { color: var(--muted); }
section { margin-top: 34px; }
h2 { font-size: 19px; margin: 0 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--fg); }
p.missing { color: var(--muted); background: var(--bg-alt); border-left: 3px solid var(--line); padding: 8px 12px; margin: 0; }
p.note { color: var(--muted); font-size: 13px; margin: 6px 0 0; }
code { font: 12.5px ui-monospace, "DejaVu Sans Mono", Menlo, monospace; background: var(--bg-alt); padding: 1px 4px; border-radius: 3px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; margin: 6px 0 4px; font-variant-numeric: tabular-nums; }
caption { caption-side: bottom; text-align: left; color: var(--muted); font-size: 12.5px; padding-top: 6px; }
th, td { padding: 5px 12px; text-align: right; border-bottom: 1px solid var(--line); white-space: nowrap; }
thead th { border-bottom: 1.5px solid var(--fg); font-weight: 600; vertical-align: bottom; }
tbody th { text-align: left; font-weight: 500; }
tbody tr:nth-child(even) { background: var(--bg-alt); }
td .ci { display: block; color: var(--muted); font-size: 11px; line-height: 1.2; }
td.best { font-weight: 700; }
td.best .ci { font-weight: 400; }
thead th:first-child { text-align: left; }
figure.chart { margin: 12px 0 20px; }
figure.chart .svg { overflow-x: auto; }
figure.chart svg { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; max-width: 820px; margin-top: 4px; }
figcaption b { color: var(--fg); font-weight: 600; }
.gradcam { display: flex; flex-direction: column; gap: 14px; margin: 8px 0; }
.gradcam .strip { width: calc(var(--panels) * 160px); max-width: 100%; }
.gradcam .strip img { width: 100%; display: block; image-rendering: pixelated; border-radius: 2px; }
.gradcam .strip-head, .gradcam .strip-caps { display: grid; grid-template-columns: repeat(var(--panels), 1fr); width: calc(var(--panels) * 160px); max-width: 100%; text-align: center; font-size: 12.5px; }
.gradcam .strip-head { font-weight: 600; }
.gradcam .strip-caps { color: var(--muted); }
.gradcam .strip-label { font-size: 12px; color: var(--muted); margin-bottom: 2px; }
footer { margin-top: 48px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
@media print { nav.toc { display: none; } section { break-inside: avoid; } }
`;

export function pageHtml(o: { title: string; sub: string; notes: string; facts: [string, string][]; sections: Section[]; footer: string }): string {
  const toc = o.sections.map((s) => `<a href="#${s.id}" class="${s.body ? '' : 'empty'}">${esc(s.title)}</a>`).join(' ');
  const facts = o.facts.length ? `<dl class="facts">${o.facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${esc(o.title)}</title>
<style>${CSS}</style></head>
<body><main>
<header><h1>${esc(o.title)}</h1><p class="sub">${o.sub}</p>${o.notes}${facts}<nav class="toc">${toc}</nav></header>
${o.sections.map(sectionHtml).join('\n')}
<footer>${o.footer}</footer>
</main></body></html>
`;
}
