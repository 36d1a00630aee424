// The bundle of the broadcast pages (build/broadcast.js): see broadcast.js.
import { followChoices, followProgress } from "./broadcast.js";

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("[data-compose]")) followChoices(form);
  const progress = document.querySelector("[data-progress-url]");
  if (progress) followProgress(document, progress.dataset.progressUrl);
});
