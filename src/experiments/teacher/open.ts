// The teacher of a file: an ONNX model (.onnx) or a lorkd foundation (safetensors).
import { existsSync } from 'node:fs';
import { UserError } from '../../tensor/errors.js';
import type { TeacherOutput } from '../methods/spec.js';
import type { Teacher, TeacherFlags } from './teacher.js';
import { openSafetensorsTeacher } from './safetensors-teacher.js';
import { openOnnxTeacher } from './onnx-teacher.js';

export const isOnnxFile = (file: string): boolean => /\.onnx$/i.test(file);

const FLAG_NAMES: Record<keyof TeacherFlags, string> = { input: '--teacher-input', mean: '--teacher-mean', std: '--teacher-std', resize: '--teacher-resize', features: '--teacher-features', logits: '--teacher-logits' };

/** Opens `file` as a teacher; `needs` (what the run distils from) decides which output ambiguities are errors. */
export async function openTeacherFile(file: string, flags: TeacherFlags, totalClasses: number, needs: readonly TeacherOutput[]): Promise<Teacher> {
  if (!existsSync(file)) throw new UserError(`${file}: teacher file not found`);
  if (isOnnxFile(file)) return openOnnxTeacher(file, flags, totalClasses, needs);
  const given = (Object.keys(FLAG_NAMES) as (keyof TeacherFlags)[]).filter((k) => flags[k] !== undefined).map((k) => FLAG_NAMES[k]);
  if (given.length) throw new UserError(`${given.join(', ')} apply to an ONNX teacher; ${file} is a lorkd foundation file, which states its own preprocessing and outputs`);
  return openSafetensorsTeacher(file);
}
