import { z } from "zod";

/**
 * Whose fault a failure is, which says what to do about it: the person running the swarm (`user`), the
 * machine it runs on (`environment`), the research template (`template`), the model's answers (`model`), the
 * model's provider (`provider`), a literature service (`literature`), an experiment in its sandbox
 * (`sandbox`), NATS (`bus`), the run's budget (`budget`), or nobody foresaw it (`internal`: a bug).
 */
export const FailureKind = z.enum(["user", "environment", "template", "model", "provider", "literature", "sandbox", "bus", "budget", "internal"]);
export type FailureKind = z.infer<typeof FailureKind>;

/**
 * An error as data: what a job outcome, a machine's context and a snapshot carry, so that whoever reads it
 * decides by `kind` and `retryable`, never by matching the message.
 */
export const Failure = z.object({
  kind: FailureKind,
  /** Whether the same work may succeed when done again (a provider's 5xx, a bus outage). */
  retryable: z.boolean(),
  message: z.string(),
  /** What the person running the swarm can do about it. */
  hint: z.string().optional(),
});
export type Failure = z.infer<typeof Failure>;

export interface SwarmErrorOptions {
  hint?: string | undefined;
  cause?: unknown;
  /** Overrides the class's own answer to whether a retry may help. */
  retryable?: boolean | undefined;
}

/**
 * The root of every error the swarm throws on purpose. Subclasses say whose fault it is (`kind`) and whether
 * a retry may help (`retryable`, false unless the class or the thrower says so); `name` follows the subclass
 * so logs and `instanceof` both read well.
 */
export abstract class SwarmError extends Error {
  override readonly name: string;
  abstract readonly kind: FailureKind;
  /** What the person running the swarm can do about it. */
  readonly hint: string | undefined;
  readonly retryable: boolean;

  constructor(message: string, options?: SwarmErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options?.hint;
    this.retryable = options?.retryable ?? false;
  }

  toFailure(): Failure {
    return { kind: this.kind, retryable: this.retryable, message: this.message, ...(this.hint ? { hint: this.hint } : {}) };
  }
}

/** The environment lacks something the swarm needs (a binary, a module, a server). */
export class EnvironmentError extends SwarmError {
  readonly kind = "environment";
}

/** The user asked for something that does not exist or is malformed (a flag, a template, a config). */
export class UserError extends SwarmError {
  readonly kind = "user";
}

/** A message on the bus failed its schema: sending it again sends the same message. */
export class MessageValidationError extends SwarmError {
  readonly kind = "bus";
}

/** Talking to NATS failed (connection, stream, store): the bus comes back, so by default it is worth a retry. */
export class BusError extends SwarmError {
  readonly kind = "bus";
  constructor(message: string, options?: SwarmErrorOptions) {
    super(message, { ...options, retryable: options?.retryable ?? true });
  }
}

/**
 * A TLS handshake with NATS failed: the server's certificate is not trusted or does not name the host, or
 * one side does not speak TLS. Connecting again changes nothing until someone changes the configuration.
 */
export class TlsError extends BusError {
  constructor(message: string, options?: SwarmErrorOptions) {
    super(message, { ...options, retryable: options?.retryable ?? false });
  }
}

/**
 * A job, or a step of one, failed with a failure already known: the message says what failed, the failure
 * (of its cause, or as another actor reported it on the bus) says whose fault it was and whether to retry.
 */
export class JobFailedError extends SwarmError {
  readonly kind: FailureKind;

  constructor(message: string, failure: Failure = { kind: "internal", retryable: false, message }, options?: { cause?: unknown }) {
    super(message, { hint: failure.hint, retryable: failure.retryable, cause: options?.cause });
    this.kind = failure.kind;
  }
}

/** A failure as an error again, to be thrown where one was reported (a job outcome read from the bus). */
export function errorOf(failure: Failure): JobFailedError {
  return new JobFailedError(failure.message, failure);
}

/** Node's codes for a network that failed on the way: worth another try. */
const NETWORK_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE", "EAI_AGAIN", "ENETUNREACH", "EHOSTUNREACH", "UND_ERR_SOCKET"]);

/**
 * The failure an error stands for. A SwarmError says it itself; a Failure is one already; anything else is
 * an error nobody foresaw (`internal`, not retried: redoing a job redoes its paid model calls), except a
 * network that failed on the way (`environment`, retried). `during` says what was being done.
 */
export function failureOf(err: unknown, during?: string): Failure {
  const failure = err instanceof SwarmError ? err.toFailure() : Failure.safeParse(err).data ?? unforeseen(err);
  return during ? { ...failure, message: `${during}: ${failure.message}` } : failure;
}

function unforeseen(err: unknown): Failure {
  if (!(err instanceof Error)) {
    const message = (err as { message?: unknown } | null)?.message;
    return { kind: "internal", retryable: false, message: typeof message === "string" ? message : String(err) };
  }
  const code = (err as { code?: unknown }).code ?? (err.cause as { code?: unknown } | undefined)?.code;
  if (typeof code === "string" && NETWORK_CODES.has(code)) return { kind: "environment", retryable: true, message: err.message };
  return { kind: "internal", retryable: false, message: err.message };
}

/** A failure made by a machine itself (a plan with no runs, a deadline with no review). */
export function failure(kind: FailureKind, message: string, options?: { retryable?: boolean; hint?: string }): Failure {
  return { kind, retryable: options?.retryable ?? false, message, ...(options?.hint ? { hint: options.hint } : {}) };
}

export function describeError(err: unknown): string {
  if (err instanceof SwarmError) return err.hint ? `${err.message}\n  → ${err.hint}` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
