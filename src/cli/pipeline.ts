// The main job: foundation, decompose, eval, export, predict and demo. (Filled in by issue 5.)
import type { Command } from 'commander';

export function registerPipeline(_program: Command): void {}
