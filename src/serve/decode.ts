// Request bodies -> decoded images. A prediction request carries the image as the raw body
// (Content-Type image/png, image/jpeg, application/dicom or application/octet-stream; the format
// is read from the bytes' signature) or as the first file of a multipart/form-data body.
import { type Image, decodeImage } from '../data/images.js';
import { decodeDicom, dicomToImage, isDicom } from '../data/dicom.js';
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

/** Decodes an uploaded PNG, JPEG or DICOM image (by its signature); undecodable bytes are a 400. */
export function decodeUpload(bytes: Uint8Array, name = 'image'): Image {
  if (bytes.length === 0) throw new HttpError(400, 'empty body: send the image bytes');
  try {
    return isDicom(bytes) ? dicomToImage(decodeDicom(bytes, name)) : decodeImage(bytes, name);
  } catch (e) {
    if (e instanceof UserError) throw new HttpError(400, e.message);
    throw e;
  }
}
