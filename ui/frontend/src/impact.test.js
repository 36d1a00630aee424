import { describe, expect, it } from "vitest";
import { confirmation, renderImpact, sendsAtOnce } from "./impact.js";

const shortened = {
  moves: [],
  removed: [],
  waits: [],
  branches: [],
  sends_at_once: { sessions: 4, emails: 3, webhooks: 0 },
  summary: ['6 sessions waiting at settle (2d → 1m): 4 wake at once and send email “<b>Hi</b>”.'],
  warning: "Saving wakes 4 sessions at once, which then send 3 emails and 0 webhooks right away.",
};

describe("the impact of an edit", () => {
  it("asks for confirmation only when something is sent at once", () => {
    expect(sendsAtOnce(shortened)).toBe(true);
    expect(confirmation(shortened)).toMatch(/^Saving wakes 4 sessions/);
    const quiet = { ...shortened, sends_at_once: { sessions: 0, emails: 0, webhooks: 0 }, warning: null };
    expect(sendsAtOnce(quiet)).toBe(false);
    expect(confirmation(quiet)).toBeNull();
    expect(sendsAtOnce(undefined)).toBe(false);
  });

  it("lays the warning and the sentences out as text", () => {
    const element = document.createElement("section");
    renderImpact(element, shortened);
    expect(element.querySelector(".impact-warning").textContent).toBe(
      "Sends at once. Saving wakes 4 sessions at once, which then send 3 emails and 0 webhooks right away.",
    );
    const items = [...element.querySelectorAll("li")].map((li) => li.textContent);
    expect(items).toEqual([shortened.summary[0]]);
    expect(element.querySelector("b")).toBeNull(); // a subject's markup stays text
    expect(element.classList.contains("impact-sends")).toBe(true);
  });
});
