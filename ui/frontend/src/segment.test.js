import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { countSentence, livePreview, showAnswer } from "./segment.js";

/** A fetch that answers each request when the test says so, remembering the bodies. */
function server() {
  const asked = [];
  const fetch = vi.fn(
    (url, options) =>
      new Promise((resolve) => {
        asked.push({ body: options.body, headers: options.headers, answer: (json) => resolve({ ok: true, json: async () => json }) });
      }),
  );
  return { fetch, asked };
}

describe("the live count's sentence", () => {
  it("counts visitors, or says why it cannot", () => {
    expect(countSentence({ members: 1204, problems: [] })).toBe("1,204 visitors match now.");
    expect(countSentence({ members: 1, problems: [] })).toBe("1 visitor matches now.");
    expect(countSentence({ members: 0, problems: [] })).toBe("0 visitors match now.");
    const problem = { loc: "rules[0].at_least", msg: "expected a number", line: 5 };
    expect(countSentence({ members: null, problems: [problem] })).toBe("1 problem: fix it to count the visitors who match.");
    expect(countSentence({ members: null, problems: [problem, problem] })).toBe("2 problems: fix them to count the visitors who match.");
  });
});

describe("asking as the rules are typed", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("asks once typing pauses for 400 ms, with the text and the CSRF token", async () => {
    const { fetch, asked } = server();
    const answers = [];
    const preview = livePreview({ url: "/ui/segments/_new/preview", csrf: "t0k", fetch, onAnswer: (a) => answers.push(a) });
    preview.changed("kind: seg");
    await vi.advanceTimersByTimeAsync(300);
    preview.changed("kind: segment");
    await vi.advanceTimersByTimeAsync(399);
    expect(fetch).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(fetch.mock.calls[0][0]).toBe("/ui/segments/_new/preview");
    expect(asked[0].body).toBe("kind: segment");
    expect(asked[0].headers["X-CSRF-Token"]).toBe("t0k");
    asked[0].answer({ members: 3, problems: [] });
    await vi.advanceTimersByTimeAsync(0);
    expect(answers).toEqual([{ members: 3, problems: [] }]);
  });

  it("asks one question at a time and drops an answer about an older text", async () => {
    const { fetch, asked } = server();
    const answers = [];
    const preview = livePreview({ url: "/p", csrf: "t", fetch, onAnswer: (a) => answers.push(a) });
    preview.changed("one");
    await vi.advanceTimersByTimeAsync(400);
    preview.changed("two");
    await vi.advanceTimersByTimeAsync(400);
    expect(fetch).toHaveBeenCalledTimes(1); // "one" is still being counted
    asked[0].answer({ members: 1, problems: [] });
    await vi.advanceTimersByTimeAsync(0);
    expect(answers).toEqual([]); // about "one", which is no longer the text
    expect(asked.map((a) => a.body)).toEqual(["one", "two"]);
    asked[1].answer({ members: 2, problems: [] });
    await vi.advanceTimersByTimeAsync(0);
    expect(answers).toEqual([{ members: 2, problems: [] }]);
  });

  it("carries on after a failed request", async () => {
    const fetch = vi.fn().mockRejectedValueOnce(new TypeError("offline")).mockResolvedValue({ ok: true, json: async () => ({ members: 7, problems: [] }) });
    const answers = [];
    const preview = livePreview({ url: "/p", csrf: "t", fetch, onAnswer: (a) => answers.push(a) });
    preview.changed("a");
    await vi.advanceTimersByTimeAsync(400);
    preview.changed("b");
    await vi.advanceTimersByTimeAsync(400);
    expect(answers).toEqual([{ members: 7, problems: [] }]);
  });
});

describe("showing an answer", () => {
  function form() {
    const element = document.createElement("form");
    element.innerHTML = `<span data-editor-status class="badge">YAML</span>
      <p role="status" aria-live="polite" data-segment-count></p>
      <ul data-problems hidden></ul>`;
    return element;
  }

  it("says the count and hides the problems when there are none", () => {
    const element = form();
    showAnswer(element, { members: 12, problems: [] });
    expect(element.querySelector("[data-segment-count]").textContent).toBe("12 visitors match now.");
    expect(element.querySelector("[data-editor-status]").textContent).toBe("Valid");
    expect(element.querySelector("[data-problems]").hidden).toBe(true);
  });

  it("lists each problem with its line, as text", () => {
    const element = form();
    const problems = [{ loc: "rules[0].field", msg: "expected a string, found <b>1</b>", line: 4 }];
    showAnswer(element, { members: null, problems });
    const list = element.querySelector("[data-problems]");
    expect(list.hidden).toBe(false);
    expect(list.textContent).toBe("line 4 rules[0].field expected a string, found <b>1</b>");
    expect(list.querySelector("b")).toBeNull();
    expect(element.querySelector("[data-editor-status]").textContent).toBe("1 problem");
    expect(element.querySelector("[data-segment-count]").textContent).toMatch(/^1 problem: fix it/);
  });
});
