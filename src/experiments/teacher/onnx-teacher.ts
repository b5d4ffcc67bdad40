// Any ONNX model as the teacher (onnxruntime-node, on the CPU): one image input [N, 3, S, S], its
// preprocessing from lorkd's metadata or the --teacher-* flags (onnx-preprocessing.ts), its
// pooled features and logits chosen by name (the flags, or a lorkd foundation file's own "features" and
// "logits") or by shape (onnx-outputs.ts). Opening it runs one image
// through it (zeros), so a model that cannot take the stated input is refused before any training.
import * as ort from 'onnxruntime-node';
import { type Tensor, tensor } from '../../tensor/index.js';
import { UserError } from '../../tensor/errors.js';
import type { TeacherOutput } from '../methods/spec.js';
import type { Teacher, TeacherFlags } from './teacher.js';
import { chooseOutputs, listOutputs, type OutputShape } from './onnx-outputs.js';
import { onnxProps, onnxTeacherInfo } from './onnx-preprocessing.js';

const firstLine = (e: unknown): string => String((e as Error).message ?? e).split('\n')[0]!;

/** The input's fixed batch size, or null when it is dynamic. */
function fixedBatch(session: ort.InferenceSession): number | null {
  const m = session.inputMetadata[0];
  const d = m && m.isTensor ? m.shape[0] : undefined;
  return typeof d === 'number' && d > 0 ? d : null;
}

export async function openOnnxTeacher(file: string, flags: TeacherFlags, totalClasses: number, needs: readonly TeacherOutput[]): Promise<Teacher> {
  const info = onnxTeacherInfo(file, onnxProps(file), flags);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(file, { intraOpNumThreads: 0 });
  } catch (e) {
    throw new UserError(`${file}: onnxruntime cannot load it (${firstLine(e)})`);
  }
  try {
    if (session.inputNames.length !== 1) throw new UserError(`${file} has ${session.inputNames.length} inputs (${session.inputNames.join(', ')}); a teacher takes one image batch`);
    const input = session.inputNames[0]!;
    const S = info.preprocessing.input;
    const fixed = fixedBatch(session);
    const batch = fixed ?? 64;
    const run = async (data: Float32Array, n: number): Promise<ort.InferenceSession.ReturnType> => {
      try {
        return await session.run({ [input]: new ort.Tensor('float32', data, [n, 3, S, S]) });
      } catch (e) {
        throw new UserError(`${file} cannot run on [${n}, 3, ${S}, ${S}] inputs (${firstLine(e)})`);
      }
    };
    const probe = await run(new Float32Array(batch * 3 * S * S), batch);
    const shapes: OutputShape[] = session.outputNames.map((name) => ({ name, dims: [...probe[name]!.dims.slice(1)] }));
    const named = { features: flags.features ?? info.names.features, logits: flags.logits ?? info.names.logits };
    const chosen = chooseOutputs(file, shapes, named, totalClasses, needs);
    const outputs: TeacherOutput[] = [...(chosen.features ? ['features' as const] : []), ...(chosen.logits ? ['logits' as const] : [])];
    const describe = [chosen.features && `pooled features ${chosen.features.name} (${chosen.features.dims[0]})`, chosen.logits && `logits ${chosen.logits.name} (${chosen.logits.dims[0]})`].filter(Boolean).join(' and ');
    return {
      file,
      arch: info.arch,
      outputs,
      preprocessing: info.preprocessing,
      tasks: info.tasks,
      numFeatures: chosen.features?.dims[0] ?? null,
      numLogits: chosen.logits?.dims[0] ?? null,
      has: `${describe || 'neither pooled features nor logits'} (outputs: ${listOutputs(shapes)})`,
      cacheTag: JSON.stringify({ onnx: [chosen.features?.name ?? null, chosen.logits?.name ?? null] }),
      batchSize: batch,
      device: 'cpu',
      place() {},
      async forward(x: Tensor) {
        const n = x.shape[0]!;
        let data = x.contiguous().toArray() as Float32Array;
        if (fixed !== null && n !== fixed) {
          // A model with a fixed batch gets its last rows padded with zeros.
          const padded = new Float32Array(fixed * 3 * S * S);
          padded.set(data);
          data = padded;
        }
        const out = await run(data, fixed ?? n);
        const take = (o: OutputShape | null): Tensor | undefined => {
          if (!o) return undefined;
          const d = out[o.name]!.data as Float32Array;
          return tensor(Float32Array.from(d.subarray(0, n * o.dims[0]!)), [n, o.dims[0]!]);
        };
        return { features: take(chosen.features), logits: take(chosen.logits) };
      },
      dispose: () => session.release(),
    };
  } catch (e) {
    await session.release();
    throw e;
  }
}
