// Integrate: ready-to-paste snippets for the signed-in token, and the Dify files with this
// gateway's URL filled in.

import { api, apiUrl, baseUrl, token } from "../api.js";
import { copyButton, field, h, replace } from "../dom.js";
import { t } from "../i18n.js";
import {
  DIFY_PAYLOAD_CODE, curlAsync, curlSync, difyNode, pythonHttp, pythonOpenAI,
} from "../snippets.js";

const MASK = "••••••••";

export function render(main, { state, signal }) {
  const base = baseUrl();
  const secret = token.get() || "";
  const reveal = h("input", { type: "checkbox", testid: "reveal-token" });
  const blocks = [];

  /** A code block whose text shows the token only when revealed; copying always includes it. */
  const snippet = (name, make) => {
    const code = h("code");
    const pre = h("pre", { class: "code", dataset: { snippet: name }, tabindex: "0" }, code);
    const draw = () => { code.textContent = make(reveal.checked ? secret : MASK); };
    draw();
    blocks.push(draw);
    return h("div", { class: "snippet" }, pre,
      h("div", { class: "actions" }, copyButton(t("copy"), () => make(secret), t("copied"))));
  };
  reveal.addEventListener("change", () => blocks.forEach((draw) => draw()));

  let model = "preview";
  const openaiBlock = snippet("python-openai", (tok) => pythonOpenAI(base, tok, model));
  state.once("v1/providers").then((list) => {
    model = list.default || model;
    blocks.forEach((draw) => draw());
  }).catch(() => {});

  // The Dify files: the URL Dify's containers use may differ from the browser's.
  const difyBase = h("input", {
    type: "url", value: base, pattern: "https?://[A-Za-z0-9._~:/\\[\\]@%+\\-]+", testid: "dify-base-url",
  });
  const downloads = h("ul", { class: "downloads" });
  let workflows = [];
  const drawDownloads = () => replace(downloads, workflows.map((wf) => h("li", {},
    h("a", {
      class: "button secondary", download: wf.filename, dataset: { workflow: wf.filename },
      href: apiUrl(`dify/workflows/${encodeURIComponent(wf.filename)}`,
        { base_url: difyBase.value.trim().replace(/\/$/, "") }).href,
    }, wf.filename),
    h("div", {}, h("strong", {}, wf.name), " ", h("span", { class: "chip" }, wf.mode)),
    h("p", { class: "muted small" }, wf.description))));
  difyBase.addEventListener("input", drawDownloads);
  api("dify/workflows", { signal }).then((list) => {
    workflows = list.data || [];
    drawDownloads();
  }).catch((exc) => {
    if (exc.name !== "AbortError") replace(downloads, h("li", { class: "muted" }, exc.message));
  });

  replace(main,
    h("h1", {}, t("integrate.title")),
    h("section", { class: "card" },
      h("h2", {}, t("integrate.connection")),
      h("dl", { class: "kv" },
        h("dt", {}, t("integrate.base")), h("dd", {}, h("code", {}, base)),
        h("dt", {}, t("integrate.token")), h("dd", {},
          h("label", { class: "check" }, reveal, t("integrate.reveal")),
          copyButton(t("integrate.copy_token"), secret, t("copied")))),
      h("p", { class: "muted small" }, t("integrate.secret_hint"))),
    h("section", { class: "card" },
      h("h2", {}, "curl"),
      h("h3", {}, t("integrate.curl.sync")),
      h("p", { class: "muted" }, t("integrate.curl.sync.hint")),
      snippet("curl-sync", (tok) => curlSync(base, tok)),
      h("h3", {}, t("integrate.curl.async")),
      h("p", { class: "muted" }, t("integrate.curl.async.hint")),
      snippet("curl-async", (tok) => curlAsync(base, tok))),
    h("section", { class: "card" },
      h("h2", {}, "Python"),
      h("h3", {}, t("integrate.python.http")),
      snippet("python-http", (tok) => pythonHttp(base, tok)),
      h("h3", {}, t("integrate.python.openai")),
      h("p", { class: "muted" }, t("integrate.python.openai.hint")),
      openaiBlock),
    h("section", { class: "card" },
      h("h2", {}, "Dify"),
      h("h3", {}, t("integrate.dify.files")),
      field(t("integrate.dify.base"), difyBase, t("integrate.dify.base.hint")),
      downloads,
      h("p", { class: "muted small" }, t("integrate.dify.token_hint")),
      h("h3", {}, t("integrate.dify.node")),
      h("table", { class: "settings" },
        h("tbody", {}, difyNode(base).map(([key, value]) =>
          h("tr", {}, h("th", { scope: "row" }, t(`dify.${key}`)), h("td", {}, h("code", { class: "prewrap" }, value)))))),
      h("p", { class: "muted small" }, t("integrate.dify.code")),
      h("pre", { class: "code", tabindex: "0" }, h("code", {}, DIFY_PAYLOAD_CODE)),
      h("h3", {}, t("integrate.dify.tool")),
      h("p", {}, t("integrate.dify.tool.hint"), " ",
        h("code", {}, `${base}/dify/openapi.json`))));
}
