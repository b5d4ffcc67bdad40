// The report in real headless Chromium (Debian's /usr/bin/chromium via playwright-core): every
// chart rendered (an SVG with marks), every image decoded, no console errors, no request but the
// page itself; screenshots saved under test-output/. Skips where Chromium is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeReport, type ReportResult } from '../src/report/index.js';
import { createProgress } from '../src/experiments/progress.js';
import { REPO } from './helpers/pipeline.js';

const CHROMIUM = '/usr/bin/chromium';
const OUT = path.join(REPO, 'test-output');
const FIX = path.join(REPO, 'test', 'fixtures', 'report');
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium; bootstrap installs it when root)`;

interface ChartInfo {
  id: string;
  marks: number;
  width: number;
  height: number;
}

// Run in the page (this project compiles without the DOM library): each figure's chart id, the
// elements inside its vega mark groups and the SVG's rendered size.
const CHARTS_IN_PAGE = `[...document.querySelectorAll('figure.chart')].map((f) => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
  const marks = svg ? [...svg.querySelectorAll('g.role-mark')].reduce((a, g) => a + g.querySelectorAll('path, rect, line, text, circle').length, 0) : 0;
  return { id: f.dataset.chart || '', marks, width: box.width, height: box.height };
})`;

test('report pages render in Chromium: charts with marks, images, no console errors, no network', { skip, timeout: 90_000 }, async () => {
  const { chromium } = await import('playwright-core');
  mkdirSync(OUT, { recursive: true });
  const quiet = createProgress({ quiet: true });
  const reports: [string, ReportResult][] = [
    ['run', await writeReport({ run: path.join(FIX, 'run'), out: path.join(OUT, 'report-run.html'), progress: quiet })],
    ['compare', await writeReport({ compare: path.join(FIX, 'compare'), out: path.join(OUT, 'report-compare.html'), progress: quiet })],
  ];
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  try {
    for (const [name, r] of reports) {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('request', (q) => requests.push(q.url()));
      const url = pathToFileURL(r.file).href;
      await page.goto(url, { waitUntil: 'load' });
      const charts = await page.evaluate<ChartInfo[]>(CHARTS_IN_PAGE);
      assert.deepEqual(charts.map((c) => c.id), r.charts, `${name}: one figure per chart`);
      for (const c of charts) {
        assert.ok(c.marks > 0, `${name}: chart ${c.id} has no marks`);
        assert.ok(c.width > 100 && c.height > 50, `${name}: chart ${c.id} is ${c.width}x${c.height}`);
      }
      const images = await page.evaluate<{ ok: boolean; alt: string }[]>('[...document.images].map((i) => ({ ok: i.complete && i.naturalWidth > 0, alt: i.alt }))');
      assert.ok(images.every((i) => i.ok), `${name}: images that did not decode: ${images.filter((i) => !i.ok).map((i) => i.alt).join(', ')}`);
      const sections = await page.evaluate<{ id: string; data: boolean; missing: boolean }[]>(
        "[...document.querySelectorAll('section')].map((s) => ({ id: s.id, data: s.classList.contains('has-data'), missing: !!s.querySelector('p.missing') }))",
      );
      for (const s of sections) assert.equal(s.data, !s.missing, `${name}: section ${s.id} shows data or says what produces it`);
      assert.deepEqual(sections.map((s) => s.data), Object.values(r.sections));
      await page.screenshot({ path: path.join(OUT, `report-${name}.png`), fullPage: true });
      assert.deepEqual(errors, [], `${name}: console errors`);
      assert.deepEqual(requests, [url], `${name}: the page requested something else`);
      await page.close();
    }
    // The comparison fixture has every section's data; a run has Tables 1 and 4 and its curves.
    assert.equal(reports[1]![1].charts.length, 8);
    assert.ok(reports[0]![1].sections.table1 && reports[0]![1].sections.training && !reports[0]![1].sections.paired);
  } finally {
    await browser.close();
  }
});
