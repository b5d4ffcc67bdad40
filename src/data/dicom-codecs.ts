// The DICOM codecs in Node: dicom-decoders.ts's decoders over the npm packages, each WASM module
// compiled and instantiated synchronously the first time its syntax is met (tens of ms), so
// decoding stays a plain synchronous call everywhere: predict, serve's decode workers and lorkd
// pack's workers (one instance per thread).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { DicomCodecs } from './dicom-pixels.js';
import { type EmscriptenFactory, instantiateSync, type LosslessDecoderClass, makeDicomCodecs, WASM_CODECS, type WasmCodecName, type WasmModule } from './dicom-decoders.js';

const require = createRequire(import.meta.url);
const modules = new Map<WasmCodecName, WasmModule>();

/** The codecs by transfer syntax UID. */
export const DICOM_CODECS: DicomCodecs = makeDicomCodecs({
  wasm(name) {
    let m = modules.get(name);
    if (!m) {
      const { pkg, glueExport, wasmExport } = WASM_CODECS[name];
      m = instantiateSync(require(`${pkg}/${glueExport}`) as EmscriptenFactory, readFileSync(require.resolve(`${pkg}/${wasmExport}`)));
      modules.set(name, m);
    }
    return m;
  },
  // jpeg-lossless-decoder-js ships no types.
  lossless: () => (require('jpeg-lossless-decoder-js') as { Decoder: LosslessDecoderClass }).Decoder,
});
