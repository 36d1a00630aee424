import { describe, expect, it } from "vitest";
import examples from "./checks.examples.json";
import { parseCondition, rowProblem, writeCondition } from "./conditions.js";

// Conditions as the examples and people write them, each with what it means (the
// server evaluates the same list: tests/test_builder_checks.py): each reads as rows and
// writes back to the very same text.
const CANONICAL = examples.conditions.map((c) => c.text);

describe("conditions round trip", () => {
  it.each(CANONICAL)("%s", (text) => {
    const parsed = parseCondition(text);
    expect(parsed).not.toBeNull();
    expect(writeCondition(parsed)).toBe(text);
  });

  it("reads rows with their subject, operator, value and type", () => {
    expect(parseCondition('visitor.tags contains "vip" or event.details.n < 3')).toEqual({
      join: "or",
      rows: [
        { subject: "tag", name: "", operator: "has", value: "vip", type: "text" },
        { subject: "event", name: "n", operator: "lt", value: "3", type: "number" },
      ],
    });
    expect(parseCondition('visitor.plan == "trial"').rows[0]).toEqual({
      subject: "field", name: "plan", short: true, operator: "is", value: "trial", type: "text",
    });
  });

  it("reads other spellings of the same rows, and writes them the usual way", () => {
    const loose = parseCondition("not visitor.tags contains 'vip' and  visitor.fields.x <> 1");
    expect(writeCondition(loose)).toBe('not (visitor.tags contains "vip") and visitor.fields.x != 1');
    expect(parseCondition(writeCondition(loose))).toEqual(loose);
  });

  it.each([
    'visitor.tags contains "a" and visitor.tags contains "b" or visitor.tags contains "c"',
    '(visitor.tags contains "a")',
    'visitor.email contains "@example.com"',
    'origin.details.cart_id == event.details.cart_id',
    'event.details.cart_id == origin.details.cart_id',
    'visitor.fields.x | downcase == "a"',
    "visitor.fields.x",
    'not visitor.fields.x == "a"',
    "visitor.fields.x == nil and",
  ])("leaves %s to the Liquid box", (text) => {
    expect(parseCondition(text)).toBeNull();
  });

  it("an empty condition is no rows", () => {
    expect(parseCondition("")).toEqual({ join: "and", rows: [] });
    expect(writeCondition({ join: "and", rows: [] })).toBe("");
  });

  it("leaves out rows that cannot be written yet, and says why", () => {
    const rows = [
      { subject: "field", name: "", operator: "is", value: "x", type: "text" },
      { subject: "event", name: "amount", operator: "gt", value: "ten", type: "number" },
      { subject: "tag", name: "", operator: "has_not", value: "vip", type: "text" },
    ];
    expect(rows.map(rowProblem)).toEqual(["name the field", "'ten' is not a number", null]);
    expect(writeCondition({ join: "and", rows })).toBe('not (visitor.tags contains "vip")');
  });

  it("writes a field named like a visitor attribute as a field", () => {
    const row = { subject: "field", name: "email", short: true, operator: "exists", value: "", type: "text" };
    expect(writeCondition({ join: "and", rows: [row] })).toBe("visitor.fields.email != nil");
  });
});
