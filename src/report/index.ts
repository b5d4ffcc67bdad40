// The HTML report of a run or a comparison (`lorkd report`).
export { writeReport, buildReport, loadStudy, type ReportOptions, type ReportResult } from './report.js';
export { loadRun } from './load-run.js';
export { loadCompare } from './load-compare.js';
export type { Study, MethodRow, TaskScore } from './study.js';
