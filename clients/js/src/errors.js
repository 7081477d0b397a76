/**
 * The package's error class: every failure carries a `code` naming what went wrong (for proofs and
 * checkpoints the same names as the Rust `dephy_log::Error` variants) and a message saying what
 * was expected.
 */

export class DephyError extends Error {
  /**
   * @param {string} code e.g. 'RootMismatch', 'WrongProofLength', 'InvalidEvent'
   * @param {string} message
   * @param {object} [details] extra fields copied onto the error (e.g. `expected`, `actual`)
   */
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'DephyError';
    this.code = code;
    Object.assign(this, details);
  }
}
