// Request bodies: a prediction request carries the image as the raw body (Content-Type image/png,
// image/jpeg, application/dicom or application/octet-stream; the format is read from the bytes'
// signature) or as the first file of a multipart/form-data body. Decoding runs in the decode
// workers (decode-pool.ts).
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
