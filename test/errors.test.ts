import { describe, expect, it } from "vitest";
import {
  BusError,
  EnvironmentError,
  Failure,
  JobFailedError,
  MessageValidationError,
  SwarmError,
  UserError,
  errorOf,
  failureOf,
} from "../bus/errors.js";
import { outcomeSchema } from "../bus/schemas.js";
import { BudgetReachedError, ModelBehaviorError, ProviderConfigError, ProviderError, malformedAnswer, providerErrorFrom, unreadableAnswer } from "../agents/llm/errors.js";
import { LiteratureError } from "../agents/literature/errors.js";
import { BaselineError } from "../agents/coder/baseline.js";
import { BenchDataError, CsvFormatError } from "../agents/reviewBench/errors.js";

/** Through the wire and back: to JSON text, parsed, and validated by the one schema. */
const overTheWire = (f: Failure): Failure => Failure.parse(JSON.parse(JSON.stringify(f)));

// Every class of the hierarchy, with whose fault it is and whether a retry may help.
const cases: [SwarmError, Failure["kind"], boolean][] = [
  [new UserError("no template named nanofit", { hint: "templates are in templates/" }), "user", false],
  [new EnvironmentError("pdflatex is not on PATH", { hint: "apt-get install -y texlive" }), "environment", false],
  [new MessageValidationError("a job fails its schema"), "bus", false],
  [new BusError("could not publish the outcome"), "bus", true],
  [new BusError("the stream does not exist", { retryable: false }), "bus", false],
  [new ModelBehaviorError("no usable answer after 2 repair turns", { hint: "a stronger model" }), "model", false],
  [new ProviderError("HTTP 503: busy", 503), "provider", true],
  [new ProviderError("HTTP 429: slow down", 429), "provider", true],
  [new ProviderError("HTTP 401: bad key", 401, { hint: "check the API key" }), "provider", false],
  [new ProviderError("HTTP 400: but retry", 400, { retryable: true }), "provider", true],
  [providerErrorFrom(Object.assign(new Error("overloaded"), { status: 529 }), "anthropic/claude"), "provider", true],
  [providerErrorFrom(Object.assign(new Error("no such model"), { status: 404 }), "openai/gpt-x"), "provider", false],
  [unreadableAnswer(new SyntaxError("Unexpected end of JSON input"))!, "provider", true],
  [malformedAnswer("chat completions", { error: { message: "nope" } }, "no choices"), "provider", true],
  [new ProviderConfigError("OPENAI_API_KEY is not set"), "user", false],
  [new BudgetReachedError("budget reached: $1.0000 of $1.0000"), "budget", false],
  [new LiteratureError("Semantic Scholar answered 429", "Semantic Scholar", 429), "literature", true],
  [new LiteratureError("Semantic Scholar answered 503", "Semantic Scholar", 503), "literature", true],
  [new LiteratureError("OpenAlex could not be reached", "OpenAlex", undefined), "literature", true],
  [new LiteratureError("Semantic Scholar refused the key", "Semantic Scholar", 403), "literature", false],
  [new LiteratureError("OpenAlex answered nonsense", "OpenAlex", undefined, { reason: "bad-answer" }), "literature", false],
  [new BaselineError("the baseline imports torch, which this node lacks", { hint: "pip install torch" }), "template", false],
  [new BenchDataError("the review CSV is missing"), "user", false],
  [new CsvFormatError("row 3 has 2 fields"), "user", false],
  [new JobFailedError("the critic reached no verdict: HTTP 503", { kind: "provider", retryable: true, message: "HTTP 503" }), "provider", true],
  [new JobFailedError("the paper has no text"), "internal", false],
];

describe("every error class serialises to a Failure and back", () => {
  for (const [err, kind, retryable] of cases) {
    it(`${err.name}: ${err.message}`, () => {
      const failure = failureOf(err);
      expect(failure).toEqual({ kind, retryable, message: err.message, ...(err.hint ? { hint: err.hint } : {}) });
      expect(err.kind).toBe(kind);
      expect(err.retryable).toBe(retryable);
      expect(overTheWire(failure)).toEqual(failure);
      // Thrown again where the outcome is read, it is the same failure.
      const back = errorOf(overTheWire(failure));
      expect(back).toBeInstanceOf(SwarmError);
      expect(failureOf(back)).toEqual(failure);
    });
  }

  it("names each error after its class", () => {
    expect(new BudgetReachedError("x").name).toBe("BudgetReachedError");
    expect(new LiteratureError("x", "OpenAlex", 500).reason).toBe("server-error");
  });
});

describe("failureOf", () => {
  it("says what was being done, before the error's own message", () => {
    expect(failureOf(new ProviderError("HTTP 502", 502), "planning failed")).toEqual({ kind: "provider", retryable: true, message: "planning failed: HTTP 502" });
  });

  it("takes a Failure as it is", () => {
    const f: Failure = { kind: "sandbox", retryable: false, message: "killed at the memory limit", hint: "raise memoryMb" };
    expect(failureOf(f)).toEqual(f);
  });

  it("maps an error nobody foresaw to an internal failure that is not retried (a retry would redo paid calls)", () => {
    expect(failureOf(new TypeError("cannot read properties of undefined"))).toEqual({ kind: "internal", retryable: false, message: "cannot read properties of undefined" });
    expect(failureOf("a string")).toEqual({ kind: "internal", retryable: false, message: "a string" });
    expect(failureOf({ kind: "nonsense", message: "m" })).toEqual({ kind: "internal", retryable: false, message: "m" });
  });

  it("maps a network that failed on the way to a retryable environment failure", () => {
    const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    expect(failureOf(reset)).toEqual({ kind: "environment", retryable: true, message: "read ECONNRESET" });
    const fetchFailed = new TypeError("fetch failed", { cause: Object.assign(new Error("connect"), { code: "ECONNREFUSED" }) });
    expect(failureOf(fetchFailed).retryable).toBe(true);
  });
});

describe("the Failure schema", () => {
  it("refuses a kind it does not know, and a missing retryable", () => {
    expect(Failure.safeParse({ kind: "weather", retryable: false, message: "m" }).success).toBe(false);
    expect(Failure.safeParse({ kind: "bus", message: "m" }).success).toBe(false);
  });

  it("is what a failed outcome carries beside its message", () => {
    const base = { jobId: "r1.novelty.alpha.0", runId: "r1", ideaId: "alpha", by: { agent: "critic", node: "n1" }, instance: "c0ffee", at: new Date(0).toISOString() };
    const failure = failureOf(new BudgetReachedError("budget reached"));
    const parsed = outcomeSchema("novelty").parse(JSON.parse(JSON.stringify({ ...base, ok: false, error: failure.message, failure })));
    expect(parsed).toMatchObject({ ok: false, error: "budget reached", failure: { kind: "budget", retryable: false } });
    expect(outcomeSchema("novelty").safeParse({ ...base, ok: false, error: "budget reached" }).success).toBe(false);
  });
});
