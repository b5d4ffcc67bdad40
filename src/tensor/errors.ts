// Typed errors: TorchError comes from libtorch (message names the op and the input shapes).
export class TorchError extends Error {
  override name = 'TorchError';
}

/** An error the user can fix (bad input, bad file, bad option): the CLI prints its message on one line. */
export class UserError extends Error {
  override name = 'UserError';
}
