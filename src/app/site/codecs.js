// The compressed DICOM transfer syntaxes in the page, by lorkd's own decoders: lorkd's
// dependency-free decoder module (src/data/dicom-decoders.ts, compiled and copied into the site)
// over the same npm codecs `lorkd predict` uses (cornerstone's WASM builds of libjpeg-turbo,
// CharLS, OpenJPEG and OpenJPH; jpeg-lossless-decoder-js), served from vendor/. A codec is
// fetched and compiled the first time a file needs it. Plain ES module with no imports: the
// decoder module and the way to fetch files are passed in, so Node tests run this same code.

/**
 * `decoders`: lorkd's dicom-decoders module. `env`: { script(sitePath, globalName) -> Promise of
 * the emscripten factory a classic script defines, bytes(sitePath) -> Promise<Uint8Array>,
 * module(sitePath) -> Promise of an ES module }. Returns { codecs, load(transferSyntax) }: the
 * decoders by transfer syntax UID, and the promise that readies the codec a syntax needs.
 */
export function pageCodecs(decoders, env) {
  const wasm = new Map();
  let lossless = null;
  const pending = new Map();
  const codecs = decoders.makeDicomCodecs({
    wasm(name) {
      const m = wasm.get(name);
      if (!m) throw new Error(`the ${decoders.WASM_CODECS[name].what} decoder is not loaded`);
      return m;
    },
    lossless() {
      if (!lossless) throw new Error('the JPEG Lossless decoder is not loaded');
      return lossless;
    },
  });
  async function ready(name) {
    if (name === 'jpeg-lossless') {
      lossless = (await env.module('vendor/lossless.js')).Decoder;
      return;
    }
    const c = decoders.WASM_CODECS[name];
    const [factory, bytes] = await Promise.all([env.script(`vendor/${c.glueFile}`, c.global), env.bytes(`vendor/${c.wasmFile}`)]);
    wasm.set(name, await decoders.instantiateAsync(factory, bytes));
  }
  return {
    codecs,
    /** Readies the codec `ts` needs (once; a failed load is tried again next time). Syntaxes without one resolve at once. */
    load(ts) {
      const name = decoders.CODEC_OF[ts];
      if (!name) return Promise.resolve();
      let p = pending.get(name);
      if (!p) {
        p = ready(name).catch((e) => {
          pending.delete(name);
          throw new Error(`the ${name === 'jpeg-lossless' ? 'JPEG Lossless' : decoders.WASM_CODECS[name].what} decoder did not load (${String((e && e.message) || e).split('\n')[0]})`);
        });
        pending.set(name, p);
      }
      return p;
    },
  };
}

/** The page's env: classic scripts by a <script> tag (the emscripten glue defines a global), bytes by fetch, ES modules by import(). */
export const browserEnv = {
  script(src, global) {
    if (globalThis[global]) return Promise.resolve(globalThis[global]);
    return new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = src;
      s.onload = () => (typeof globalThis[global] === 'function' ? resolve(globalThis[global]) : reject(new Error(`${src} defined no ${global}`)));
      s.onerror = () => reject(new Error(`${src} did not load`));
      document.head.append(s);
    });
  },
  async bytes(src) {
    const r = await fetch(src);
    if (!r.ok) throw new Error(`${src}: HTTP ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  },
  module: (src) => import(`./${src}`),
};
