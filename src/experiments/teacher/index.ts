// The teacher abstraction (teacher.ts) and the files it opens.
export { type Teacher, type TeacherFlags, type TeacherPreprocessing, checkTeacher } from './teacher.js';
export { openTeacherFile, isOnnxFile } from './open.js';
export { chooseOutputs, type OutputShape } from './onnx-outputs.js';
