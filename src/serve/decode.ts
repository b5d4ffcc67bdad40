// Request bodies -> decoded images. A prediction request carries the image as the raw body
// (Content-Type image/png, image/jpeg, application/dicom or application/octet-stream; the format
// is read from the bytes' signature) or as the first file of a multipart/form-data body.
import { type Image, decodeImage } from '../data/images.js';
import { UserError } from '../tensor/errors.js';
import { HttpError } from './http-error.js';

/** Raw-body content types accepted by POST /v1/predict. */
export const RAW_TYPES: readonly string[] = ['image/png', 'image/jpeg', 'image/jpg', 'application/dicom', 'application/octet-stream'];

/** 'raw' or 'multipart' for an accepted Content-Type (parameters ignored); 415 otherwise. */
export function bodyKind(contentType: string | undefined): 'raw' | 'multipart' {
  const type = (contentType ?? 'application/octet-stream').split(';')[0]!.trim().toLowerCase();
  if (type === 'multipart/form-data') return 'multipart';
  if (RAW_TYPES.includes(type)) return 'raw';
  throw new HttpError(415, `unsupported content type "${type}": send the image as ${RAW_TYPES.join(', ')} or multipart/form-data`);
}

/** DICOM Part 10 files have "DICM" at byte 128. */
const isDicom = (b: Uint8Array): boolean => b.length >= 132 && b[128] === 0x44 && b[129] === 0x49 && b[130] === 0x43 && b[131] === 0x4d;

/** Decodes an uploaded image; undecodable bytes are a 400, DICOM a 415 until lorkd reads DICOM. */
export function decodeUpload(bytes: Uint8Array, name = 'image'): Image {
  if (bytes.length === 0) throw new HttpError(400, 'empty body: send the image bytes');
  if (isDicom(bytes)) throw new HttpError(415, `${name}: DICOM is not supported by this build yet; send PNG or JPEG`);
  try {
    return decodeImage(bytes, name);
  } catch (e) {
    if (e instanceof UserError) throw new HttpError(400, e.message);
    throw e;
  }
}
