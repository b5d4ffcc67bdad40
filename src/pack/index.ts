// lorkd packs (docs/PACK.md): data sets packed once into shards with an index and a manifest, then
// streamed. The reader (openPack) and the codecs load no libtorch, so worker threads use them.
export * from './format.js';
export { Pack, openPack, isPack, checkManifest } from './reader.js';
export { decodeStored, decodeRaw, decodeJpeg, encodeStored, hwcToImage, imageToHwc } from './codec.js';
export { PackWriter, JOURNAL, type StoredImage, type WriterTask } from './writer.js';
export { packSources, packSummary, DEFAULT_SHARD_BYTES, type PackOptions, type PackResult } from './pack.js';
export { listSources, type SourceTask, type Item } from './sources.js';
