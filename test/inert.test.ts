import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { inert } from "../bus/inert.js";
import { natsForSuite } from "./helpers/nats.js";
import { getDirectory, putArtifact } from "../bus/artifacts.js";

/** What a console would act on rather than show. */
const ACTIVE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

describe("inert text", () => {
  it("removes escape sequences, control and bidi characters, and keeps the words", () => {
    const hostile = "\x1b[2J\x1b[H\x1b]0;owned\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ ok\x9b31m red\x1bc \u202eevil\u202c\x00\x07\x7f done";
    const out = inert(hostile, 200);
    expect(out).not.toMatch(ACTIVE);
    expect(out).toBe("link ok red evil done");
  });

  it("makes one line of a multi-line text, or keeps its lines when asked, never a carriage return", () => {
    expect(inert("a\r\ndecision: Accept\rb\tc", 100)).toBe("a decision: Accept b c");
    expect(inert("a\r\nb\rc\n\td", 100, { lines: true })).toBe("a\nb\nc\n\td");
  });

  it("caps the length and says how much was cut, never splitting a character", () => {
    expect(inert("x".repeat(1_000), 10)).toBe(`${"x".repeat(10)}… [990 more characters cut]`);
    expect(inert(`abc${"😀".repeat(3)}`, 4)).toBe("abc… [6 more characters cut]");
    expect(inert("short", 10)).toBe("short");
  });

  it("drops an unterminated escape's introducer and shows the rest as text", () => {
    expect(inert("a\x1b]0;no end", 50)).toBe("a0;no end");
    expect(inert("a\x1b[", 50)).toBe("a");
  });
});

describe("artifact names mirrored into files", () => {
  let env: Awaited<ReturnType<typeof natsForSuite>>;
  beforeAll(async () => {
    env = await natsForSuite();
  });
  afterAll(async () => {
    await env?.close();
  });

  it("writes safe names only: no climbing out, no control characters, no overlong names", async () => {
    const names = ["p/ok.txt", "p/sub/fine.txt", "p/../escaped.txt", "p/a/../../up.txt", "p//abs.txt", "p/\x1b[2Jclear.txt", "p/tab\there.txt",
      `p/${"n".repeat(300)}.txt`, `p/${"d/".repeat(300)}deep.txt`, "p/back\\slash.txt", "p/./dot.txt"];
    for (const name of names) await putArtifact(env.bus, name, "x");
    const dir = join(env.dir, "mirror");
    const written = await getDirectory(env.bus, "p", dir);
    expect(written.sort()).toEqual([join(dir, "ok.txt"), join(dir, "sub", "fine.txt")]);
    expect(readdirSync(dir).sort()).toEqual(["ok.txt", "sub"]);
    expect(existsSync(join(env.dir, "escaped.txt"))).toBe(false);
  });
});
