// The suite's tasks as a method sees them (MethodContext.tasks).
import type { TaskSuite } from '../../data/index.js';
import type { MethodContext } from './method.js';

export function contextTasks(suite: TaskSuite): MethodContext['tasks'] {
  return suite.tasks.map((t) => ({ name: t.name, classNames: t.classNames.slice(), classOffset: t.classOffset }));
}
