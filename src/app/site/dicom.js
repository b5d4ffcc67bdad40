// DICOM in the page by lorkd's own reading rules: lorkd's dependency-free DICOM module
// (src/data/dicom-pixels.ts, compiled and copied into the site) reads the data set with
// dicom-parser's browser build (transfer syntaxes, pixel description, first frame, RLE), then
// applies the modality LUT, the window (else min-max) and the MONOCHROME1 inversion. Deflated
// files are inflated with fflate; compressed frames (JPEG, JPEG-LS, JPEG 2000, HTJ2K) are decoded
// by lorkd's decoders over the same WASM codecs as `lorkd predict` (codecs.js). Plain ES module
// with no imports: the parser, lorkd's module, the inflater and the codecs are passed in.

/** Largest image (pixels) the page decodes: lorkd's default LORKD_MAX_IMAGE_PIXELS. */
export const MAX_PIXELS = 8192 * 8192;

/**
 * DICOM bytes -> Promise of { width, height, data (uint8 CHW, 3 channels), grey, kind,
 * transferSyntax }. `deps`: { parser: dicom-parser, pixels: lorkd's dicom-pixels module,
 * inflateRaw: raw-deflate bytes -> bytes, codecs (optional): codecs.js's pageCodecs; without it
 * compressed syntaxes are refused by name }. Errors are one line, prefixed with `name`, worded as
 * lorkd's.
 */
export async function decodeDicom(bytes, name, deps) {
  const { parser, pixels, inflateRaw, codecs } = deps;
  let img;
  let ts;
  try {
    const frames = pixels.readDicomFramesWith(parser, bytes, {
      inflateRaw,
      codecs: codecs?.codecs,
      checkSize: (rows, columns) => {
        if (rows * columns > MAX_PIXELS) throw new pixels.DicomPixelError(`a ${columns}x${rows} DICOM image is larger than the app decodes (${MAX_PIXELS} pixels)`);
      },
    });
    ts = frames.transferSyntax;
    if (codecs) await codecs.load(ts).catch((e) => Promise.reject(new pixels.DicomPixelError(e.message)));
    const frame = frames.frame(0);
    img = pixels.displayImage(frame.bytes, frame.info);
  } catch (e) {
    const msg = e instanceof pixels.DicomPixelError ? e.message : `corrupt DICOM pixel data (${String((e && e.message) || e).split('\n')[0]})`;
    throw new Error(`${name}: ${msg}`);
  }
  return { width: img.columns, height: img.rows, data: pixels.rgbPlanes(img), grey: img.channels === 1, kind: 'DICOM', transferSyntax: pixels.SUPPORTED_TRANSFER_SYNTAXES[ts] ?? pixels.UNSUPPORTED_TRANSFER_SYNTAXES[ts] ?? ts };
}
