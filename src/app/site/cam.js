// Class activation maps on screen: the CAM output (h x w at the last conv's resolution, for the
// predicted class) is rectified, scaled to [0, 1] by its maximum, coloured, and drawn stretched
// over the image with the canvas's bilinear smoothing (the model saw the image resized to S x S,
// so the map covers the whole image). Plain ES module with no imports.

/** ReLU then divide by the maximum (all zero stays zero). Returns a new Float32Array with `max`, the largest raw value (<= 0: nothing to show). */
export function normaliseCam(cam) {
  const out = new Float32Array(cam.length);
  let mx = 0;
  for (let i = 0; i < cam.length; i++) {
    out[i] = cam[i] > 0 ? cam[i] : 0;
    if (out[i] > mx) mx = out[i];
  }
  if (mx > 0) for (let i = 0; i < out.length; i++) out[i] /= mx;
  out.max = mx;
  return out;
}

/** A "jet"-like colour for t in [0, 1]: blue, cyan, yellow, red. Returns [r, g, b] bytes. */
export function heatColour(t) {
  const c = (x) => Math.round(255 * Math.min(1, Math.max(0, x)));
  return [c(1.5 - Math.abs(4 * t - 3)), c(1.5 - Math.abs(4 * t - 2)), c(1.5 - Math.abs(4 * t - 1))];
}

/** RGBA ImageData of a normalised h x w map; weak activations are more transparent. */
export function camImageData(norm, h, w) {
  const img = new ImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const [r, g, b] = heatColour(norm[i]);
    img.data.set([r, g, b, Math.round(255 * (0.25 + 0.75 * norm[i]))], 4 * i);
  }
  return img;
}

/** RGBA ImageData of a decoded CHW RGB image. */
export function rgbImageData(rgb, height, width) {
  const img = new ImageData(width, height);
  const hw = height * width;
  for (let p = 0; p < hw; p++) {
    img.data[4 * p] = rgb[p];
    img.data[4 * p + 1] = rgb[hw + p];
    img.data[4 * p + 2] = rgb[2 * hw + p];
    img.data[4 * p + 3] = 255;
  }
  return img;
}

/** The image as a canvas for display, at most `maxSide` pixels on its longer side. */
export function displayCanvas(image, maxSide = 512) {
  const full = new OffscreenCanvas(image.width, image.height);
  full.getContext('2d').putImageData(rgbImageData(image.data, image.height, image.width), 0, 0);
  const scale = Math.min(1, maxSide / Math.max(image.width, image.height));
  if (scale === 1) return full;
  const small = new OffscreenCanvas(Math.max(1, Math.round(image.width * scale)), Math.max(1, Math.round(image.height * scale)));
  const g = small.getContext('2d');
  g.imageSmoothingQuality = 'high';
  g.drawImage(full, 0, 0, small.width, small.height);
  return small;
}

/**
 * Draws `source` (a canvas from displayCanvas) fitted into `canvas` (aspect kept) and, when `cam`
 * is given ({ norm, h, w }), the map over it at `opacity` (0..1).
 */
export function drawOverlay(canvas, source, cam, opacity) {
  const g = canvas.getContext('2d');
  const scale = Math.min(canvas.width / source.width, canvas.height / source.height);
  const dw = Math.max(1, Math.round(source.width * scale));
  const dh = Math.max(1, Math.round(source.height * scale));
  const dx = Math.floor((canvas.width - dw) / 2);
  const dy = Math.floor((canvas.height - dh) / 2);
  g.clearRect(0, 0, canvas.width, canvas.height);
  // Enlarged pixels stay sharp (a radiologist wants to see them); reductions are smoothed.
  g.imageSmoothingEnabled = scale < 1;
  g.drawImage(source, dx, dy, dw, dh);
  if (!cam || !(cam.norm.max > 0) || opacity <= 0) return;
  const map = new OffscreenCanvas(cam.w, cam.h);
  map.getContext('2d').putImageData(camImageData(cam.norm, cam.h, cam.w), 0, 0);
  g.imageSmoothingEnabled = true;
  g.imageSmoothingQuality = 'high';
  g.globalAlpha = opacity;
  g.drawImage(map, dx, dy, dw, dh);
  g.globalAlpha = 1;
}
