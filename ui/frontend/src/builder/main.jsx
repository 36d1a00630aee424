// The flow builder: mounted on <div id="builder" data-config="{...}"> by the flow pages
// (src/sluice/ui/templates/_builder.html); config: {key, text, document, csrf, flows,
// templates, problems}.
import { render } from "preact";
import { App } from "./app.jsx";
import { client } from "./api.js";

const root = document.getElementById("builder");
if (root) {
  performance.mark("sluice:builder-start");
  const config = JSON.parse(root.dataset.config);
  root.replaceChildren();
  render(<App config={config} api={client(config.csrf)} />, root);
  // When the builder is on screen, for bench/ui.py (ms since the navigation began).
  performance.mark("sluice:builder-ready");
}
