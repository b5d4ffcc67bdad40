// Prometheus text exposition (format 0.0.4) for the service: counters, gauges and histograms
// with labels, kept in memory. Small on purpose: the service needs a handful of series.

type Labels = Record<string, string>;

const escape = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labelText = (l: Labels): string => {
  const e = Object.entries(l);
  return e.length ? `{${e.map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}` : '';
};
const keyOf = (l: Labels): string => JSON.stringify(Object.entries(l).sort());

abstract class Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
  ) {}
  abstract lines(): string[];
  text(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`, ...this.lines()].join('\n');
  }
}

/** A counter or gauge: one number per label set. */
export class Counter extends Metric {
  readonly #values = new Map<string, { labels: Labels; value: number }>();
  constructor(name: string, help: string, type: 'counter' | 'gauge' = 'counter') {
    super(name, help, type);
  }
  inc(labels: Labels = {}, by = 1): void {
    const k = keyOf(labels);
    const e = this.#values.get(k);
    if (e) e.value += by;
    else this.#values.set(k, { labels, value: by });
  }
  set(labels: Labels, value: number): void {
    this.#values.set(keyOf(labels), { labels, value });
  }
  get(labels: Labels = {}): number {
    return this.#values.get(keyOf(labels))?.value ?? 0;
  }
  lines(): string[] {
    return [...this.#values.values()].map((e) => `${this.name}${labelText(e.labels)} ${e.value}`);
  }
}

/** A histogram with fixed upper bounds (cumulative buckets, sum and count per label set). */
export class Histogram extends Metric {
  readonly #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(
    name: string,
    help: string,
    readonly bounds: readonly number[],
  ) {
    super(name, help, 'histogram');
  }
  observe(value: number, labels: Labels = {}): void {
    const k = keyOf(labels);
    let s = this.#series.get(k);
    if (!s) this.#series.set(k, (s = { labels, counts: new Array<number>(this.bounds.length).fill(0), sum: 0, count: 0 }));
    this.bounds.forEach((b, i) => {
      if (value <= b) s.counts[i]!++;
    });
    s.sum += value;
    s.count++;
  }
  /** Observations with this label set so far. */
  count(labels: Labels = {}): number {
    return this.#series.get(keyOf(labels))?.count ?? 0;
  }
  lines(): string[] {
    const out: string[] = [];
    for (const s of this.#series.values()) {
      this.bounds.forEach((b, i) => out.push(`${this.name}_bucket${labelText({ ...s.labels, le: String(b) })} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.count}`);
      out.push(`${this.name}_sum${labelText(s.labels)} ${s.sum}`);
      out.push(`${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
    return out;
  }
}

/** Powers of two from 1 up to (and including) the first >= max. */
export function powersOfTwo(max: number): number[] {
  const out = [1];
  while (out[out.length - 1]! < max) out.push(out[out.length - 1]! * 2);
  return out;
}

/** The service's metrics. */
export class ServeMetrics {
  readonly requests = new Counter('lorkd_requests_total', 'Prediction requests by task and HTTP status.');
  readonly latency = new Histogram('lorkd_request_duration_seconds', 'Time from arrival to answer of prediction requests.', [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
  ]);
  readonly batchSize: Histogram;
  readonly forwards = new Counter('lorkd_forwards_total', 'Forward passes by path (eks: one pass over mixed tasks; plain: one model).');
  readonly forwardSeconds = new Counter('lorkd_forward_seconds_total', 'Time spent in forward passes, by path.');
  readonly queueDepth = new Counter('lorkd_queue_depth', 'Requests waiting for a forward pass.', 'gauge');
  readonly inFlight = new Counter('lorkd_in_flight', 'Prediction requests being handled.', 'gauge');
  readonly pixelsInFlight = new Counter('lorkd_pixels_in_flight', 'Pixels (as image headers claim them) being decoded.', 'gauge');
  readonly modelBytes = new Counter('lorkd_model_bytes', 'Bytes of the parameters and buffers of the models serving the departments (a shared model counted once).', 'gauge');

  constructor(maxBatch: number) {
    this.batchSize = new Histogram('lorkd_batch_size', 'Requests per micro-batch (all departments together).', powersOfTwo(maxBatch));
    this.queueDepth.set({}, 0);
    this.inFlight.set({}, 0);
    this.pixelsInFlight.set({}, 0);
  }

  text(): string {
    return [this.requests, this.latency, this.batchSize, this.forwards, this.forwardSeconds, this.queueDepth, this.inFlight, this.pixelsInFlight, this.modelBytes].map((m) => m.text()).join('\n') + '\n';
  }
}
