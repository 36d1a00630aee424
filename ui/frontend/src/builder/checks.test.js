import { describe, expect, it } from "vitest";
import examples from "./checks.examples.json";
import { addressProblem, durationProblem, instantProblem, slugProblem, timeOfDayProblem, urlProblem } from "./checks.js";

// The same values and messages as the server's (tests/test_builder_checks.py).
describe("checks say what the server says", () => {
  it.each(examples.durations)("duration $text (signed: $signed)", ({ text, signed, message }) => {
    expect(durationProblem(text, { signed })).toBe(message);
  });

  it.each(examples.ids)("id $text", ({ text, message }) => {
    expect(slugProblem(text)).toBe(message);
  });
});

describe("the other checks", () => {
  it("times of day, absolute times, addresses, URLs", () => {
    expect(timeOfDayProblem("09:30")).toBeNull();
    expect(timeOfDayProblem("9:3")).toBe("invalid time of day '9:3' (use HH:MM, e.g. 09:30)");
    expect(instantProblem("2026-12-24T09:00:00Z")).toBeNull();
    expect(instantProblem("2026-12-24T09:00:00+01:00")).toBeNull();
    expect(instantProblem("2026-12-24T09:00")).toBe("time '2026-12-24T09:00' has no offset: add one, e.g. Z for UTC or +02:00");
    expect(instantProblem("2026-12-24")).toContain("a date alone is ambiguous");
    expect(addressProblem("Ann <ann@example.com>")).toBeNull();
    expect(addressProblem("{{ visitor.fields.manager }}")).toBeNull();
    expect(addressProblem("ann")).toBe("'ann' is not an email address");
    expect(urlProblem("https://crm.example.com/x")).toBeNull();
    expect(urlProblem("https://{{ visitor.fields.host }}/x")).toBeNull();
    expect(urlProblem("ftp://x.example")).toBe("expected an http:// or https:// URL");
  });

  it("a try-out event may come at once, not before the start", () => {
    expect(durationProblem("0s", { zero: true })).toBeNull();
    expect(durationProblem("-1d", { zero: true })).toBe("must be a positive duration");
  });
});
