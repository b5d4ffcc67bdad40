// Admission by decode work: every request holds the pixels its image's header claims (PNG IHDR,
// JPEG frame header, DICOM rows x columns) from before its decode starts until the decode ends.
// Past the budget a request is refused with 503 and Retry-After, so a few expensive legal images
// cannot pile up decode work (and memory) that the request queue alone does not count. One image
// is always admitted when nothing else is being decoded, so any image within the pixel limit can
// be served.
import { HttpError } from './http-error.js';

export class PixelBudget {
  #inFlight = 0;
  /** Running mean of decode throughput, pixels per second (0: no decode measured yet). */
  #rate = 0;

  constructor(
    /** Most pixels being decoded at once. */
    readonly max: number,
    readonly onChange: (pixels: number) => void = () => {},
  ) {}

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Seconds until the pixels in flight are likely decoded, at least 1. */
  retryAfterSeconds(): number {
    return this.#rate > 0 ? Math.max(1, Math.ceil(this.#inFlight / this.#rate)) : 1;
  }

  /** Takes `pixels` from the budget, or throws 503; returns the release (which records the time taken). */
  admit(pixels: number): () => void {
    if (this.#inFlight > 0 && this.#inFlight + pixels > this.max) {
      throw new HttpError(503, `overloaded: images of ${this.#inFlight} pixels are being decoded (limit ${this.max} pixels in flight)`, {
        'Retry-After': String(this.retryAfterSeconds()),
      });
    }
    this.#inFlight += pixels;
    this.onChange(this.#inFlight);
    const t0 = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inFlight -= pixels;
      this.onChange(this.#inFlight);
      const s = (performance.now() - t0) / 1000;
      if (pixels > 0 && s > 0) this.#rate = this.#rate === 0 ? pixels / s : 0.8 * this.#rate + 0.2 * (pixels / s);
    };
  }
}
