import { defineConfig } from "vitest/config";

export default defineConfig({
  // JSX as esbuild compiles it for the bundle (package.json build:builder).
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  // Queries by role and name are slow in jsdom: room for a busy machine.
  test: { environment: "jsdom", include: ["src/**/*.test.{js,jsx}"], testTimeout: 30_000 },
});
