// lorkd serve: one HTTP service for every department, micro-batching their requests through one
// EKS forward of the decomposition model (or per-department fused experts), with hot changes.
export { Service, type ServiceOptions, type Answer } from './service.js';
export { startServer, checkBinding, isLoopback, type ListenOptions, type RunningServer } from './server.js';
export { createApp, type AppOptions } from './app.js';
export { MODES, type ServeMode, decompositionDepartments, expertDirDepartments, expertDepartment, onnxDepartment, departmentFromFile, type PreprocessingDefaults } from './load.js';
export { Departments, DepartmentVersion, SharedDecomposition, type DepartmentSpec, type Preprocessing } from './departments.js';
export { Planner, type Path } from './planner.js';
export { HttpError } from './http-error.js';
