/**
 * The root of every error the swarm throws on purpose. Subclasses say whose fault it is and what to do;
 * `name` follows the subclass so logs and `instanceof` both read well.
 */
export abstract class SwarmError extends Error {
  override readonly name: string;
  /** What the person running the swarm can do about it. */
  readonly hint: string | undefined;

  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options?.hint;
  }
}

/** The environment lacks something the swarm needs (a binary, a module, a server). */
export class EnvironmentError extends SwarmError {}

/** The user asked for something that does not exist or is malformed (a flag, a template, a config). */
export class UserError extends SwarmError {}

/** A message on the bus failed its schema. */
export class MessageValidationError extends SwarmError {}

/** Talking to NATS failed (connection, stream, store). */
export class BusError extends SwarmError {}

export function describeError(err: unknown): string {
  if (err instanceof SwarmError) return err.hint ? `${err.message}\n  → ${err.hint}` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
