/** A configuration problem (a config file, a flag, a setting), phrased for the person who wrote it. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
