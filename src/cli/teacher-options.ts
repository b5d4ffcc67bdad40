// The options of a command whose --foundation FILE may be an ONNX model: its preprocessing when
// the file's metadata does not state it, and which outputs are its features and logits.
import type { Command } from 'commander';
import { Option } from 'commander';
import { UserError } from '../tensor/errors.js';
import type { TeacherFlags } from '../experiments/teacher/index.js';
import { intOption } from './output.js';

function numberList(flag: string): (v: string) => number[] {
  return (v: string) => {
    const xs = v.split(',').map((s) => (s.trim() === '' ? NaN : Number(s)));
    if (xs.length !== 3 || xs.some((x) => !Number.isFinite(x))) throw new UserError(`${flag} must be 3 comma-separated numbers (R,G,B), got "${v}"`);
    return xs;
  };
}

export function teacherOptions(c: Command): Command {
  return c
    .option('--teacher-input <size>', 'an ONNX teacher without lorkd metadata: its input side S', intOption('teacher-input'))
    .option('--teacher-mean <r,g,b>', 'an ONNX teacher without lorkd metadata: per-channel mean of x = (pixel / 255 - mean) / std', numberList('--teacher-mean'))
    .option('--teacher-std <r,g,b>', 'an ONNX teacher without lorkd metadata: per-channel std', numberList('--teacher-std'))
    .addOption(new Option('--teacher-resize <mode>', 'an ONNX teacher without lorkd metadata: how images are resized to S').choices(['bilinear']))
    .option('--teacher-features <name>', "the ONNX teacher's output that is its pooled features (N, F) (default: found by shape)")
    .option('--teacher-logits <name>', "the ONNX teacher's output that is its logits over the suite's classes (N, C) (default: found by shape)");
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function teacherFlagsOf(o: any): TeacherFlags {
  return { input: o.teacherInput, mean: o.teacherMean, std: o.teacherStd, resize: o.teacherResize, features: o.teacherFeatures, logits: o.teacherLogits };
}
