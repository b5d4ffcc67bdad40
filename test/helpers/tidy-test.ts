// node:test wrappers that run each test body inside a tidy() scope, so tests leak no tensors.
import { test } from 'node:test';
import { tidy } from '../../src/tensor/index.js';

/** test(name, fn) with fn run in tidy(): every tensor it creates is disposed afterwards. */
export function ttest(name: string, fn: () => void): void {
  test(name, () => {
    tidy(() => {
      fn();
    });
  });
}
