import { describe, expect, it } from "vitest";
import { utcMinute } from "./time.js";

describe("utcMinute", () => {
  it("writes an instant in UTC to the minute, whatever its offset", () => {
    expect(utcMinute("2026-12-01T10:17:36.123456+00:00")).toBe("2026-12-01 10:17 UTC");
    expect(utcMinute("2026-12-01T11:17:36+01:00")).toBe("2026-12-01 10:17 UTC");
  });
});
