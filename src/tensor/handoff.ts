// Handing a tensor to another JS thread (native/src/handoff.cc): handOff parks a handle on the
// tensor's storage under a number that can be posted to a worker; takeHandedOff, on the other
// thread, makes it that thread's own Tensor. No data is copied. A number is taken once; a
// hand-off that will not be taken (the other thread went away) is dropped with dropHandedOff.
import { N } from './ops-native.js';
import { Tensor } from './tensor.js';

/** Parks a handle on t's storage (t itself stays usable and owned as before); returns its number. */
export const handOff = (t: Tensor): number => N.handoffPut(t.handle) as number;

/** The tensor parked under `id`, now owned by the calling thread. */
export const takeHandedOff = (id: number): Tensor => Tensor.wrap(N.handoffTake(id));

/** Frees a parked tensor that will not be taken; false when it was taken already. */
export const dropHandedOff = (id: number): boolean => N.handoffDrop(id) as boolean;

/** Tensors parked and not yet taken (a leak check). */
export const handedOffCount = (): number => N.handoffParked() as number;
