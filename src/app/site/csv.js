// The results table as CSV (RFC 4180: fields with a comma, quote or line break are quoted, quotes
// doubled; CRLF line ends). A leading =, +, - or @ is prefixed with ' so spreadsheets do not run
// file names as formulas. Plain ES module with no imports.

/** One CSV field. */
export function csvField(v) {
  let s = v === undefined || v === null ? '' : String(v);
  if (typeof v === 'string' && /^[=+\-@]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Rows (arrays of values) with a header row -> CSV text. */
export function toCsv(header, rows) {
  return [header, ...rows].map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}
