// Errors a user can cause carry a code and a one-line message that names the input and the fix.
// The CLI prints `message` alone (no stack) for VlmkitError and exits non-zero.
export class VlmkitError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'VlmkitError';
    this.code = code;
  }
}

/** A tensor shape or dtype does not fit an op: names the op and every shape involved. */
export class ShapeError extends VlmkitError {
  constructor(message: string) {
    super('E_SHAPE', message);
    this.name = 'ShapeError';
  }
}

/** A file on disk is missing, unreadable or malformed. */
export class FileFormatError extends VlmkitError {
  constructor(message: string) {
    super('E_FILE', message);
    this.name = 'FileFormatError';
  }
}
